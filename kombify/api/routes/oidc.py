"""Login with OpenID Connect providers and GitHub (docs/oidc.md).

Public routes: each says itself whom it serves. A browser login ends at the callback with the
session cookies set and a redirect to ``/v1/me``; the CLI's loopback login ends with a redirect
to the CLI carrying a one-time code, traded at ``POST /v1/auth/oidc/cli-exchange``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from kombify.accounts import orgs, sessions, totp, users
from kombify.accounts.activity import record
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import client_address, timeouts
from kombify.api.routes.auth import org_public, second_factor, user_public
from kombify.api.session_cookies import expires_iso, set_session_cookies
from kombify.db.account_tables import Activity, Credential
from kombify.db.models import Organisation, User
from kombify.db.oidc_tables import OidcLoginState
from kombify.errors import ForbiddenError, KombifyError, NotFoundError
from kombify.gateway.brute_force import check as brute_force_check
from kombify.identity import cli_login, github, linking, login_states, oidc
from kombify.identity.oidc_config import GitHubProvider, OidcProvider, Provider
from kombify.identity.oidc_errors import LoginRefused
from kombify.settings import Settings

router = APIRouter(prefix="/v1/auth/oidc", tags=["auth"])

ProviderName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", max_length=63)]
_ERROR_CODE = re.compile(r"[^a-z0-9_.-]")


class ProvidersPublic(BaseModel):
    """The login providers configured (names only)."""

    data: list[str]
    count: int


class CliExchange(BaseModel):
    """A one-time code the CLI's loopback listener received, and a TOTP code if needed."""

    code: str = Field(max_length=100)
    totp: str | None = Field(default=None, max_length=10)
    recovery_code: str | None = Field(default=None, max_length=40)


def redirect_uri(settings: Settings, provider: str) -> str:
    """The one callback URL registered at ``provider`` (compared exactly by the provider)."""
    return f"{settings.resolved_public_url}/v1/auth/oidc/{provider}/callback"


def _provider(settings: Settings, name: str) -> Provider:
    configured = settings.oidc_provider_map
    found = configured.get(name)
    if not isinstance(found, OidcProvider | GitHubProvider):
        known = ", ".join(f"`{n}`" for n in sorted(configured)) or "none (KOMBIFY_OIDC_PROVIDERS)"
        raise NotFoundError(f"provider: no login provider `{name}`; configured: {known}")
    return found


def _cache(request: Request) -> oidc.ProviderCache:
    cache: oidc.ProviderCache | None = getattr(request.app.state, "oidc_cache", None)
    if cache is None:
        cache = oidc.ProviderCache()
        request.app.state.oidc_cache = cache
    return cache


@router.get("/providers", summary="The OpenID Connect and GitHub providers one may sign in with")
def list_providers(settings: SettingsDep) -> ProvidersPublic:
    """Names only; sign in at ``/v1/auth/oidc/{provider}/login``."""
    names = sorted(settings.oidc_provider_map)
    return ProvidersPublic(data=names, count=len(names))


@router.get(
    "/{provider}/login",
    summary="Start a login at a provider (302 to it)",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the provider's authorization page"}},
)
def login(
    request: Request,
    provider: ProviderName,
    db: SessionDep,
    settings: SettingsDep,
    cli_redirect: Annotated[
        str | None,
        Query(
            max_length=500,
            description="The CLI's loopback listener, http://127.0.0.1:PORT/…; the login ends "
            "there with a one-time code",
        ),
    ] = None,
) -> RedirectResponse:
    """Send the browser to the provider with a fresh state, nonce and PKCE challenge."""
    chosen = _provider(settings, provider)
    loopback = cli_login.check_redirect(cli_redirect) if cli_redirect is not None else ""
    callback = redirect_uri(settings, provider)
    if isinstance(chosen, GitHubProvider):
        started = login_states.begin(db, provider=provider, cli_redirect=loopback)
        url = github.authorization_url(chosen, redirect_uri=callback, started=started)
    else:
        discovery = _cache(request).discovery(chosen)  # before a state is stored for nothing
        started = login_states.begin(db, provider=provider, cli_redirect=loopback)
        url = oidc.authorization_url(chosen, discovery, redirect_uri=callback, started=started)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _proven(
    request: Request, chosen: Provider, state: OidcLoginState, *, code: str, callback: str
) -> linking.ProvenIdentity:
    if isinstance(chosen, GitHubProvider):
        return github.complete(
            chosen, redirect_uri=callback, code=code, code_verifier=state.code_verifier
        )
    return oidc.complete(
        chosen,
        _cache(request),
        redirect_uri=callback,
        code=code,
        code_verifier=state.code_verifier,
        nonce=state.nonce,
    )


