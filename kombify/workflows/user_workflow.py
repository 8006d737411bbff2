"""``RunUserWorkflow``: interprets an owner's workflow file, step by step, durably.

Each step is an activity with the file's retry policy and timeout (``sleep`` is a durable
timer); a crashed worker is noticed by the step's heartbeat timeout and the step starts again
on another worker, while finished steps stay finished (they are in the history). ``if:``
conditions and ``${{ }}`` are evaluated here, over earlier steps' outcomes and outputs; secrets
stay names here and are resolved inside the activities.

The ``progress`` query (and the result) is one summary: every step's state (pending, running,
succeeded, failed, skipped), attempts, outputs, timings and last log lines. A run whose steps
failed ends as a failed workflow (``UserWorkflowFailed``) with that summary as its details.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from kombify.contracts.user_workflow import USER_WORKFLOW_NAME, UserWorkflowInput
    from kombify.errors import SpecError
    from kombify.userwf import expr
    from kombify.userwf.load import Group, Step, WorkflowFile, load_workflow, resolve_inputs
    from kombify.userwf.steps import (
        ACTIVITY_OF_KIND,
        MAX_LINE,
        MAX_LOG_LINES,
        StepInput,
        StepReport,
    )

FAILED_TYPE = "UserWorkflowFailed"
INVALID_TYPE = "UserWorkflowInvalid"
# A step activity heartbeats every few seconds: this long without one means its worker died,
# and the step is started again on another worker.
HEARTBEAT_TIMEOUT = timedelta(seconds=15)
MAX_CRASH_RESTARTS = 5
PROGRESS_QUERY = "progress"


@dataclass
class StepState:
    """What the ``progress`` query tells about one step."""

    id: str
    kind: str
    name: str = ""
    group: str = ""
    phase: str = "steps"  # or "on_failure"
    state: str = "pending"
    attempts: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    log: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.log.append(line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "...")
        del self.log[:-MAX_LOG_LINES]


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return expr.render(value, context, keep=("secrets",))
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value


@workflow.defn(name=USER_WORKFLOW_NAME)
class RunUserWorkflow:
    """Runs one workflow file (see docs/workflows.md)."""

    def __init__(self) -> None:
        self._name = ""
        self._state = "running"
        self._error = ""
        self._inputs: dict[str, str] = {}
        self._failure: dict[str, str] | None = None
        self._steps: dict[str, StepState] = {}
        self._started_at = ""
        self._finished_at: str | None = None
        self._request: UserWorkflowInput | None = None
        self._context: dict[str, Any] = {"steps": {}, "inputs": {}}

    def _now(self) -> str:
        return workflow.now().isoformat()

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> dict[str, Any]:
        """Every step's state, attempts, outputs, timings and last log lines."""
        request = self._request
        return {
            "workflow": self._name,
            "workflow_id": workflow.info().workflow_id,
            "organisation": request.organisation if request else "",
            "filename": request.filename if request else "",
            "triggered_by": request.triggered_by if request else "",
            "state": self._state,
            "error": self._error,
            "failure": self._failure,
            "inputs": dict(self._inputs),
            "started_at": self._started_at,
            "finished_at": self._finished_at,
            "steps": [asdict(step) for step in self._steps.values()],
        }

    @workflow.run
    async def run(self, request: UserWorkflowInput) -> dict[str, Any]:
        """Run the file's steps, then its ``on_failure`` steps if one failed."""
        self._request = request
        self._started_at = self._now()
        try:
            model = load_workflow(request.source, request.filename)
            self._name = model.name
            self._inputs = resolve_inputs(model, request.inputs)
        except SpecError as exc:
            self._finish("failed", str(exc))
            raise ApplicationError(str(exc), self.progress(), type=INVALID_TYPE) from None
        self._context["inputs"] = self._inputs
        self._plan(model)
        for item in model.steps:
            if self._failure is not None:
                for step in item.steps if isinstance(item, Group) else (item,):
                    self._skip(step, "an earlier step failed")
                continue
            await (self._group(item) if isinstance(item, Group) else self._step(item))
        if self._failure is not None:
            self._context["failure"] = dict(self._failure)
            for step in model.on_failure:
                await self._step(step, record_failure=False)
        else:
            for step in model.on_failure:
                self._skip(step, "the run did not fail")
        if self._failure is not None:
            self._finish("failed", f"step `{self._failure['step']}` failed")
            raise ApplicationError(self._error, self.progress(), type=FAILED_TYPE)
        self._finish("succeeded", "")
        return self.progress()

    def _finish(self, state: str, error: str) -> None:
        self._state, self._error, self._finished_at = state, error, self._now()

    def _plan(self, model: WorkflowFile) -> None:
        for item in model.steps:
            if isinstance(item, Group):
                for step in item.steps:
                    self._steps[step.id] = StepState(
                        step.id, step.kind, step.name, group=item.id or item.path
                    )
            else:
                self._steps[item.id] = StepState(item.id, item.kind, item.name)
        for step in model.on_failure:
            self._steps[step.id] = StepState(step.id, step.kind, step.name, phase="on_failure")

    def _skip(self, step: Step, why: str) -> None:
        state = self._steps[step.id]
        state.state = "skipped"
        state.say(f"skipped: {why}")
        self._context["steps"][step.id] = {"outcome": "skipped", "outputs": {}}

    def _condition(self, text: str | None) -> bool:
        if text is None:
            return True
        node = expr.parse(expr.condition_text(text))
        return expr.truthy(expr.evaluate(node, self._context))

    async def _group(self, group: Group) -> None:
        if not self._condition(group.condition):
            for step in group.steps:
                self._skip(step, f"the group's if: {group.condition} is false")
            if group.id:
                self._context["steps"][group.id] = {"outcome": "skipped", "outputs": {}}
            return
        await asyncio.gather(*(self._step(step) for step in group.steps))
        if group.id:
            outcomes = {self._context["steps"][s.id]["outcome"] for s in group.steps}
            failed = any(self._steps[s.id].state == "failed" for s in group.steps)
            outcome = "failed" if failed else "succeeded" if "succeeded" in outcomes else "skipped"
            self._context["steps"][group.id] = {"outcome": outcome, "outputs": {}}

    async def _step(self, step: Step, *, record_failure: bool = True) -> None:
        state = self._steps[step.id]
        if not self._condition(step.condition):
            self._skip(step, f"if: {step.condition} is false")
            return
        state.state, state.started_at = "running", self._now()
        if step.kind == "sleep":
            await workflow.sleep(timedelta(seconds=step.action["seconds"]))
            report: StepReport | None = StepReport()
            error = ""
        else:
            report, error = await self._execute(step, state)
        state.finished_at = self._now()
        if report is not None:
            state.outputs = report.outputs
            state.attempts = max(state.attempts, report.attempt)
            for line in report.log:
                state.say(line)
        state.state = "failed" if error else "succeeded"
        state.error = error
        self._context["steps"][step.id] = {"outcome": state.state, "outputs": state.outputs}
        if error and record_failure and not step.continue_on_error and self._failure is None:
            self._failure = {"step": step.id, "error": error}

    async def _execute(self, step: Step, state: StepState) -> tuple[StepReport | None, str]:
        retry = step.retries
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=retry.backoff),
            backoff_coefficient=retry.factor,
            maximum_interval=timedelta(seconds=retry.max_backoff) if retry.max_backoff else None,
            maximum_attempts=retry.attempts,
        )
        assert self._request is not None
        request = StepInput(
            organisation=self._request.organisation,
            workflow_id=workflow.info().workflow_id,
            step=step.id,
            kind=step.kind,
            action=_render(step.action, self._context),
        )
        for restart in range(MAX_CRASH_RESTARTS + 1):
            try:
                report = await workflow.execute_activity(
                    ACTIVITY_OF_KIND[step.kind],
                    request,
                    result_type=StepReport,
                    start_to_close_timeout=timedelta(seconds=step.timeout),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=policy,
                )
                return report, ""
            except ActivityError as exc:
                cause = exc.cause
                crashed = isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT
                if crashed and restart < MAX_CRASH_RESTARTS:
                    state.say("the worker running this step stopped answering: starting it again")
                    continue
                return self._failed(step, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _failed(step: Step, exc: ActivityError) -> tuple[StepReport | None, str]:
        cause = exc.cause
        report: StepReport | None = None
        if isinstance(cause, ApplicationError):
            message = cause.message
            if cause.details and isinstance(cause.details[0], dict):
                report = StepReport(**cause.details[0])
        elif isinstance(cause, TimeoutError):
            message = f"timed out after {step.timeout}s"
        else:
            message = str(cause or exc)
        if exc.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
            report = report or StepReport()
            report.attempt = step.retries.attempts
        return report, message
