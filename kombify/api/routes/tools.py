"""The tool bridge: ``/v1/tools/<tool>/<path>`` forwarded to the tool with an SSO token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import SAFE_METHODS, PrincipalDep
from kombify.api.routes.sso import _no_pending_mfa
from kombify.identity import sso_tokens, tool_bridge

router = APIRouter(tags=["tools"])

_PATH = "/v1/tools/{tool}/{path:path}"
_RESPONSES: dict[int | str, dict[str, str]] = {
    200: {"description": "The tool's answer, as it gave it (any status)"},
    502: {"description": "The tool did not answer"},
}


async def _bridge(
    tool: str,
    path: str,
    request: Request,
    principal: PrincipalDep,
    db: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Forward the request to ``tool`` as the caller (the tool checks the role itself)."""
    _no_pending_mfa(principal)
    # The portal's own rule before the tool's: a tool that ignores roles still sees no
    # change from a viewer.
    if request.method not in SAFE_METHODS:
        principal.require("member", f"{request.method} on tool `{tool}`")
    base = tool_bridge.tool_url(settings, tool)
    tool_bridge.check_path(path)
    issued = await run_in_threadpool(
        sso_tokens.issue, db, settings=settings, principal=principal, audience=tool
    )
    user_id = principal.user.id if principal.user else ""
    headers = tool_bridge.outgoing_headers(
        dict(request.headers),
        token=issued.token,
        user_id=user_id,
        org_id=principal.organisation.id,
    )
    answer = await tool_bridge.forward(
        base=base,
        tool=tool,
        method=request.method,
        path=path,
        query=request.url.query,
        headers=headers,
        body=await request.body(),
    )
    return Response(content=answer.body, status_code=answer.status, headers=answer.headers)


for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        _PATH,
        _bridge,
        methods=[_method],
        name=f"tool_{_method.lower()}",
        operation_id=f"tool_{_method.lower()}",
        summary=f"{_method} on a tool this portal fronts, as the caller",
        response_class=Response,
        responses=_RESPONSES,
    )
