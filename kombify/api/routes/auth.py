"""Sign-up, login, logout, re-authentication, password change and the user's sessions.

Login answers the same for an unknown email and a wrong password (and takes as long), and is
limited per account and per client address. Each outcome is in the activity log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from kombify.accounts import mfa, orgs, passwords, recovery, sessions, totp, users
from kombify.accounts.principal import Principal
from kombify.admin_token import Unauthorized
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PersonOnly, PrincipalDep, UserDep, client_address, timeouts
from kombify.api.session_cookies import clear_session_cookies, expires_iso, set_session_cookies
from kombify.billing import entitlements
from kombify.db.account_tables import Credential, UserSession
from kombify.db.models import Organisation, User, utcnow
from kombify.errors import ConflictError, ForbiddenError, KombifyError, NotFoundError
from kombify.gateway import brute_force
from kombify.names import RecordId

router = APIRouter(prefix="/v1/auth", tags=["accounts"])
log = logging.getLogger(__name__)

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong credentials, or a second factor is needed", **_PROBLEM},
    403: {"description": "Not allowed (sign-up closed, a session is needed …)", **_PROBLEM},
    409: {"description": "Conflicts with what exists", **_PROBLEM},
    422: {"description": "Invalid input, naming the field", **_PROBLEM},
    429: {"description": "Too many tries; see Retry-After", **_PROBLEM},
}


class MfaRequired(Unauthorized):
    """The password was right; a TOTP code (or a recovery code) is needed too."""

    code = "mfa-required"


class SignupRequest(BaseModel):
    """A new account."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(default="", max_length=200)
    invitation: str | None = Field(default=None, max_length=200, description="Invitation token.")


class LoginRequest(BaseModel):
    """Credentials; ``totp`` (or a ``recovery_code``) when the account has a second factor."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    totp: str | None = Field(default=None, max_length=20)
    recovery_code: str | None = Field(default=None, max_length=40)


class ReauthRequest(BaseModel):
    """The password again (and a TOTP code when the account has one), before a sensitive change."""

    password: str = Field(max_length=1024)
    totp: str | None = Field(default=None, max_length=20)


class PasswordChange(BaseModel):
    """A new password, proven by the current one."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


def user_public(user: User, db: SessionDep) -> dict[str, Any]:
    """A user as the API shows it (never a credential)."""
    cred = db.get(Credential, user.id)
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "email_verified": bool(cred and cred.email_verified),
        "mfa_enabled": totp.enabled(cred),
    }


def org_public(org: Organisation) -> dict[str, Any]:
    """An organisation as the API shows it."""
    return {"id": org.id, "slug": org.slug, "name": org.name}


def _guard(request: Request, route_class: str, account: str) -> None:
    # The app's limiter (Redis when configured) and the `tries` rule of KOMBIFY_RATE_LIMITS.
    brute_force.check_request(request, route_class, account)


def _needs_mfa_enrolment(db: SessionDep, user: User, cred: Credential) -> bool:
    if totp.enabled(cred):
        return False
    return any(orgs.mfa_required(db, org.id) for org, _ in orgs.memberships(db, user.id))


def second_factor(db: SessionDep, cred: Credential, code: str | None, recovery: str | None) -> None:
    """Refuse unless the account has no second factor or one of the codes is right."""
    if not totp.enabled(cred):
        return
    if code is None and recovery is None:
        raise MfaRequired("this account has a second factor: send `totp` (or a `recovery_code`)")
    if code is not None and totp.check_code(db, cred, code):
        return
    if recovery is not None and totp.use_recovery_code(db, cred.user_id, recovery):
        return
    raise Unauthorized("wrong or already used code")


