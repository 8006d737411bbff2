"""Liveness and readiness: ``/healthz`` says the process is up, ``/readyz`` that it can work."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from kombify import __version__
from kombify.api.deps import SettingsDep, get_temporal
from kombify.api.problems import problem
from kombify.db.engine import check_database
from kombify.errors import KombifyError
from kombify.identity.tool_bridge import reachability

router = APIRouter(tags=["health"])

# Readiness must answer quickly even when a dependency hangs.
_PROBE_TIMEOUT = 3.0


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok", "version": __version__}


async def _temporal_error(request: Request) -> str | None:
    try:
        client = await asyncio.wait_for(get_temporal(request), _PROBE_TIMEOUT)
        await asyncio.wait_for(
            client.workflow_service.get_system_info(GetSystemInfoRequest()), _PROBE_TIMEOUT
        )
    except TimeoutError:
        request.app.state.temporal = None
        return "no answer within 3s"
    except (KombifyError, RuntimeError) as exc:
        request.app.state.temporal = None
        return str(exc).splitlines()[0]
    return None


async def _redis_error(request: Request) -> str | None:
    limiter = getattr(request.app.state, "limiter", None)
    probe = getattr(limiter, "problem", None)
    if probe is None:
        return None
    try:
        error: str | None = await asyncio.wait_for(asyncio.to_thread(probe), _PROBE_TIMEOUT)
    except TimeoutError:
        return "no answer within 3s"
    return error


@router.get(
    "/readyz",
    summary="The database, Temporal and (when configured) Redis answer",
    responses={503: {"description": "A dependency does not answer (problem+json names it)"}},
)
async def readyz(request: Request, settings: SettingsDep) -> Any:
    """200 when every upstream answers (database, Temporal, Redis when KOMBIFY_REDIS_URL is
    set), else 503 naming which do not; the tools of KOMBIFY_TOOLS are reported beside them."""
    db_error = await asyncio.to_thread(check_database, settings.resolved_database_url)
    temporal_error = await _temporal_error(request)
    checks = {
        "database": {"ok": db_error is None, "error": db_error},
        "temporal": {"ok": temporal_error is None, "error": temporal_error},
    }
    if settings.redis_url is not None:
        redis_error = await _redis_error(request)
        checks["redis"] = {"ok": redis_error is None, "error": redis_error}
    failing = [name for name, check in checks.items() if not check["ok"]]
    # The tools kombify fronts are reported, not required: a portal whose Stack is down still
    # signs people in and serves everything else, so a load balancer must keep it.
    for tool in await reachability(settings):
        checks[f"tool/{tool.name}"] = {"ok": tool.ok, "error": tool.error, "required": False}
    # Only `graph?format=svg` needs it (kombify.operate.graph.svg).
    dot = shutil.which("dot") is not None
    checks["graphviz"] = {
        "ok": dot,
        "error": None if dot else "no `dot` (apt-get install graphviz): graphs draw no SVG",
        "required": False,
    }
    if failing:
        return problem(
            503,
            "Not ready",
            f"{' and '.join(failing)} not reachable",
            code="not-ready",
            instance="/readyz",
            checks=checks,
        )
    return JSONResponse({"status": "ready", "checks": checks})
