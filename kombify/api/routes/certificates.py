"""Certificates: renew the node agents' and the control plane's before they expire."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from kombify.api.deps import SettingsDep, TemporalDep
from kombify.api.principal import InstallationAdmin
from kombify.contracts.deploy import RenewInput
from kombify.errors import ConflictError
from kombify.workflows.certificates import WORKFLOW_ID, RenewCertificates

router = APIRouter(prefix="/v1/certificates", tags=["certificates"])


class RenewRequest(BaseModel):
    """How close to expiry a certificate must be to be replaced."""

    within_days: int = Field(default=30, ge=0, le=3650)


@router.post("/renew", dependencies=[InstallationAdmin])
async def renew_certificates(
    body: RenewRequest, client: TemporalDep, settings: SettingsDep
) -> dict[str, Any]:
    """Run the renewal now (the schedule also runs it daily) and return what it did."""
    try:
        result = await client.execute_workflow(
            RenewCertificates.run,
            RenewInput(within_days=body.within_days),
            id=WORKFLOW_ID,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            execution_timeout=timedelta(minutes=30),
        )
    except WorkflowAlreadyStartedError as exc:
        raise ConflictError("a certificate renewal is already running") from exc
    return asdict(result)
