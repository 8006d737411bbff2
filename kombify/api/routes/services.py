"""One service of a deployed stack: restart, stop, start, exec, and its container logs.

Each route reaches the node agents itself (kombify.operate.services), asked now: no worker
sits between the owner and a running service's output or terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlmodel import Session
from sse_starlette import EventSourceResponse

from kombify.agent.times import parse_time
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.owned import OwnsStack
from kombify.api.principal import AuthorizedDep, OrgDep
from kombify.api.stack_runs import deployed_stack
from kombify.errors import ForbiddenError, KombifyError
from kombify.names import ServiceName, StackName
from kombify.operate import services as ops
from kombify.operate.reach import DeployedStack, StackReach
from kombify.specs.quantities import parse_duration

router = APIRouter(prefix="/v1/stacks", tags=["services"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Viewers may not act on services", **_PROBLEM},
    404: {"description": "No such stack, or no such service in it", **_PROBLEM},
    409: {"description": "The stack is not deployed", **_PROBLEM},
    502: {"description": "A node or its agent failed", **_PROBLEM},
}
MAX_EXEC_TIMEOUT = 600.0
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)


class InvalidParameterError(KombifyError):
    """A query parameter is not of the form the route takes."""

    code = "invalid-parameter"
    status = 422


class ReplicaPublic(BaseModel):
    """One container of the service after the action."""

    node: str
    container: str
    replica: int
    state: str
    health: str
    ok: bool
    error: str = ""


class ServiceActionPublic(BaseModel):
    """What ``restart``, ``stop`` or ``start`` did, replica by replica."""

    stack: str
    service: str
    action: str
    ok: bool = Field(description="Every replica ended as the action meant.")
    replicas: list[ReplicaPublic]


class ExecRequest(BaseModel):
    """A command to run in one of the service's containers, without a terminal."""

    argv: list[str] = Field(min_length=1, description="The command and its arguments.")
    timeout: float = Field(default=60.0, gt=0, le=MAX_EXEC_TIMEOUT, description="Seconds.")
    replica: int | None = Field(
        default=None,
        ge=0,
        description="Which running container, from 0, ordered by node then replica.",
    )


class ExecPublic(BaseModel):
    """The command's exit code and output (each stream cut at 1 MiB; ``truncated`` says so)."""

    exit_code: int
    stdout: str
    stderr: str
    node: str
    container: str
    truncated: bool


class _Audit:
    """Records one action on ``<stack>/<service>`` in the activity log."""

    def __init__(self, db: Session, request: Request, principal: Any, target: str) -> None:
        self.db, self.request, self.principal, self.target = db, request, principal, target

    def record(self, action: str, outcome: str) -> None:
        record_event(
            self.db,
            self.request,
            action=action,
            outcome=outcome,
            principal=self.principal,
            object_type="service",
            object_id=self.target,
        )


async def _checked(
    settings: Any, org_slug: str, stack: str, service: str
) -> tuple[StackReach, DeployedStack]:
    """Where the service runs; 404/409 before anything is sent on."""
    reach = StackReach(settings)
    deployed = await reach.locate(org_slug, stack)
    deployed.nodes_of(service)
    return reach, deployed


@router.post("/{name}/services/{service}/exec", responses=_ERRORS, dependencies=[OwnsStack])
async def exec_command(
    name: StackName,
    service: ServiceName,
    body: ExecRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    principal: AuthorizedDep,
) -> ExecPublic:
    """Run a command in one of the service's running containers and return its output."""
    org, stack, _ = deployed_stack(session, org, name, doing="exec in a service of")
    audit = _Audit(session, request, principal, f"{name}/{service}")
    try:
        result = await ops.exec_in_service(
            settings,
            org.slug,
            stack.name,
            service,
            body.argv,
            timeout=body.timeout,
            replica=body.replica,
        )
    except KombifyError:
        audit.record("service.exec", "refused")
        raise
    audit.record("service.exec", "ok")
    return ExecPublic(**asdict(result))