def _log(
    db: Session, request: Request, *, provider: str, outcome: str, user: User | None = None
) -> None:
    """An activity entry for this login (via ``oidc``; the middleware then leaves it)."""
    request.state.activity_recorded = True
    record(
        db,
        Activity(
            organisation_id=user.organisation_id if user else None,
            user_id=user.id if user else None,
            actor=user.email if user else f"{provider} login",
            via="oidc",
            action=f"login via {provider}"[:100],
            object_type="user" if user else "",
            object_id=user.id if user else "",
            outcome=outcome,
            address=client_address(request),
            client=request.headers.get("user-agent", "")[:200],
        ),
    )


def _needs_mfa_enrolment(db: Session, user: User) -> bool:
    """As after password login: a member of an organisation that demands a second factor,
    without one, gets a session that may only enrol it."""
    if totp.enabled(db.get(Credential, user.id)):
        return False
    return any(orgs.mfa_required(db, org.id) for org, _ in orgs.memberships(db, user.id))


def _check_usable(db: Session, user: User, *, cli: bool) -> None:
    credential = db.get(Credential, user.id)
    if credential is not None and credential.disabled:
        raise ForbiddenError("this account is disabled")
    if totp.enabled(credential) and not cli:
        raise ForbiddenError(
            "this account has a second factor at kombify, which a browser login through a "
            "provider cannot ask for yet: sign in with email, password and TOTP, or with "
            "`kombify login` through the provider (it asks for the code)"
        )


@router.get(
    "/{provider}/callback",
    summary="Where the provider sends the browser back (completes the login)",
    response_class=RedirectResponse,
    status_code=303,
    responses={
        302: {"description": "To the CLI's loopback listener with a one-time code or an error"},
        303: {"description": "Signed in: session cookies set, on to /v1/me"},
    },
)
def callback(
    request: Request,
    provider: ProviderName,
    db: SessionDep,
    settings: SettingsDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> RedirectResponse:
    """Check state, exchange the code, verify who signed in, link the account, sign in."""
    chosen = _provider(settings, provider)
    row = login_states.take(db, provider=provider, state=state)
    try:
        if error:
            raise LoginRefused(
                f"{provider} did not sign you in ({_ERROR_CODE.sub('', error.lower())[:60]})"
            )
        if not code:
            raise LoginRefused(f"code: {provider} sent no authorization code")
        proven = _proven(request, chosen, row, code=code, callback=redirect_uri(settings, provider))
        linked = linking.user_for(db, proven, signup=settings.signup)
        _check_usable(db, linked.user, cli=bool(row.cli_redirect))
    except KombifyError as exc:
        _log(db, request, provider=provider, outcome="refused")
        if row.cli_redirect:  # the CLI waits on its listener: tell it there
            url = cli_login.with_params(
                row.cli_redirect, error=exc.code, error_description=exc.message
            )
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        raise
    _log(db, request, provider=provider, outcome="ok", user=linked.user)
    if row.cli_redirect:
        url = cli_login.with_params(row.cli_redirect, code=cli_login.issue_code(db, linked.user.id))
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    limits = timeouts(settings)
    new = sessions.start(
        db,
        user_id=linked.user.id,
        timeouts=limits,
        address=client_address(request),
        client=request.headers.get("user-agent", ""),
        mfa_satisfied=not _needs_mfa_enrolment(db, linked.user),
    )
    response = RedirectResponse(
        f"{settings.resolved_public_url}/v1/me",
        status_code=303,
        headers={"Cache-Control": "no-store"},
    )
    set_session_cookies(response, new)
    return response


@router.post(
    "/cli-exchange",
    summary="Trade the CLI's one-time code for a session token",
    responses={
        401: {"description": "Unknown, used or expired code; or a TOTP code is needed"},
        429: {"description": "Too many TOTP tries; see Retry-After"},
    },
)
def cli_exchange(
    body: CliExchange, request: Request, db: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """The session a CLI login started (the code works once, for two minutes); the body is the
    one ``POST /v1/auth/login`` answers."""
    user = db.get(User, cli_login.redeem(db, body.code))
    if user is None:
        raise LoginRefused("code: its account no longer exists")
    _check_usable(db, user, cli=True)
    credential = users.credential(db, user.id)
    if totp.enabled(credential):
        brute_force_check(request.app.state.limiter, "login", user.email, client_address(request))
        # A wrong or missing code spends the one-time code too: the CLI starts over, as after a
        # wrong password.
        second_factor(db, credential, body.totp, body.recovery_code)
    enrol = _needs_mfa_enrolment(db, user)
    new = sessions.start(
        db,
        user_id=user.id,
        timeouts=timeouts(settings),
        address=client_address(request),
        client=request.headers.get("user-agent", "kombify-cli"),
        mfa_satisfied=not enrol,
    )
    org = db.get(Organisation, user.organisation_id)
    assert org is not None  # a user's home organisation is a foreign key
    _log(db, request, provider="cli", outcome="ok", user=user)
    return {
        "token": new.token,
        "csrf": new.csrf,
        "expires_at": expires_iso(new.row.expires_at),
        "user": user_public(user, db),
        "organisation": org_public(org),
        "mfa_enrolment_required": enrol,
    }
