"""The signed-in user's second factor (TOTP and recovery codes) and an organisation's MFA
requirement.

These routes authenticate themselves (they are public routers): the ``/v1/auth/mfa`` ones stay
open to a session that still has to enrol, the organisation switch does not. Managing a factor
needs a session (a person at a browser or the CLI), never an API key or SSO token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from kombify.accounts import mfa, orgs
from kombify.accounts.principal import Principal
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep, UserDep, client_address
from kombify.db.account_tables import UserSession
from kombify.db.models import Organisation
from kombify.errors import ForbiddenError, NotFoundError
from kombify.gateway.brute_force import check as brute_force_check
from kombify.names import check_name

router = APIRouter(tags=["mfa"])


def _guard(request: Request, route_class: str, account: str) -> None:
    """Count one try against the account and the client address (429 past 10 a minute)."""
    brute_force_check(request.app.state.limiter, route_class, account, client_address(request))


_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_SESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in", **_PROBLEM},
    403: {"description": "Not a session, or a re-authentication is due", **_PROBLEM},
    409: {"description": "The second factor is not in the state this needs", **_PROBLEM},
}


class MfaStatus(BaseModel):
    """The signed-in user's second factor (never its seed)."""

    totp_enabled: bool
    enrolment_pending: bool = Field(description="A seed was handed out but not confirmed yet.")
    recovery_codes_left: int
    required_by: list[str] = Field(description="Organisations of yours that require MFA.")


class TotpEnrolment(BaseModel):
    """A new TOTP seed, shown this once: give it to an authenticator app, then confirm."""

    secret: str = Field(description="Base32 seed, for typing it in.")
    otpauth_uri: str = Field(description="The same as an otpauth:// URI (for a QR code).")


class TotpConfirm(BaseModel):
    """The authenticator's current code for the new seed."""

    code: str = Field(min_length=6, max_length=10, examples=["123456"])


class RecoveryCodes(BaseModel):
    """One-time codes for a lost authenticator, shown this once (each works once)."""

    recovery_codes: list[str]


class OrgMfa(BaseModel):
    """An organisation's MFA requirement."""

    required: bool


class OrgMfaPublic(BaseModel):
    """An organisation's MFA requirement and who still has to enrol."""

    organisation: str
    required: bool
    members_without_mfa: int


def _session(db: Session, principal: Principal) -> UserSession:
    row = db.get(UserSession, principal.session_id) if principal.session_id else None
    if principal.via != "session" or row is None:
        raise ForbiddenError(
            "managing a second factor needs a signed-in session (POST /v1/auth/login), "
            "not an API key or a token"
        )
    return row


@router.get("/v1/auth/mfa", responses=_SESSION_ERRORS)
def mfa_status(db: SessionDep, user: UserDep) -> MfaStatus:
    """Whether TOTP is on, how many recovery codes are left, which organisations require it."""
    found = mfa.status(db, user)
    return MfaStatus(
        totp_enabled=found.totp_enabled,
        enrolment_pending=found.enrolment_pending,
        recovery_codes_left=found.recovery_codes_left,
        required_by=found.required_by,
    )


@router.post("/v1/auth/mfa/totp", responses=_SESSION_ERRORS)
def begin_totp(
    db: SessionDep, user: UserDep, principal: PrincipalDep, settings: SettingsDep
) -> TotpEnrolment:
    """Start TOTP enrolment: a new seed, pending until a code of it is confirmed.

    Needs a sign-in of the last minutes (a fresh login is one): a stolen session must not be
    able to tie the account to the thief's authenticator.
    """
    mfa.check_recent_reauth(_session(db, principal), settings.reauth_minutes)
    enrolment = mfa.begin(db, user)
    return TotpEnrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@router.post(
    "/v1/auth/mfa/totp/confirm",
    responses={
        **_SESSION_ERRORS,
        400: {"description": "Not the current code", **_PROBLEM},
        429: {"description": "Too many tries", **_PROBLEM},
    },
)
def confirm_totp(
    body: TotpConfirm, request: Request, db: SessionDep, user: UserDep, principal: PrincipalDep
) -> RecoveryCodes:
    """Turn TOTP on with a code of the pending seed; ends your other sessions. The answer holds
    your recovery codes, shown this once."""
    row = _session(db, principal)
    _guard(request, "mfa", user.id)
    return RecoveryCodes(recovery_codes=mfa.confirm(db, user, body.code, session_id=row.id))