@router.post("/{name}/services/{service}/{action}", responses=_ERRORS, dependencies=[OwnsStack])
async def act(
    name: StackName,
    service: ServiceName,
    action: Literal["restart", "stop", "start"],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    principal: AuthorizedDep,
) -> ServiceActionPublic:
    """Restart, stop or start one service on every node it runs on.

    ``stop`` holds it stopped: healing leaves it, ``kombify status`` shows
    ``stopped-by-owner``, until ``start``, ``restart`` or the next apply.
    """
    org, stack, _ = deployed_stack(session, org, name, doing=f"{action} a service of")
    audit = _Audit(session, request, principal, f"{name}/{service}")
    try:
        result = await ops.act_on_service(settings, org.slug, stack.name, service, action)
    except KombifyError:
        audit.record(f"service.{action}", "refused")
        raise
    outcome = "ok" if result.ok else "failed"
    audit.record(f"service.{action}", outcome)
    return ServiceActionPublic(
        stack=result.stack,
        service=result.service,
        action=result.action,
        ok=result.ok,
        replicas=[ReplicaPublic(**asdict(r)) for r in result.replicas],
    )


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``10m``-style durations (before now) or an RFC 3339 time; None when not given.

    Raises:
        InvalidParameterError: Neither form.
    """
    if not text:
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    if _RFC3339.match(text):
        return datetime.fromtimestamp(parse_time(text), UTC)
    raise InvalidParameterError(
        f"since: expected a duration like `10m`, `2h` or `30s`, or an RFC 3339 time like "
        f"`2026-01-31T12:00:00Z`; got `{text}`"
    )


@router.get("/{name}/services/{service}/logs", responses=_ERRORS, dependencies=[OwnsStack])
async def logs(
    name: StackName,
    service: ServiceName,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    follow: bool = Query(default=False, description="Go on with new lines until closed."),
    since: str | None = Query(
        default=None, description="Lines from this long ago (`10m`) or since an RFC 3339 time."
    ),
    tail: int = Query(default=0, ge=0, le=100_000, description="Last N lines per container."),
) -> EventSourceResponse:
    """The service's container logs as Server-Sent Events, every replica merged.

    Each line is ``event: line`` with ``data: {"time", "source": "<node>/<container>",
    "level": "info" (stdout) | "error" (stderr), "message"}``; without ``follow``,
    ``event: end`` follows the last line.
    """
    org, stack, _ = deployed_stack(session, org, name, doing="read logs of a service of")
    start = parse_since(since)
    reach, _ = await _checked(settings, org.slug, stack.name, service)
    org_slug, stack_name = org.slug, stack.name

    async def events() -> AsyncIterator[dict[str, str]]:
        lines = ops.service_logs(
            settings,
            org_slug,
            stack_name,
            service,
            follow=follow,
            tail=tail,
            since=start,
            reach=reach,
        )
        try:
            async for entry in lines:
                yield {"event": "line", "data": json.dumps(asdict(entry))}
        except KombifyError as exc:
            yield {"event": "error", "data": json.dumps({"detail": exc.message})}
            return
        if not follow:
            yield {"event": "end", "data": "{}"}

    return EventSourceResponse(events(), ping=15)


# ---- interactive exec over a WebSocket ---------------------------------------------------------
#
# Authenticated here, not by the router-wide dependency (which reads an HTTP request): the
# same credentials (`Authorization: Bearer` API key or session token, or the session cookie),
# and the member role, as any route that changes things.
ws_router = APIRouter(prefix="/v1/stacks", tags=["services"])
STDOUT, STDERR = b"\x01", b"\x02"


def _ws_principal(websocket: WebSocket, db: Session) -> Any:
    from fastapi.security import HTTPAuthorizationCredentials

    from kombify.api.principal import resolve

    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
        if scheme.lower() == "bearer" and token
        else None
    )
    principal = resolve(websocket, db, credentials)  # type: ignore[arg-type]
    if principal.mfa_pending:
        raise ForbiddenError(
            f"`{principal.organisation.slug}` requires a second factor: set up TOTP first"
        )
    principal.require("member", "exec in a service")
    return principal


async def _pump_input(websocket: WebSocket, session: ops.ExecSession) -> None:
    """The client's stdin (binary frames) and control messages (JSON text frames)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            await session.close_stdin()
            return
        if message.get("bytes"):
            await session.send(message["bytes"])
        elif message.get("text"):
            control = json.loads(message["text"])
            if control.get("type") == "resize":
                await session.resize(int(control["rows"]), int(control["cols"]))
            elif control.get("type") == "eof":
                await session.close_stdin()


@ws_router.websocket("/{name}/services/{service}/exec")
async def exec_interactive(
    websocket: WebSocket,
    name: str,
    service: str,
    cmd: list[str] = Query(default=[]),  # noqa: B008
    tty: bool = False,
    rows: int = 0,
    cols: int = 0,
    replica: int | None = None,
) -> None:
    """``kombify service exec``: stdin as binary frames, ``{"type": "resize", "rows", "cols"}``
    and ``{"type": "eof"}`` as text frames; output as binary frames whose first byte says
    the stream (1 stdout, 2 stderr); last, ``{"type": "exit", "code": N}``. A refusal is
    ``{"type": "error", "status", "detail"}`` and the socket closes.
    """
    import asyncio

    from kombify.db.engine import get_engine
    from kombify.names import check_name

    settings = websocket.app.state.settings
    await websocket.accept()
    try:
        check_name(name, what="stack name")
        check_name(service, what="service name")
        if not cmd:
            raise InvalidParameterError("cmd: the command to run is required (`cmd=sh`)")
        with Session(get_engine(settings.resolved_database_url)) as db:
            principal = _ws_principal(websocket, db)
            org, stack, _ = deployed_stack(
                db, principal.organisation, name, doing="exec in a service of"
            )
            org_slug, stack_name = org.slug, stack.name
            audit_org = principal.organisation
            _record_ws(db, websocket, principal, audit_org, f"{name}/{service}")
        async with ops.open_exec(
            settings,
            org_slug,
            stack_name,
            service,
            cmd,
            tty=tty,
            stdin=True,
            rows=rows,
            cols=cols,
            replica=replica,
        ) as session:
            feeder = asyncio.create_task(_pump_input(websocket, session))
            try:
                async for stream, chunk in session.output():
                    await websocket.send_bytes((STDOUT if stream == "stdout" else STDERR) + chunk)
            finally:
                feeder.cancel()
            await websocket.send_text(json.dumps({"type": "exit", "code": session.exit_code}))
    except KombifyError as exc:
        await websocket.send_text(
            json.dumps({"type": "error", "status": exc.status, "detail": exc.message})
        )
    except WebSocketDisconnect:
        return
    await websocket.close()


def _record_ws(db: Session, websocket: WebSocket, principal: Any, org: Any, what: str) -> None:
    from kombify.accounts import activity
    from kombify.api.activity_log import _entry

    activity.record(
        db,
        _entry(
            principal=principal,
            action="service.exec",
            outcome="ok",
            address=websocket.client.host if websocket.client else "",
            client=websocket.headers.get("user-agent", ""),
            object_type="service",
            object_id=what,
            org=org,
        ),
    )
