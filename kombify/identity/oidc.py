"""Login with an OpenID Connect provider: authorization code + PKCE (S256), ``state`` and
``nonce`` kept server-side (:mod:`.login_states`), the ID token verified against the provider's
JWKS.

What an ID token must satisfy before anyone is signed in: a signature by a key the provider
publishes at its ``jwks_uri`` with an asymmetric algorithm it announces (never ``none`` or an
HMAC); ``iss`` exactly the configured issuer, which must also be the discovery document's
(the mix-up defence: a code or token of another provider is never taken for this one's);
``aud`` naming kombify's client id (and ``azp`` it when there are several audiences); ``exp``
in the future; ``nonce`` the one this login sent. The redirect URI is one fixed URL per
provider, sent identically on the authorization and the token request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from kombify.identity import oauth2
from kombify.identity.linking import ProvenIdentity
from kombify.identity.login_states import Started
from kombify.identity.oidc_config import OidcProvider, secure_url
from kombify.identity.oidc_errors import LoginRefused, ProviderUnavailable

# Seconds of clock difference tolerated between kombify and the provider on exp and iat.
CLOCK_LEEWAY = 60
# Discovery documents and key sets are fetched again after this long (key rotation), and at
# once when a token names a key id not in the cached set.
CACHE_SECONDS = 3600
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True)
class Discovery:
    """The parts of a provider's ``/.well-known/openid-configuration`` kombify uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str
    algorithms: tuple[str, ...]


def discovery_url(issuer: str) -> str:
    """Where the provider's discovery document lives (OIDC Discovery 1.0, section 4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _get_json(url: str, *, what: str, headers: dict[str, str] | None = None) -> Any:
    try:
        response = httpx.get(url, timeout=oauth2.HTTP_TIMEOUT, headers=headers)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{what} at {url} did not answer: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"{what} at {url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnavailable(f"{what} at {url} did not answer JSON") from None


def _endpoint(document: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = document.get(key, "")
    if not value and not required:
        return ""
    if not isinstance(value, str) or not secure_url(value):
        raise ProviderUnavailable(f"the discovery document's {key} is missing or not https")
    return value


def fetch_discovery(provider: OidcProvider) -> Discovery:
    """The provider's discovery document, checked against the configured issuer."""
    document = _get_json(discovery_url(provider.issuer), what=f"{provider.name}'s discovery")
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{provider.name}'s discovery document is not a JSON object")
    issuer = document.get("issuer")
    if issuer != provider.issuer:
        shown = str(issuer)[:200]
        raise ProviderUnavailable(
            f"{provider.name}: the discovery document names issuer `{shown}`, the settings "
            f"`{provider.issuer}`; they must be identical (set issuer to the provider's exact "
            "value)"
        )
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(a for a in offered if a in ASYMMETRIC_ALGORITHMS)
    if not algorithms:
        raise ProviderUnavailable(
            f"{provider.name} signs ID tokens with none of {', '.join(ASYMMETRIC_ALGORITHMS)}"
        )
    return Discovery(
        issuer=provider.issuer,
        authorization_endpoint=_endpoint(document, "authorization_endpoint"),
        token_endpoint=_endpoint(document, "token_endpoint"),
        jwks_uri=_endpoint(document, "jwks_uri"),
        userinfo_endpoint=_endpoint(document, "userinfo_endpoint", required=False),
        algorithms=algorithms,
    )


def fetch_keys(jwks_uri: str) -> KeySet:
    """The provider's published signing keys."""
    document = _get_json(jwks_uri, what="the provider's key set")
    try:
        return KeySet.import_key_set(document)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ProviderUnavailable(f"the key set at {jwks_uri} is not a JWK set") from exc


@dataclass
class ProviderCache:
    """Discovery documents and key sets by provider, refreshed after ``CACHE_SECONDS``."""

    discoveries: dict[str, tuple[float, Discovery]] = field(default_factory=dict)
    keys: dict[str, tuple[float, KeySet]] = field(default_factory=dict)

    def discovery(self, provider: OidcProvider) -> Discovery:
        """The provider's discovery document (cached)."""
        cached = self.discoveries.get(provider.name)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = fetch_discovery(provider)
        self.discoveries[provider.name] = (time.monotonic(), found)
        return found

    def key_set(self, jwks_uri: str, *, fresh: bool = False) -> KeySet:
        """The key set at ``jwks_uri`` (fetched anew when ``fresh`` or old)."""
        cached = self.keys.get(jwks_uri)
        if not fresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = fetch_keys(jwks_uri)
        self.keys[jwks_uri] = (time.monotonic(), found)
        return found


