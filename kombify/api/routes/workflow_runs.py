"""Owners' workflow files: validate one, start a run, list runs, read one (docs/workflows.md).

Runs are scoped by their workflow id's organisation prefix: another organisation's run is 404.
Starting a run is a change (members only, recorded in the activity log by its middleware).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, Field

from kombify.api.deps import SettingsDep, TemporalDep, get_temporal
from kombify.api.principal import AuthorizedDep, OrgDep
from kombify.contracts.user_workflow import user_workflow_id_prefix
from kombify.errors import NotFoundError
from kombify.operate.user_runs import get_user_run, list_user_runs, start_user_run
from kombify.specs.source import MAX_BYTES
from kombify.userwf.load import load_workflow, resolve_inputs, workflow_problems

router = APIRouter(prefix="/v1", tags=["workflows"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such workflow run in this organisation", **_PROBLEM},
    422: {"description": "The workflow file or an input is invalid", **_PROBLEM},
}
RunId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9._:-]{1,255}$",
        description="The run's id (`kombify-userwf.<org>.…`), as listed.",
    ),
]


class WorkflowSource(BaseModel):
    """A workflow file's text."""

    source: str = Field(max_length=MAX_BYTES, description="The YAML text (kind: Workflow).")
    filename: str = Field(
        default="workflow.yaml", max_length=255, description="Named in error messages."
    )


class WorkflowRunCreate(WorkflowSource):
    """A run of a workflow file with its inputs."""

    inputs: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="Values of the file's spec.inputs."
    )


@router.post("/workflows/validate")
def validate_workflow(body: WorkflowSource) -> dict[str, Any]:
    """Check a workflow file; ``errors`` lists each problem with its path and line."""
    problems = workflow_problems(body.source, body.filename)
    return {"valid": not problems, "errors": [p.to_dict() for p in problems]}


@router.post("/workflow-runs", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
async def create_workflow_run(
    body: WorkflowRunCreate,
    principal: AuthorizedDep,
    org: OrgDep,
    request: Request,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Validate the file and start a run; follow it with ``GET /v1/workflow-runs/{id}``."""
    # A bad file or input is refused before Temporal is dialled.
    resolve_inputs(load_workflow(body.source, body.filename), body.inputs)
    client = await get_temporal(request)
    if principal.api_key_id:
        triggered_by = f"api-key:{principal.api_key_id}"
    elif principal.user is not None:
        triggered_by = f"user:{principal.user.id}"
    else:
        triggered_by = principal.via
    return await start_user_run(
        client=client,
        settings=settings,
        organisation=org.slug,
        source=body.source,
        filename=body.filename,
        inputs=body.inputs,
        triggered_by=triggered_by,
    )


@router.get("/workflow-runs")
async def list_workflow_runs(org: OrgDep, client: TemporalDep) -> dict[str, Any]:
    """The organisation's runs, newest first."""
    runs = await list_user_runs(client=client, organisation=org.slug)
    return {"data": runs, "count": len(runs)}


@router.get("/workflow-runs/{run_id}", responses=_ERRORS)
async def get_workflow_run(run_id: RunId, org: OrgDep, request: Request) -> dict[str, Any]:
    """One run: every step's state, attempts, outputs, timings and last log lines."""
    # Another organisation's id is refused before Temporal is dialled.
    if not run_id.startswith(user_workflow_id_prefix(org.slug)):
        raise NotFoundError(f"no workflow run `{run_id}`")
    client = await get_temporal(request)
    return await get_user_run(client=client, organisation=org.slug, run_id=run_id)
