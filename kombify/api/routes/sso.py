"""SSO for the tools: the portal's public keys, tokens for one tool, key rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from kombify.accounts.principal import Principal
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep, installation_admin
from kombify.errors import ForbiddenError
from kombify.identity import signing_keys, sso_tokens
from kombify.identity.signing_keys import KeyPolicy

router = APIRouter(tags=["sso"])

AdminDep = Annotated[Principal, Depends(installation_admin)]


class SsoTokenCreate(BaseModel):
    """Which tool the token is for."""

    audience: str = Field(max_length=63, description="The tool's name, e.g. `stack`.")


class SsoTokenPublic(BaseModel):
    """A signed token (shown once): send it as ``Authorization: Bearer`` to the tool."""

    token: str
    token_type: str = "Bearer"
    audience: str
    expires_at: datetime
    expires_in: int


class SigningKeyPublic(BaseModel):
    """A signing key as administrators see it (never its private half)."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    retired_at: datetime | None
    removed_at: datetime | None


class SigningKeysPublic(BaseModel):
    """Every signing key kept, newest first."""

    data: list[SigningKeyPublic]
    count: int


@router.get(
    "/.well-known/jwks.json",
    summary="The public keys SSO tokens are signed with (JWKS)",
    response_model=None,
)
def jwks(db: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The active key and the retired keys still in their grace period; anyone may read."""
    document: dict[str, Any] = signing_keys.published(db, KeyPolicy.of(settings))
    return JSONResponse(
        document, media_type="application/jwk-set+json", headers={"Cache-Control": "max-age=60"}
    )


@router.post(
    "/v1/sso/tokens",
    status_code=201,
    summary="A short-lived SSO token for one tool, for the caller and their organisation",
)
def create_token(
    body: SsoTokenCreate, principal: PrincipalDep, db: SessionDep, settings: SettingsDep
) -> SsoTokenPublic:
    """Signed for ``audience`` (one of KOMBIFY_SSO_AUDIENCES or KOMBIFY_TOOLS)."""
    _no_pending_mfa(principal)
    issued = sso_tokens.issue(db, settings=settings, principal=principal, audience=body.audience)
    return SsoTokenPublic(
        token=issued.token,
        audience=issued.audience,
        expires_at=issued.expires_at,
        expires_in=int(issued.lifetime.total_seconds()),
    )


@router.get("/v1/sso/keys", summary="The SSO signing keys (installation owners)")
def list_keys(_: AdminDep, db: SessionDep, settings: SettingsDep) -> SigningKeysPublic:
    """Active and retired keys with when a retired one stops being published."""
    return _keys(db, KeyPolicy.of(settings))


@router.post("/v1/sso/keys/rotate", summary="Make a new SSO signing key active now")
def rotate_key(_: AdminDep, db: SessionDep, settings: SettingsDep) -> SigningKeysPublic:
    """The active key is retired (still published for its grace period) and a new one signs."""
    signing_keys.rotate(db)
    return _keys(db, KeyPolicy.of(settings))


def _keys(db: Session, policy: KeyPolicy) -> SigningKeysPublic:
    rows = [SigningKeyPublic(**vars(info)) for info in signing_keys.listed(db, policy)]
    return SigningKeysPublic(data=rows, count=len(rows))


def _no_pending_mfa(principal: Principal) -> None:
    if principal.mfa_pending:
        raise ForbiddenError(
            f"`{principal.organisation.slug}` requires a second factor: set up TOTP first"
        )
