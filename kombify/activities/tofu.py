"""Temporal activities that run the OpenTofu CLI on a stack's work directory.

The wrapper itself (binary lookup, runner, parsing, locks, redaction) lives in
:mod:`kombify.tofu`; its public names are re-exported here, where callers expect them.

Each activity heartbeats while the CLI prints (at most once per ``heartbeat_every`` seconds)
and also while it is silent (a long ``remote-exec`` prints nothing for minutes), so a
heartbeat timeout catches a dead worker, not a quiet provisioner. Cancellation reaches the
runner as ``asyncio.CancelledError``, which interrupts the CLI so it unlocks its state.

Failures leave as ``ApplicationError`` whose ``type`` is the error's ``code``; user mistakes
(an invalid configuration, a missing CLI, a stale plan) are non-retryable. Inputs carry ids
and paths only: secrets reach the CLI through the work directory's tfvars file, never
through a Temporal history, and are masked in every line, heartbeat and error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.errors import TofuError
from kombify.tofu import (
    ApplyResult,
    Diagnostic,
    PlanSummary,
    ResourceChange,
    TofuApplyFailed,
    TofuCommandError,
    TofuConfigInvalid,
    TofuDestroyFailed,
    TofuInitFailed,
    TofuLockedError,
    TofuNotFound,
    TofuPlanFailed,
    TofuPlanStale,
    TofuRunner,
    find_tofu_binary,
)

__all__ = [
    "ApplyResult",
    "Diagnostic",
    "PlanSummary",
    "ResourceChange",
    "TofuActivities",
    "TofuApplyFailed",
    "TofuApplyInput",
    "TofuApplyResult",
    "TofuCommandError",
    "TofuConfigInvalid",
    "TofuDestroyFailed",
    "TofuDestroyInput",
    "TofuDestroyResult",
    "TofuInitFailed",
    "TofuLockedError",
    "TofuNotFound",
    "TofuPlanFailed",
    "TofuPlanInput",
    "TofuPlanResult",
    "TofuPlanStale",
    "TofuRunner",
    "TofuValidateInput",
    "TofuValidateResult",
    "find_tofu_binary",
]

T = TypeVar("T")
LogSink = Callable[[str, str], None]
"""Receives ``(stack_id, line)`` for every masked output line (live logs)."""

_LAST_LINE_CHARS = 200


@dataclass(frozen=True)
class TofuValidateInput:
    """Which stack to ``init`` and ``validate``."""

    stack_id: str
    workdir: str


@dataclass(frozen=True)
class TofuValidateResult:
    """A valid configuration's warnings (an invalid one fails the activity)."""

    stack_id: str
    warnings: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True)
class TofuPlanInput:
    """Which stack to plan; ``destroy`` plans its removal."""

    stack_id: str
    workdir: str
    destroy: bool = False


@dataclass(frozen=True)
class TofuPlanResult:
    """The saved plan's summary (the plan file stays in the work directory for apply)."""

    stack_id: str
    summary: PlanSummary


@dataclass(frozen=True)
class TofuApplyInput:
    """Which stack to apply (its saved plan if there is one); ``outputs``: read them after."""

    stack_id: str
    workdir: str
    outputs: bool = True


@dataclass(frozen=True)
class TofuApplyResult:
    """What the apply did and the stack's non-sensitive outputs."""

    stack_id: str
    result: ApplyResult


@dataclass(frozen=True)
class TofuDestroyInput:
    """Which stack to destroy."""

    stack_id: str
    workdir: str


@dataclass(frozen=True)
class TofuDestroyResult:
    """The stack whose resources were destroyed."""

    stack_id: str


class _Progress:
    """The runner's line callback inside an activity: heartbeats and the live-log sink."""

    def __init__(self, stack_id: str, sink: LogSink | None, every: float) -> None:
        self.stack_id = stack_id
        self.sink = sink
        self.every = every
        self.lines = 0
        self.last_line = ""
        self.last_beat = 0.0

    def __call__(self, line: str) -> None:
        self.lines += 1
        if line.strip():
            self.last_line = line[:_LAST_LINE_CHARS]
        if self.sink is not None:
            self.sink(self.stack_id, line)
        if time.monotonic() - self.last_beat >= self.every:
            self.beat()

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        activity.heartbeat({"lines": self.lines, "last_line": self.last_line})

    async def keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if time.monotonic() - self.last_beat >= self.every:
                self.beat()