@router.delete("/v1/auth/mfa/totp", status_code=204, responses=_SESSION_ERRORS)
def turn_off_totp(
    db: SessionDep, user: UserDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    """Turn TOTP off (needs a recent re-authentication; refused while an organisation of yours
    requires MFA) or drop an unconfirmed enrolment; ends your other sessions."""
    row = _session(db, principal)
    mfa.turn_off(db, user, session=row, reauth_minutes=settings.reauth_minutes)
    return Response(status_code=204)


@router.post("/v1/auth/mfa/recovery-codes", responses=_SESSION_ERRORS)
def renew_recovery_codes(
    db: SessionDep, user: UserDep, principal: PrincipalDep, settings: SettingsDep
) -> RecoveryCodes:
    """A new set of recovery codes (needs a recent re-authentication); the old ones stop
    working."""
    row = _session(db, principal)
    codes = mfa.new_recovery_codes(db, user, session=row, reauth_minutes=settings.reauth_minutes)
    return RecoveryCodes(recovery_codes=codes)


def _org_as(db: Session, principal: Principal, slug: str, minimum: str) -> Organisation:
    """The organisation ``slug`` names, if the caller's role there is at least ``minimum``.

    The role is the caller's in the organisation of the path (not of ``X-Kombify-Org``), and a
    session that still has to enrol a second factor gets no further, as on every /v1 route.
    """
    if principal.mfa_pending:
        raise ForbiddenError(
            "your organisation requires a second factor: set up TOTP first "
            "(POST /v1/auth/mfa/totp, then /v1/auth/mfa/totp/confirm)"
        )
    org = orgs.by_slug(db, check_name(slug, what="org"))
    if org is None or principal.user is None:
        raise NotFoundError(f"no organisation `{slug}`")
    if principal.via == "api-key":
        role = principal.role if principal.organisation.id == org.id else None
    else:
        member = orgs.membership(db, org.id, principal.user.id)
        role = member.role if member else None
    if role is None:
        raise NotFoundError(f"no organisation `{slug}`")
    Principal(user=principal.user, organisation=org, role=role, via=principal.via).require(
        minimum, "the organisation's MFA requirement"
    )
    return org


def _org_public(db: Session, org: Organisation) -> OrgMfaPublic:
    return OrgMfaPublic(
        organisation=org.slug,
        required=orgs.mfa_required(db, org.id),
        members_without_mfa=len(mfa.members_without_mfa(db, org.id)),
    )


_ORG_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an owner (or a session that must enrol first)", **_PROBLEM},
    404: {"description": "No such organisation of yours", **_PROBLEM},
    409: {"description": "Turn on your own second factor first", **_PROBLEM},
}


@router.get("/v1/orgs/{org}/mfa", responses=_ORG_ERRORS)
def org_mfa(org: str, db: SessionDep, principal: PrincipalDep) -> OrgMfaPublic:
    """Whether the organisation requires MFA, and how many members have none yet."""
    return _org_public(db, _org_as(db, principal, org, "viewer"))


@router.put("/v1/orgs/{org}/mfa", responses=_ORG_ERRORS)
def set_org_mfa(
    org: str, body: OrgMfa, db: SessionDep, principal: PrincipalDep, user: UserDep
) -> OrgMfaPublic:
    """Owners only: require a second factor of every member. Members without one are held to
    enrolment (their sessions reach only /v1/me and /v1/auth/*) until they set up TOTP."""
    found = _org_as(db, principal, org, "owner")
    mfa.set_org_requirement(db, found, body.required, by=user)
    return _org_public(db, found)