@router.post("/signup", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def signup(body: SignupRequest, request: Request, db: SessionDep, settings: SettingsDep) -> Any:
    """Create an account: with an invitation, in its organisation; else (open sign-up only) in
    a new organisation of one's own, as its owner."""
    email = users.normal_email(body.email)
    _guard(request, "signup", email)
    if settings.signup == "closed":
        raise ForbiddenError(
            "sign-up is closed on this installation: no new accounts (invitations work for "
            "existing accounts: sign in and accept it)"
        )
    invitation = orgs.open_invitation(db, body.invitation) if body.invitation else None
    if invitation is None and settings.signup != "open":
        raise ForbiddenError("sign-up is by invitation on this installation: ask an owner for one")
    if invitation is not None and invitation.email != email:
        raise ConflictError("email: the invitation was sent to another address")
    passwords.check_new_password(body.password, email=email)
    if users.by_email(db, email) is not None:
        raise ConflictError("email: an account with this address exists; sign in instead")
    if invitation is not None:
        org = db.get(Organisation, invitation.organisation_id)
        assert org is not None  # an invitation goes with its organisation (cascade)
        # The plan may have lost team collaboration since the invitation was sent.
        entitlements.check_team(db, org, settings, action="joining by invitation")
        user = users.create(
            db,
            email=email,
            organisation=org,
            role=invitation.role,
            password=body.password,
            name=body.name,
            email_verified=True,  # the invitation reached this address
        )
        invitation.accepted_at = utcnow()
        db.add(invitation)
        db.commit()
    else:
        org = orgs.create(db, slug=orgs.personal_slug(db, email), name=body.name or email)
        user = users.create(
            db, email=email, organisation=org, role="owner", password=body.password, name=body.name
        )
        recovery.send_verification(db, settings, user)  # a mail with a kfv_ token (docs/mfa.md)
    record_event(
        db, request, action="signup", user=user, org=org, object_type="user", object_id=user.id
    )
    return {"user": user_public(user, db), "organisation": org_public(org)}


@router.post("/login", responses=_ERRORS)
def login(
    body: LoginRequest, request: Request, response: Response, db: SessionDep, settings: SettingsDep
) -> Any:
    """Sign in: a new session (token and cookies), whatever sessions exist already."""
    email = body.email.strip().lower()[:320]
    _guard(request, "login", email)
    user = users.by_email(db, email)
    cred = db.get(Credential, user.id) if user else None
    ok = passwords.verify_password(body.password, cred.password_hash if cred else None)
    if user is None or cred is None or not ok or cred.disabled:
        record_event(db, request, action="login", outcome="refused", actor=email)
        raise Unauthorized("wrong email or password")
    try:
        second_factor(db, cred, body.totp, body.recovery_code)
    except KombifyError:
        record_event(db, request, action="login", outcome="refused", user=user)
        raise
    if cred.password_hash and passwords.needs_rehash(cred.password_hash):
        cred.password_hash = passwords.hash_password(body.password)
        db.add(cred)
        db.commit()
    enrol = _needs_mfa_enrolment(db, user, cred)
    new = sessions.start(
        db,
        user_id=user.id,
        timeouts=timeouts(settings),
        address=client_address(request),
        client=request.headers.get("user-agent", ""),
        mfa_satisfied=not enrol,
    )
    set_session_cookies(response, new)
    org = db.get(Organisation, user.organisation_id)
    assert org is not None
    record_event(
        db, request, action="login", user=user, org=org, object_type="session", object_id=new.row.id
    )
    return {
        "token": new.token,
        "csrf": new.csrf,
        "expires_at": expires_iso(new.row.expires_at),
        "user": user_public(user, db),
        "organisation": org_public(org),
        "mfa_enrolment_required": enrol,
    }


def _session_of(db: SessionDep, principal: Principal) -> UserSession:
    if principal.via != "session" or principal.session_id is None:
        raise ConflictError(
            "this needs a signed-in session (API keys are revoked, not signed out: "
            "DELETE /v1/api-keys/{id})"
        )
    row = db.get(UserSession, principal.session_id)
    assert row is not None
    return row


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    dependencies=[PersonOnly],
)
def logout(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """End this session (its token and cookies stop working at once)."""
    row = _session_of(db, principal)
    sessions.revoke(db, row)
    record_event(
        db, request, action="logout", principal=principal, object_type="session", object_id=row.id
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response)
    return response


@router.post(
    "/reauth",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    dependencies=[PersonOnly],
)
def reauthenticate(
    body: ReauthRequest, request: Request, principal: PrincipalDep, user: UserDep, db: SessionDep
) -> Response:
    """Prove it is still you (password, and TOTP if on) before a sensitive change."""
    row = _session_of(db, principal)
    _guard(request, "login", user.email)
    cred = users.credential(db, user.id)
    if not passwords.verify_password(body.password, cred.password_hash):
        record_event(db, request, action="reauth", outcome="refused", principal=principal)
        raise Unauthorized("wrong password")
    second_factor(db, cred, body.totp, None)
    row.reauthenticated_at = utcnow()
    db.add(row)
    db.commit()
    record_event(db, request, action="reauth", principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def require_recent_reauth(db: SessionDep, principal: Principal, settings: SettingsDep) -> None:
    """Refuse a sensitive change (403 ``reauth-required``) unless the session re-authenticated
    within the window."""
    if principal.via != "session" or principal.session_id is None:
        return  # an API key with the needed scope, or the admin token: no password to ask
    row = db.get(UserSession, principal.session_id)
    assert row is not None  # the principal was resolved from it in this request
    mfa.check_recent_reauth(row, settings.reauth_minutes)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    dependencies=[PersonOnly],
)
def change_password(
    body: PasswordChange, request: Request, principal: PrincipalDep, user: UserDep, db: SessionDep
) -> Response:
    """Change the password; every other session of the user ends."""
    _guard(request, "login", user.email)
    cred = users.credential(db, user.id)
    if not passwords.verify_password(body.current_password, cred.password_hash):
        record_event(db, request, action="password-change", outcome="refused", principal=principal)
        raise Unauthorized("current_password: wrong password")
    passwords.check_new_password(body.new_password, email=user.email)
    cred.password_hash = passwords.hash_password(body.new_password)
    cred.password_changed_at = utcnow()
    db.add(cred)
    db.commit()
    sessions.revoke_all(db, user.id, keep=principal.session_id)
    record_event(db, request, action="password-change", principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _session_public(row: UserSession, current: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": expires_iso(row.created_at),
        "last_seen_at": expires_iso(row.last_seen_at),
        "expires_at": expires_iso(row.expires_at),
        "address": row.address,
        "client": row.client,
        "current": row.id == current,
    }


@router.get("/sessions", responses=_ERRORS)
def list_sessions(
    principal: PrincipalDep, user: UserDep, db: SessionDep, settings: SettingsDep
) -> Any:
    """Your live sessions, newest first."""
    rows = sessions.listed(db, user.id, timeouts(settings))
    data = [_session_public(r, principal.session_id) for r in rows]
    return {"data": data, "count": len(data)}


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    dependencies=[PersonOnly],
)
def revoke_session(
    session_id: RecordId, request: Request, principal: PrincipalDep, user: UserDep, db: SessionDep
) -> Response:
    """End one of your sessions (it is refused from its next request on)."""
    row = db.get(UserSession, session_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError(f"no session `{session_id}`")
    sessions.revoke(db, row)
    record_event(
        db,
        request,
        action="session-revoke",
        principal=principal,
        object_type="session",
        object_id=row.id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/sessions", responses=_ERRORS, dependencies=[PersonOnly])
def revoke_other_sessions(
    request: Request, principal: PrincipalDep, user: UserDep, db: SessionDep
) -> Any:
    """End every session of yours but this one."""
    ended = sessions.revoke_all(db, user.id, keep=principal.session_id)
    record_event(
        db,
        request,
        action="session-revoke-all",
        principal=principal,
        object_type="user",
        object_id=user.id,
    )
    return {"revoked": ended}