def authorization_url(
    provider: OidcProvider, discovery: Discovery, *, redirect_uri: str, started: Started
) -> str:
    """The provider's authorization URL for this login (state, nonce, S256 challenge)."""
    return oauth2.authorization_url(
        discovery.authorization_endpoint,
        client_id=provider.client_id,
        redirect_uri=redirect_uri,
        scope=provider.scopes,
        state=started.state,
        code_verifier=started.code_verifier,
        nonce=started.nonce,
    )


def _claims_registry(provider: OidcProvider, nonce: str) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )


_CLAIM_PROBLEMS = {
    "iss": "was issued by another issuer than `{issuer}` (mix-up defence)",
    "aud": "is meant for another client than kombify's `{client_id}`",
    "nonce": "does not repeat this login's nonce (replayed or injected token)",
    "azp": "was issued to another client (azp)",
}


def verify_id_token(
    provider: OidcProvider, discovery: Discovery, cache: ProviderCache, *, id_token: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims, once its signature and claims are checked.

    Raises:
        LoginRefused: The token fails a check (the message says which, never the token).
    """
    prefix = f"{provider.name}'s ID token"
    keys = cache.key_set(discovery.jwks_uri)
    try:
        header = jws.extract_compact(id_token.encode()).protected
    except (JoseError, ValueError) as exc:
        raise LoginRefused(f"{prefix} is not a JWT") from exc
    kid = header.get("kid")
    if kid is not None and all(key.kid != kid for key in keys.keys):
        keys = cache.key_set(discovery.jwks_uri, fresh=True)  # the provider rotated its keys
    try:
        token = jwt.decode(id_token, keys, algorithms=list(discovery.algorithms))
    except BadSignatureError:
        raise LoginRefused(f"{prefix} has a bad signature (altered or forged)") from None
    except JoseError as exc:
        raise LoginRefused(
            f"{prefix} cannot be verified with the provider's published keys ({type(exc).__name__})"
        ) from None
    claims = dict(token.claims)
    try:
        _claims_registry(provider, nonce).validate(claims)
        if not isinstance(claims["iss"], str):
            raise InvalidClaimError("iss")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != provider.client_id:
            raise InvalidClaimError("azp")
    except ExpiredTokenError:
        raise LoginRefused(f"{prefix} has expired; start again") from None
    except MissingClaimError as exc:
        raise LoginRefused(f"{prefix} lacks the claim {exc.claim}") from None
    except InvalidClaimError as exc:
        problem = _CLAIM_PROBLEMS.get(exc.claim, f"has an invalid {exc.claim} claim")
        raise LoginRefused(
            f"{prefix} " + problem.format(issuer=provider.issuer, client_id=provider.client_id)
        ) from None
    return claims


def _userinfo(discovery: Discovery, access_token: str, subject: str) -> dict[str, Any]:
    """The userinfo endpoint's claims for the same subject (some providers, like Zitadel by
    default, put the email there and not in the ID token)."""
    if not discovery.userinfo_endpoint or not access_token:
        return {}
    info = _get_json(
        discovery.userinfo_endpoint,
        what="the userinfo endpoint",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise LoginRefused("the userinfo endpoint answered for another subject than the ID token")
    return info


def complete(
    provider: OidcProvider,
    cache: ProviderCache,
    *,
    redirect_uri: str,
    code: str,
    code_verifier: str,
    nonce: str,
) -> ProvenIdentity:
    """Exchange the code and verify the ID token: who signed in at ``provider``."""
    discovery = cache.discovery(provider)
    token = oauth2.exchange_code(
        discovery.token_endpoint,
        provider=provider.name,
        credentials=oauth2.ClientCredentials(
            provider.client_id, provider.client_secret.get_secret_value()
        ),
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
    )
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise LoginRefused(f"{provider.name} returned no ID token (is `openid` among the scopes?)")
    claims = verify_id_token(provider, discovery, cache, id_token=id_token, nonce=nonce)
    subject = str(claims["sub"])
    if len(subject) > 255:
        raise LoginRefused(f"{provider.name}'s subject is longer than 255 characters")
    if "email" not in claims:
        claims = {**_userinfo(discovery, str(token.get("access_token", "")), subject), **claims}
    return ProvenIdentity(
        provider=provider.name,
        subject=subject,
        email=str(claims.get("email") or ""),
        email_verified=claims.get("email_verified") is True,
        name=str(claims.get("name") or "")[:200],
    )
