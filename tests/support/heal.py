"""Helpers of the agent's healing tests: a service spec and a watcher collecting reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

from kombify.agent.client import AgentClient
from kombify.agent.proto import pb

# Runs until stopped; leaves at once on SIGTERM (sh runs the trap after the short sleep).
LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
BROKEN_CHECK = "test ! -f /tmp/broken"


def service(
    image: str,
    name: str = "web",
    *,
    replicas: int = 1,
    env: dict[str, str] | None = None,
    check: str = "",
    command: str = LOOP,
    restart: pb.RestartPolicy = pb.RESTART_POLICY_UNSPECIFIED,
) -> pb.ServiceSpec:
    """A busybox service; ``check`` is a cmd health check probed every 0.3 s, 2 retries."""
    spec = pb.ServiceSpec(
        name=name,
        image=image,
        command=["/bin/sh", "-c", command],
        env=env or {},
        replicas=replicas,
        stop_grace_seconds=1,
        restart_policy=restart,
    )
    if check:
        spec.healthcheck.CopyFrom(pb.HealthCheck(cmd=check, interval_ms=300, retries=2))
    return spec


class Watcher:
    """Holds a WatchServices stream open and keeps every report, with its arrival time."""

    def __init__(self, client: AgentClient, *, keepalive_seconds: int = 5) -> None:
        self.client = client
        self.keepalive_seconds = keepalive_seconds
        self.reports: list[tuple[float, pb.ServiceReport]] = []
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        await self.next(lambda r: True, timeout=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        reports = self.client.watch_services(keepalive_seconds=self.keepalive_seconds)
        try:
            async with contextlib.aclosing(reports):
                async for report in reports:
                    async with self._arrived:
                        self.reports.append((asyncio.get_running_loop().time(), report))
                        self._arrived.notify_all()
        finally:
            async with self._arrived:  # a waiter learns that the stream ended
                self._arrived.notify_all()

    def changes(self, since: float = 0.0) -> list[pb.ServiceReport]:
        """Reports that were not keep-alives, arrived after ``since`` (loop time)."""
        return [r for t, r in self.reports if t > since and not r.keepalive]

    async def next(
        self, predicate: Callable[[pb.ServiceReport], bool], *, timeout: float, since: float = 0.0
    ) -> pb.ServiceReport:
        """The first report (after ``since``) matching ``predicate``; waits for it."""

        def found() -> pb.ServiceReport | None:
            return next((r for t, r in self.reports if t > since and predicate(r)), None)

        async def wait() -> pb.ServiceReport:
            async with self._arrived:
                while (report := found()) is None:
                    if self._task is not None and self._task.done() and found() is None:
                        self._task.result()  # raises what ended the stream
                        raise AssertionError("the watch ended")
                    await self._arrived.wait()
                return report

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError as exc:
            seen = "\n".join(str(r).replace("\n", " ") for _, r in self.reports[-5:])
            raise AssertionError(
                f"no matching report within {timeout} s; last ones:\n{seen}"
            ) from exc


def kinds(report: pb.ServiceReport) -> list[tuple[str, int, str]]:
    """(service, replica, kind) of each problem in a report."""
    return [(p.service, p.replica, p.kind) for p in report.problems]
