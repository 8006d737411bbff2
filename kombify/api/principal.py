"""Who is calling: the one place every ``/v1`` request is authenticated and authorised.

Credentials, in this order:

``Authorization: Bearer kfk_…``
    An API key: its organisation, its owner's role there capped by its scope.
``Authorization: Bearer kfs_…`` or the ``__Host-kombify_session`` cookie
    A session from ``POST /v1/auth/login``. With the cookie, a mutating request must also
    send ``X-CSRF-Token`` (the value login returned; also in the ``__Host-kombify_csrf``
    cookie); a bearer token needs none (a browser never attaches it by itself).
``Authorization: Bearer <JWT>``
    An SSO token of a trusted kombify portal, when this instance is configured to trust one
    (``app.state.sso_verifier``, see :mod:`kombify.identity`).
``Authorization: Bearer <admin token>``
    The local admin token, only until the first owner account exists
    (``kombify admin create-owner``); it acts as owner of the default organisation.

A session acts in the user's home organisation unless ``X-Kombify-Org: <slug>`` (or the path of
a ``/v1/orgs/{org}/…`` route) names another they belong to; an organisation they do not belong
to is answered like a missing one (404).

Every ``/v1`` router depends on :func:`authorize`: safe methods (GET, HEAD, OPTIONS) need the
viewer role, every other method the member role. Routes that need more call
``principal.require("admin", …)``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select

from kombify.accounts import api_keys, orgs, sessions
from kombify.accounts.principal import Actor, Principal
from kombify.accounts.roles import SCOPE_CAP, lesser
from kombify.accounts.tokens import API_KEY_PREFIX, SESSION_PREFIX, digest
from kombify.admin_token import Unauthorized
from kombify.api.deps import SessionDep
from kombify.db.account_tables import Credential, InstallationFlag
from kombify.db.models import Organisation, User
from kombify.db.stacks import ensure_local_organisation
from kombify.errors import ForbiddenError, NotFoundError
from kombify.settings import Settings

SESSION_COOKIE = "__Host-kombify_session"
CSRF_COOKIE = "__Host-kombify_csrf"
CSRF_HEADER = "X-CSRF-Token"
ORG_HEADER = "X-Kombify-Org"
ADMIN_TOKEN_RETIRED = "admin-token-retired"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths a session that still has to enrol a second factor may use.
_MFA_ENROLMENT_PATHS = ("/v1/me", "/v1/auth/")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`kfk_…`), a session token (`kfs_…`) from `POST /v1/auth/login`, "
    "or, until the first owner exists, the local admin token ($KOMBIFY_HOME/admin-token).",
)


def timeouts(settings: Settings) -> sessions.Timeouts:
    """The session timeouts the settings ask for."""
    from datetime import timedelta

    return sessions.Timeouts(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )


def client_address(request: Request) -> str:
    """The caller's address as the server saw it (no proxy headers are trusted)."""
    return request.client.host if request.client else ""


def admin_token_retired(request: Request, db: Session) -> bool:
    """Whether the first owner exists (then the admin token is refused for good)."""
    if getattr(request.app.state, "admin_token_retired", False):
        return True
    retired = db.get(InstallationFlag, ADMIN_TOKEN_RETIRED) is not None
    if retired:
        request.app.state.admin_token_retired = True  # one-way: never looked up again
    return retired


def _organisation_for(
    db: Session, request: Request, user: User, *, fixed: str | None = None
) -> tuple[Organisation, str]:
    """The organisation the request acts in and the user's role there."""
    # Routes under /v1/orgs/{org}/ act in the organisation their path names.
    wanted = str(request.path_params.get("org") or request.headers.get(ORG_HEADER, "")).strip()
    if fixed is not None:
        org = db.get(Organisation, fixed)
        if org is None or (wanted and wanted != org.slug):
            raise NotFoundError(f"no organisation `{wanted[:63]}` for this key")
    else:
        org = orgs.by_slug(db, wanted) if wanted else db.get(Organisation, user.organisation_id)
        if org is None:
            raise NotFoundError(f"no organisation `{wanted[:63]}`")
    member = orgs.membership(db, org.id, user.id)
    if member is None:
        if not wanted:
            raise ForbiddenError(
                "you belong to no organisation any more; ask an owner for an invitation"
            )
        raise NotFoundError(f"no organisation `{wanted[:63]}`")
    return org, member.role


def _disabled(db: Session, user_id: str) -> bool:
    row = db.get(Credential, user_id)
    return bool(row and row.disabled)


def _from_session(db: Session, request: Request, token: str, *, cookie: bool) -> Principal:
    settings: Settings = request.app.state.settings
    row = sessions.find(db, token, timeouts(settings))
    if row is None:
        raise Unauthorized("your session ended (signed out, revoked or timed out): sign in again")
    user = db.get(User, row.user_id)
    if user is None or _disabled(db, user.id):
        raise Unauthorized("this account is disabled")
    if cookie and request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(digest(given), row.csrf_hash):
            raise ForbiddenError(
                f"missing or wrong {CSRF_HEADER} header: send the csrf value login returned"
            )
    org, role = _organisation_for(db, request, user)
    return Principal(
        user=user,
        organisation=org,
        role=role,
        via="session",
        session_id=row.id,
        mfa_pending=not row.mfa_satisfied,
    )


