"""Starting, listing and reading runs of owners' workflow files (the API's routes use these).

A run is a ``RunUserWorkflow`` execution whose id starts with the organisation's prefix
(:func:`kombify.contracts.user_workflow.user_workflow_id_prefix`): that prefix is how runs are
scoped, so a run of another organisation is simply not found.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from kombify.contracts.deploy import ORGANISATION, RUN_KIND
from kombify.contracts.user_workflow import (
    USER_WORKFLOW_NAME,
    UserWorkflowInput,
    user_workflow_id_prefix,
)
from kombify.errors import NotFoundError
from kombify.settings import Settings
from kombify.userwf.load import load_workflow, resolve_inputs
from kombify.workflows.user_workflow import PROGRESS_QUERY

RUN_KIND_WORKFLOW = "workflow"
MAX_LISTED = 100
_STATES = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "succeeded",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued",
    WorkflowExecutionStatus.TIMED_OUT: "timed-out",
}


async def start_user_run(
    *,
    client: Client,
    settings: Settings,
    organisation: str,
    source: str,
    filename: str,
    inputs: Mapping[str, str],
    triggered_by: str,
) -> dict[str, Any]:
    """Validate the file and its inputs, then start a run; the run as listed.

    Raises:
        WorkflowFileError: The file is invalid (its problems with paths and lines).
        SpecError: An input is unknown or a required one is missing.
    """
    model = load_workflow(source, filename)
    resolve_inputs(model, inputs)
    run_id = f"{user_workflow_id_prefix(organisation)}{model.name}-{secrets.token_hex(4)}"
    handle = await client.start_workflow(
        USER_WORKFLOW_NAME,
        UserWorkflowInput(
            organisation=organisation,
            source=source,
            filename=filename,
            triggered_by=triggered_by,
            inputs=dict(inputs),
        ),
        id=run_id,
        task_queue=settings.task_queue,
        memo={"workflow": model.name, "triggered_by": triggered_by},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(ORGANISATION, organisation),
                SearchAttributePair(RUN_KIND, RUN_KIND_WORKFLOW),
            ]
        ),
    )
    return {
        "id": run_id,
        "run_id": handle.result_run_id,
        "workflow": model.name,
        "state": "running",
        "triggered_by": triggered_by,
    }


def _name_of(run_id: str, organisation: str) -> str:
    rest = run_id.removeprefix(user_workflow_id_prefix(organisation))
    return rest.rsplit("-", 1)[0] if "-" in rest else rest


async def list_user_runs(*, client: Client, organisation: str) -> list[dict[str, Any]]:
    """The organisation's runs, newest first (at most :data:`MAX_LISTED`)."""
    prefix = user_workflow_id_prefix(organisation)
    found: list[dict[str, Any]] = []
    # Listed by type and filtered by the id prefix: runs a schedule started are included even
    # if their start set no search attributes.
    async for execution in client.list_workflows(f"WorkflowType = '{USER_WORKFLOW_NAME}'"):
        if not execution.id.startswith(prefix):
            continue
        memo = await execution.memo()
        found.append(
            {
                "id": execution.id,
                "workflow": str(memo.get("workflow") or _name_of(execution.id, organisation)),
                "state": _STATES.get(execution.status, "unknown")
                if execution.status
                else "unknown",
                "started_at": execution.start_time.isoformat(),
                "finished_at": execution.close_time.isoformat() if execution.close_time else None,
                "triggered_by": str(memo.get("triggered_by", "")),
            }
        )
        if len(found) >= MAX_LISTED:
            break
    found.sort(key=lambda run: str(run["started_at"]), reverse=True)
    return found


async def get_user_run(*, client: Client, organisation: str, run_id: str) -> dict[str, Any]:
    """One run's summary: every step's state, attempts, outputs, timings and log lines.

    Raises:
        NotFoundError: No run of this organisation with that id.
    """
    missing = NotFoundError(f"no workflow run `{run_id}`")
    if not run_id.startswith(user_workflow_id_prefix(organisation)):
        raise missing
    handle = client.get_workflow_handle(run_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        raise missing from exc
    if described.workflow_type != USER_WORKFLOW_NAME:
        raise missing
    status = described.status
    summary: dict[str, Any] | None = None
    if status == WorkflowExecutionStatus.COMPLETED:
        summary = await handle.result()
    elif status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details:
                summary = cause.details[0]
    elif status == WorkflowExecutionStatus.RUNNING:
        try:
            summary = await handle.query(PROGRESS_QUERY)
        except RPCError:
            # No worker answers right now (it is restarting): the run goes on, unseen.
            summary = None
    state = _STATES.get(status, "unknown") if status else "unknown"
    if not isinstance(summary, dict):
        summary = {"workflow": _name_of(run_id, organisation), "steps": [], "error": ""}
    return {**summary, "id": run_id, "state": state}
