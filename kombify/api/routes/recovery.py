"""Password reset and email verification by one-time tokens sent in a mail.

Asking for a reset answers 202 at once and alike for every address: looking the address up,
writing the token and sending the mail happen after the answer (a background task), so neither
the answer nor its timing says whether the address has an account.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from kombify.accounts import recovery
from kombify.accounts.users import normal_email
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PersonOnly, UserDep
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User
from kombify.errors import ConflictError
from kombify.gateway import brute_force
from kombify.settings import Settings

router = APIRouter(tags=["auth"])


def _guard(request: Request, route_class: str, account: str) -> None:
    """Count one try against the account and the client address (429 past the `tries` rule of
    KOMBIFY_RATE_LIMITS, 10 a minute by default)."""
    brute_force.check_request(request, route_class, account)


log = logging.getLogger("kombify.mail")

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many tries from this address or for this account", **_PROBLEM}
}


class ResetRequest(BaseModel):
    """The address of the account whose password is forgotten."""

    email: str = Field(max_length=320, examples=["ada@example.org"])


class ResetConfirm(BaseModel):
    """The token from the reset mail and the new password."""

    token: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=1024)


class VerifyEmail(BaseModel):
    """The token from the verification mail."""

    token: str = Field(min_length=1, max_length=200)


class Accepted(BaseModel):
    """The request was taken; what happens next."""

    detail: str


def _record(db: Session, request: Request, action: str, user: User) -> None:
    """The account event in the activity log (the caller proved itself by the mailed token)."""
    record_event(
        db,
        request,
        action=action,
        user=user,
        org=db.get(Organisation, user.organisation_id),
        object_type="user",
        object_id=user.id,
    )


def _mail_reset(settings: Settings, email: str) -> None:
    try:
        with Session(get_engine(settings.resolved_database_url)) as db:
            recovery.request_reset(db, settings, email)
    except Exception as exc:  # after the answer: nobody to tell but the log
        log.error("password reset mail not written: %s", type(exc).__name__)


@router.post("/v1/auth/password-reset", status_code=202, responses=_LIMITED)
def request_password_reset(
    body: ResetRequest, request: Request, settings: SettingsDep, tasks: BackgroundTasks
) -> Accepted:
    """Mail a reset token (valid 30 minutes, once) to the address if it has an account; the
    answer is the same either way."""
    email = normal_email(body.email)
    _guard(request, "password-reset", email)
    tasks.add_task(_mail_reset, settings, email)
    return Accepted(
        detail=f"if {email} has an account, a reset mail is on its way (valid 30 minutes)"
    )


@router.post(
    "/v1/auth/password-reset/confirm",
    status_code=204,
    responses={
        **_LIMITED,
        400: {"description": "Unknown, used or expired token", **_PROBLEM},
        422: {"description": "The password breaks the rules", **_PROBLEM},
    },
)
def confirm_password_reset(body: ResetConfirm, request: Request, db: SessionDep) -> Response:
    """Set a new password with the mailed token (used up); every session of the account ends."""
    found = recovery.find(db, body.token, recovery.PASSWORD_RESET)
    _guard(request, "password-reset-confirm", found.user_id if found else "unknown-token")
    user = recovery.confirm_reset(db, body.token, body.password)
    _record(db, request, "password-reset", user)
    return Response(status_code=204)


@router.post(
    "/v1/auth/verify-email",
    status_code=204,
    responses={400: {"description": "Unknown, used or expired token", **_PROBLEM}},
)
def verify_email(body: VerifyEmail, request: Request, db: SessionDep) -> Response:
    """Confirm the account's email address with the mailed token (used up)."""
    user = recovery.confirm_verification(db, body.token)
    _record(db, request, "verify-email", user)
    return Response(status_code=204)


@router.post(
    "/v1/auth/verify-email/resend",
    status_code=202,
    dependencies=[PersonOnly],
    responses={
        **_LIMITED,
        401: {"description": "Not signed in", **_PROBLEM},
        409: {"description": "Already verified", **_PROBLEM},
    },
)
def resend_verification(
    request: Request, db: SessionDep, settings: SettingsDep, user: UserDep
) -> Accepted:
    """Mail a new verification token (valid 2 days; earlier ones stop working)."""
    _guard(request, "verify-email", user.id)
    if not recovery.send_verification(db, settings, user):
        raise ConflictError("email: already verified")
    return Accepted(detail=f"a verification mail is on its way to {user.email}")