def _from_api_key(db: Session, request: Request, text: str) -> Principal:
    key = api_keys.find(db, text)
    if key is None:
        raise Unauthorized("unknown, revoked or expired API key")
    user = db.get(User, key.user_id)
    if user is None or _disabled(db, user.id):
        raise Unauthorized("the API key's owner is disabled")
    org, role = _organisation_for(db, request, user, fixed=key.organisation_id)
    return Principal(
        user=user,
        organisation=org,
        role=lesser(role, SCOPE_CAP[key.scope]),
        via="api-key",
        api_key_id=key.id,
        on_behalf_of=f"api key {key.name}",
    )


def _from_admin_token(db: Session, request: Request, given: str) -> Principal | None:
    expected: str | None = request.app.state.admin_token
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    if admin_token_retired(request, db):
        raise Unauthorized(
            "the local admin token is turned off since the first owner exists: "
            "`kombify login`, or set KOMBIFY_API_KEY"
        )
    return Principal(
        user=None, organisation=ensure_local_organisation(db), role="owner", via="admin-token"
    )


def resolve(
    request: Request, db: Session, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The caller of ``request``; Unauthorized (401) when it proves no one."""
    given = credentials.credentials.strip() if credentials else ""
    if given.startswith(API_KEY_PREFIX):
        return _from_api_key(db, request, given)
    if given.startswith(SESSION_PREFIX):
        return _from_session(db, request, given, cookie=False)
    if given:
        verifier: Callable[[Session, Request, str], Principal | None] | None = getattr(
            request.app.state, "sso_verifier", None
        )
        if verifier is not None and given.count(".") == 2:
            found = verifier(db, request, given)
            if found is not None:
                return found
        admin = _from_admin_token(db, request, given)
        if admin is not None:
            return admin
        raise Unauthorized(
            "unknown or wrong credential in `Authorization: Bearer`: send an API key "
            "(kfk_…), a session token (kfs_…) or, before the first owner, the admin token"
        )
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        return _from_session(db, request, cookie, cookie=True)
    hint = (
        "sign in (`POST /v1/auth/login`, `kombify login`) or send an API key"
        if admin_token_retired(request, db)
        else "send `Authorization: Bearer <token>` (the admin token is in "
        "$KOMBIFY_HOME/admin-token until the first owner exists)"
    )
    raise Unauthorized(f"not signed in: {hint}")


def current_principal(
    request: Request,
    db: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's caller, resolved once per request."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = resolve(request, db, credentials)
    request.state.principal = principal
    request.state.actor = Actor.of(principal)  # for the activity log, after the request
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def authorize(request: Request, principal: PrincipalDep) -> Principal:
    """Router-wide check: viewers read, members change; MFA enrolment comes first."""
    if principal.mfa_pending and not request.url.path.startswith(_MFA_ENROLMENT_PATHS):
        raise ForbiddenError(
            f"`{principal.organisation.slug}` requires a second factor: set up TOTP first "
            "(POST /v1/auth/mfa/totp, then /v1/auth/mfa/totp/confirm)"
        )
    if request.method in SAFE_METHODS:
        principal.require("viewer", "reading")
    else:
        principal.require("member", f"{request.method} {_route_path(request)}")
    return principal


def _route_path(request: Request) -> str:
    route: Any = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


Authorized = Depends(authorize)
AuthorizedDep = Annotated[Principal, Depends(authorize)]


def signed_in_user(principal: PrincipalDep) -> User:
    """The signed-in user (the admin token is nobody: 403 for routes about a person)."""
    if principal.user is None:
        raise ForbiddenError(
            "the admin token is not a person: create the first owner "
            "(`kombify admin create-owner`) and sign in"
        )
    return principal.user


UserDep = Annotated[User, Depends(signed_in_user)]


def first_owner_exists(db: Session) -> bool:
    """Whether any user holds the owner role somewhere (used by create-owner)."""
    from kombify.db.account_tables import Membership

    return db.exec(select(Membership).where(Membership.role == "owner")).first() is not None


def current_organisation(principal: PrincipalDep) -> Organisation:
    """The organisation the request acts in: every object a route reaches is one of its."""
    return principal.organisation


OrgDep = Annotated[Organisation, Depends(current_organisation)]


def installation_admin(principal: PrincipalDep) -> Principal:
    """Owners of the default organisation run the installation (certificates, keys)."""
    from kombify.db.stacks import LOCAL_ORG

    if principal.organisation.slug != LOCAL_ORG or principal.role != "owner":
        raise ForbiddenError(
            f"this acts on the whole installation: only owners of `{LOCAL_ORG}` may do it"
        )
    return principal


InstallationAdmin = Depends(installation_admin)


def signed_in_person(principal: PrincipalDep) -> Principal:
    """Routes about the person themself (their session, password, sessions, memberships).

    An API key acts for a script in one organisation, capped by its scope; it never acts as
    the person, so a `read` key cannot sign its owner out, change their password or make
    them join another organisation.
    """
    if principal.via == "api-key":
        raise ForbiddenError(
            "an API key acts for scripts in one organisation, not as you: sign in for this "
            "(`kombify login`; keys are revoked with DELETE /v1/api-keys/{id})"
        )
    return principal


PersonOnly = Depends(signed_in_person)
