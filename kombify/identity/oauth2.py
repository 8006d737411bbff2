"""The two OAuth 2 requests every login makes, built with authlib's RFC 6749 / 7636 helpers:
the authorization URL (with ``state`` and an S256 PKCE challenge) and the code exchange.

authlib's httpx client classes are not used: this authlib warns that they are deprecated
without the separate ``httpx2`` package; plain httpx carries the two requests just as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import encode_client_secret_basic
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from kombify.identity.oidc_errors import LoginRefused, ProviderUnavailable

HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientCredentials:
    """kombify's client id and secret at one provider (authlib's client shape)."""

    client_id: str
    client_secret: str


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_verifier: str,
    **extra: str,
) -> str:
    """The URL that sends the browser to the provider (authorization code flow, S256)."""
    return str(
        prepare_grant_uri(
            endpoint,
            client_id=client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **extra,
        )
    )


def exchange_code(
    endpoint: str,
    *,
    provider: str,
    credentials: ClientCredentials,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (client authenticated with HTTP Basic).

    Raises:
        LoginRefused: The provider refused the code (used, expired, wrong verifier).
        ProviderUnavailable: The endpoint did not answer, or not with JSON.
    """
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
    )
    headers = {
        "Accept": "application/json",  # GitHub answers form-encoded without it
        "Content-Type": "application/x-www-form-urlencoded",
    }
    _, headers, body = encode_client_secret_basic(credentials, "POST", endpoint, headers, body)
    try:
        response = httpx.post(endpoint, content=body, headers=headers, timeout=HTTP_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{provider}'s token endpoint did not answer: {type(exc).__name__}"
        ) from exc
    try:
        answer = response.json()
    except ValueError:
        raise ProviderUnavailable(
            f"{provider}'s token endpoint answered HTTP {response.status_code} without JSON"
        ) from None
    if not isinstance(answer, dict):
        raise ProviderUnavailable(f"{provider}'s token endpoint did not answer a JSON object")
    if "error" in answer or response.status_code != 200:
        # Only the error code: a description may quote what was sent.
        error = str(answer.get("error", f"HTTP {response.status_code}"))[:60]
        raise LoginRefused(f"{provider} refused the authorization code ({error}); start again")
    return answer