def to_application_error(exc: TofuError) -> ApplicationError:
    """The Temporal form of a wrapper error: ``type`` is its code, details are JSON-safe."""
    details: dict[str, Any] = {"code": exc.code, "status": exc.status}
    retryable = True
    if isinstance(exc, TofuCommandError):
        retryable = exc.retryable
        details.update(
            command=list(exc.command),
            exit_code=exc.exit_code,
            stderr_tail=exc.stderr_tail,
            diagnostics=[asdict(d) for d in exc.diagnostics],
        )
    if isinstance(exc, TofuNotFound):
        retryable = False
    return ApplicationError(exc.message, details, type=exc.code, non_retryable=not retryable)


class TofuActivities:
    """The OpenTofu activities, bound to one :class:`TofuRunner`.

    Args:
        runner: Runs the CLI (tests hand in one with their own binary or home).
        log_sink: Optional receiver of every masked line, for live logs.
        heartbeat_every: Seconds between heartbeats, busy or silent.
    """

    def __init__(
        self,
        runner: TofuRunner,
        *,
        log_sink: LogSink | None = None,
        heartbeat_every: float = 1.0,
    ) -> None:
        self.runner = runner
        self.log_sink = log_sink
        self.heartbeat_every = heartbeat_every

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker's registry."""
        return [self.validate, self.plan, self.apply, self.destroy]

    @contextlib.asynccontextmanager
    async def _progress(self, stack_id: str) -> AsyncIterator[_Progress]:
        progress = _Progress(stack_id, self.log_sink, self.heartbeat_every)
        beating = asyncio.create_task(progress.keep_alive())
        try:
            yield progress
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _guard(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except TofuError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name="TofuValidate")
    async def validate(self, params: TofuValidateInput) -> TofuValidateResult:
        """``init`` then ``validate`` a stack's configuration."""
        workdir = Path(params.workdir)
        async with self._progress(params.stack_id) as progress:

            async def work() -> list[Diagnostic]:
                await self.runner.ensure_init(workdir, on_line=progress)
                return await self.runner.validate(workdir, on_line=progress)

            warnings = await self._guard(work())
        return TofuValidateResult(stack_id=params.stack_id, warnings=warnings)

    @activity.defn(name="TofuPlan")
    async def plan(self, params: TofuPlanInput) -> TofuPlanResult:
        """``init`` (when needed) then ``plan`` a stack, saving the plan for ``TofuApply``."""
        workdir = Path(params.workdir)
        async with self._progress(params.stack_id) as progress:

            async def work() -> PlanSummary:
                await self.runner.ensure_init(workdir, on_line=progress)
                return await self.runner.plan(workdir, on_line=progress, destroy=params.destroy)

            summary = await self._guard(work())
        return TofuPlanResult(stack_id=params.stack_id, summary=summary)

    @activity.defn(name="TofuApply")
    async def apply(self, params: TofuApplyInput) -> TofuApplyResult:
        """Apply a stack: its saved plan, else a fresh plan; ``init`` first if needed."""
        workdir = Path(params.workdir)
        async with self._progress(params.stack_id) as progress:

            async def work() -> ApplyResult:
                await self.runner.ensure_init(workdir, on_line=progress)
                return await self.runner.apply(
                    workdir, on_line=progress, read_outputs=params.outputs
                )

            result = await self._guard(work())
        return TofuApplyResult(stack_id=params.stack_id, result=result)

    @activity.defn(name="TofuDestroy")
    async def destroy(self, params: TofuDestroyInput) -> TofuDestroyResult:
        """Destroy everything in a stack's state."""
        workdir = Path(params.workdir)
        async with self._progress(params.stack_id) as progress:

            async def work() -> None:
                await self.runner.ensure_init(workdir, on_line=progress)
                await self.runner.destroy(workdir, on_line=progress)

            await self._guard(work())
        return TofuDestroyResult(stack_id=params.stack_id)
