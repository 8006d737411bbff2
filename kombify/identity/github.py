"""Login with GitHub: plain OAuth 2 (``state`` server-side, code exchange), then who signed in
from its documented REST endpoints ``GET /user`` and ``GET /user/emails``.

GitHub issues no ID token. Its numeric user id is the subject (a login name can be renamed
and taken by someone else); the email is the one GitHub marks primary and verified.
"""

from __future__ import annotations

from typing import Any

import httpx

from kombify.identity import oauth2
from kombify.identity.linking import ProvenIdentity
from kombify.identity.login_states import Started
from kombify.identity.oidc_config import GitHubProvider
from kombify.identity.oidc_errors import LoginRefused, ProviderUnavailable

_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


def authorization_url(provider: GitHubProvider, *, redirect_uri: str, started: Started) -> str:
    """GitHub's authorization URL for this login."""
    return oauth2.authorization_url(
        provider.authorize_url,
        client_id=provider.client_id,
        redirect_uri=redirect_uri,
        scope=provider.scopes,
        state=started.state,
        code_verifier=started.code_verifier,
    )


def _api(provider: GitHubProvider, path: str, access_token: str) -> Any:
    url = provider.api_base + path
    try:
        response = httpx.get(
            url,
            headers={**_API_HEADERS, "Authorization": f"Bearer {access_token}"},
            timeout=oauth2.HTTP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{url} did not answer: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"{url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnavailable(f"{url} did not answer JSON") from None


def _primary_email(emails: Any) -> tuple[str, bool]:
    """The primary address and whether GitHub verified it."""
    if not isinstance(emails, list):
        raise ProviderUnavailable("GitHub's /user/emails did not answer a list")
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") is True:
            return str(entry.get("email") or ""), entry.get("verified") is True
    return "", False


def complete(
    provider: GitHubProvider, *, redirect_uri: str, code: str, code_verifier: str
) -> ProvenIdentity:
    """Exchange the code and ask GitHub who signed in."""
    token = oauth2.exchange_code(
        provider.token_url,
        provider=provider.name,
        credentials=oauth2.ClientCredentials(
            provider.client_id, provider.client_secret.get_secret_value()
        ),
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
    )
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise LoginRefused(f"{provider.name} returned no access token")
    user = _api(provider, "/user", access_token)
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise ProviderUnavailable(f"{provider.name}'s /user answered no numeric user id")
    email, verified = _primary_email(_api(provider, "/user/emails", access_token))
    return ProvenIdentity(
        provider=provider.name,
        subject=str(user["id"]),
        email=email,
        email_verified=verified,
        name=str(user.get("name") or user.get("login") or "")[:200],
    )
