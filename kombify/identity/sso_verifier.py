"""Accepting a trusted portal's SSO tokens: verify, then map to the same user and organisation.

Installed by ``create_app`` as ``app.state.sso_verifier`` when ``KOMBIFY_SSO_TRUSTED_ISSUER``
and ``KOMBIFY_SSO_AUDIENCE`` are set; :mod:`kombify.api.principal` calls it for bearer tokens
that look like JWTs. What is checked: the algorithm (allow-list), the key (published by the
issuer now), the signature, ``iss``, ``aud``, ``exp`` and ``nbf`` (with a small leeway) and
the presence of every claim the mapping needs. Refusals are 401 with a sentence that never
repeats the token's contents.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidTokenError,
    JoseError,
    MissingClaimError,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from kombify.accounts import orgs, users
from kombify.accounts.principal import Principal
from kombify.admin_token import Unauthorized
from kombify.db.account_tables import ROLES, Credential, Membership
from kombify.db.models import Organisation, User
from kombify.identity.jwks_cache import JwksCache
from kombify.identity.signing_keys import ALGORITHM
from kombify.settings import Settings

ALGORITHMS = (ALGORITHM,)
LEEWAY_SECONDS = 30
ORG_HEADER = "X-Kombify-Org"
_REQUIRED = ("sub", "email", "org_id", "org_slug", "role", "iat", "jti")


def _refuse(why: str) -> Unauthorized:
    return Unauthorized(f"SSO token refused: {why}")


class SsoVerifier:
    """Verifies tokens of one issuer for one audience (this instance's tool name)."""

    def __init__(self, *, issuer: str, audience: str, keys: JwksCache) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.keys = keys

    @classmethod
    def of(cls, settings: Settings) -> SsoVerifier | None:
        """The verifier the settings ask for; None when this instance trusts no portal."""
        if settings.sso_trusted_issuer is None or settings.sso_audience is None:
            return None
        issuer = settings.sso_trusted_issuer
        return cls(
            issuer=issuer,
            audience=settings.sso_audience,
            keys=JwksCache(issuer, max_age=settings.sso_jwks_cache_seconds),
        )

    def __call__(self, db: Session, request: Request, token: str) -> Principal | None:
        """The caller the token proves, or None when the text is not a JWS at all."""
        claims = self.verified_claims(token)
        if claims is None:
            return None
        return self._principal(db, request, claims)

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims once every check passed (None: not a JWS; 401 otherwise)."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except JoseError:
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise _refuse(f"the algorithm is not one of {', '.join(ALGORITHMS)}")
        if not isinstance(kid, str) or not kid:
            raise _refuse("the header names no key (`kid`)")
        key = self.keys.key(kid)
        if key is None:
            raise _refuse(
                "signed by a key the trusted portal does not publish (unknown, or retired "
                "longer than its grace period)"
            )
        try:
            decoded = jwt.decode(token, key, algorithms=list(ALGORITHMS))
        except BadSignatureError:
            raise _refuse("the signature does not match") from None
        except JoseError:
            raise _refuse("not a well-formed signed JWT") from None
        self._check_claims(decoded.claims)
        return decoded.claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            **{name: {"essential": True} for name in _REQUIRED},  # type: ignore[arg-type]
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise _refuse("it expired; get a new one from the portal") from None
        except MissingClaimError as exc:
            raise _refuse(f"the claim `{exc.claim}` is missing") from None
        except InvalidClaimError as exc:
            if exc.claim == "aud":
                raise _refuse(f"it is for another tool, not `{self.audience}`") from None
            if exc.claim == "iss":
                raise _refuse(f"it was not issued by the trusted portal {self.issuer}") from None
            if exc.claim in ("nbf", "iat"):
                raise _refuse("it is not valid yet (`nbf` or `iat` in the future)") from None
            raise _refuse(f"the claim `{exc.claim}` is empty or not valid") from None
        except InvalidTokenError:
            raise _refuse("it is not valid yet (`nbf` or `iat` in the future)") from None
        except JoseError:
            raise _refuse("its claims are not valid") from None
        if claims["role"] not in ROLES:
            raise _refuse(f"the claim `role` is not one of {', '.join(ROLES)}")
        for name in ("sub", "email", "org_id", "org_slug"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise _refuse(f"the claim `{name}` is not a non-empty string")

    def _principal(self, db: Session, request: Request, claims: dict[str, Any]) -> Principal:
        try:
            user, org = map_identity(db, claims)
        except IntegrityError:  # a concurrent first request made the same rows
            db.rollback()
            user, org = map_identity(db, claims)
        wanted = request.headers.get(ORG_HEADER, "").strip()
        if wanted and wanted != org.slug:
            raise _refuse(f"it is for one organisation only; drop the {ORG_HEADER} header")
        return Principal(
            user=user,
            organisation=org,
            role=str(claims["role"]),
            via="sso",
            on_behalf_of=f"sso {self.issuer}"[:320],
        )


def _organisation(db: Session, org_id: str, slug: str) -> Organisation:
    org = db.get(Organisation, org_id)
    holder = orgs.by_slug(db, slug)
    if holder is not None and holder.id != org_id:
        raise _refuse(
            "its organisation's slug belongs to another organisation on this instance; "
            "rename one of them"
        )
    if org is None:
        org = Organisation(id=org_id, slug=slug, name=slug)
    elif org.slug != slug:  # renamed at the portal
        org.slug = slug
    db.add(org)
    db.flush()
    return org


def _user(db: Session, claims: dict[str, Any], org: Organisation) -> User:
    email = users.normal_email(str(claims["email"]))
    holder = users.by_email(db, email)
    if holder is not None and holder.id != claims["sub"]:
        raise _refuse("its email belongs to another account on this instance")
    user = db.get(User, str(claims["sub"]))
    if user is None:
        user = User(id=str(claims["sub"]), organisation_id=org.id, email=email)
        db.add(user)
        db.flush()
        db.add(Credential(user_id=user.id))  # no password here: SSO only
    else:
        credential = db.get(Credential, user.id)
        if credential is not None and credential.disabled:
            raise _refuse("this account is disabled on this instance")
        user.email = email
    name = claims.get("name")
    if isinstance(name, str):
        user.name = name[:200]
    db.add(user)
    db.flush()
    return user


def map_identity(db: Session, claims: dict[str, Any]) -> tuple[User, Organisation]:
    """The local user and organisation of a verified token: made or updated to match it."""
    org = _organisation(db, str(claims["org_id"]), str(claims["org_slug"]))
    user = _user(db, claims, org)
    member = orgs.membership(db, org.id, user.id)
    if member is None:
        member = Membership(organisation_id=org.id, user_id=user.id, role=str(claims["role"]))
    member.role = str(claims["role"])  # the portal decides the role
    db.add(member)
    db.commit()
    db.refresh(user)
    db.refresh(org)
    return user, org
