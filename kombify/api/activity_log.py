"""The activity log's two writers: every change through the API, and the account events.

:class:`ActivityMiddleware` records each mutating ``/v1`` request once it was answered: who
(the principal the request resolved), on behalf of whom, the route, the object its path names,
the outcome, the address and client. Account events (sign-up, login, logout …) happen before
or without a principal, so their routes call :func:`record_event` themselves; the middleware
then leaves the request to them.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import Request
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kombify.accounts import activity
from kombify.accounts.principal import Actor, Principal
from kombify.db.account_tables import Activity
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User

log = logging.getLogger(__name__)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# The path parameter that names the object a route acts on, and what kind of object it is.
_OBJECTS = (
    ("deployment_id", "deployment"),
    ("key_id", "api-key"),
    ("invitation_id", "invitation"),
    ("user_id", "member"),
    ("node", "node"),
    ("name", ""),
    ("org", "organisation"),
)


def _outcome(status: int) -> str:
    return "ok" if status < 400 else "refused" if status < 500 else "failed"


def _object(path: str, params: dict[str, Any]) -> tuple[str, str]:
    for key, kind in _OBJECTS:
        if key in params:
            if not kind:  # `name`: a stack, a simulation or a schedule, as the path says
                kind = (
                    "simulation"
                    if path.startswith("/v1/simulation")
                    else "schedule"
                    if path.startswith("/v1/schedules")
                    else "stack"
                )
            return kind, str(params[key])[:255]
    return "", ""


def _entry(
    *,
    principal: Principal | None,
    action: str,
    outcome: str,
    address: str,
    client: str,
    object_type: str = "",
    object_id: str = "",
    actor: str | None = None,
    user: User | None = None,
    org: Organisation | None = None,
) -> Activity:
    if principal is not None:
        user = user or principal.user
        org = org or principal.organisation
    return Activity(
        organisation_id=org.id if org else None,
        user_id=user.id if user else None,
        actor=(user.email if user else actor or (principal.actor if principal else "anonymous"))[
            :320
        ],
        via=principal.via if principal else ("password" if user else "anonymous"),
        on_behalf_of=principal.on_behalf_of[:320] if principal else "",
        action=action[:100],
        object_type=object_type[:40],
        object_id=object_id[:255],
        outcome=outcome,
        address=address[:64],
        client=client[:200],
    )


def record_event(
    db: Session,
    request: Request,
    *,
    action: str,
    outcome: str = "ok",
    principal: Principal | None = None,
    user: User | None = None,
    org: Organisation | None = None,
    actor: str | None = None,
    object_type: str = "",
    object_id: str = "",
) -> None:
    """Record an account event a route handled itself (committed at once); the middleware then
    leaves the request to it."""
    request.state.activity_recorded = True
    activity.record(
        db,
        _entry(
            principal=principal,
            action=action,
            outcome=outcome,
            address=request.client.host if request.client else "",
            client=request.headers.get("user-agent", ""),
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            user=user,
            org=org,
        ),
    )


class ActivityMiddleware:
    """Records every mutating ``/v1`` request after it was answered (pure ASGI)."""

    def __init__(self, app: ASGIApp, database_url: str) -> None:
        self.app = app
        self.database_url = database_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _SAFE
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            await anyio.to_thread.run_sync(self._record, scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        if state.get("activity_recorded"):
            return  # the route wrote a more telling entry itself
        who: Actor | None = state.get("actor")
        if who is None:
            return  # nobody authenticated: nothing changed (the request log has the attempt)
        route = scope.get("route")
        template = str(getattr(route, "path", scope["path"]))
        object_type, object_id = _object(template, scope.get("path_params") or {})
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        entry = Activity(
            organisation_id=who.organisation_id if who else None,
            user_id=who.user_id if who else None,
            actor=(who.actor if who else "anonymous")[:320],
            via=who.via if who else "anonymous",
            on_behalf_of=(who.on_behalf_of if who else "")[:320],
            action=f"{scope['method']} {template}"[:100],
            object_type=object_type[:40],
            object_id=object_id[:255],
            outcome=_outcome(status),
            address=(client[0] if client else "")[:64],
            client=headers.get(b"user-agent", b"").decode("latin-1")[:200],
        )
        try:
            with Session(get_engine(self.database_url)) as db:
                activity.record(db, entry)
        except Exception:  # the answer was sent already; a lost entry must not go unnoticed
            log.exception("could not record activity %s", entry.action)
