"""The OpenID Connect and GitHub providers people may sign in with, from
``KOMBIFY_OIDC_PROVIDERS`` (a JSON object: provider name -> its settings).

Every entry is checked when the settings are read: a name kombify cannot put in a URL, a
missing client id, an issuer that is not https (loopback http is allowed, for a provider on
the same machine), an unknown key: each is refused naming the provider and the field. Client
secrets are held as :class:`pydantic.SecretStr` and never appear in a message.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

VARIABLE = "KOMBIFY_OIDC_PROVIDERS"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_OIDC_KEYS = {"kind", "issuer", "client_id", "client_secret", "scopes"}
_GITHUB_KEYS = {
    "kind",
    "client_id",
    "client_secret",
    "scopes",
    "api_base",
    "authorize_url",
    "token_url",
}
GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_API_BASE = "https://api.github.com"


@dataclass(frozen=True)
class OidcProvider:
    """An OpenID Connect provider: everything else comes from its discovery document."""

    name: str
    issuer: str
    client_id: str
    client_secret: SecretStr
    scopes: str = "openid email profile"


@dataclass(frozen=True)
class GitHubProvider:
    """GitHub (plain OAuth 2): who signed in comes from its user and emails endpoints."""

    name: str
    client_id: str
    client_secret: SecretStr
    scopes: str = "read:user user:email"
    api_base: str = GITHUB_API_BASE
    authorize_url: str = GITHUB_AUTHORIZE_URL
    token_url: str = GITHUB_TOKEN_URL


Provider = OidcProvider | GitHubProvider


def secure_url(value: str) -> bool:
    """Whether ``value`` is an https URL, or http to a loopback address (RFC 8252 7.3)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return parts.hostname == "localhost"


def _text(entry: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key}: expected a non-empty string")
    return value.strip()


def _url(entry: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = _text(entry, key, where, default=default)
    if not secure_url(value):
        raise ValueError(
            f"{where}.{key}: expected an https URL (http only to 127.0.0.1 or ::1), "
            f"got `{value[:200]}`"
        )
    # Kept exactly as given: an issuer is compared character by character with the `iss` of
    # every ID token (some, like Authentik's, end in a slash).
    return value


def _secret(entry: dict[str, Any], where: str) -> SecretStr:
    value = entry.get("client_secret")
    if not isinstance(value, str) or not value:
        # The value itself is never repeated: it is a secret even when malformed.
        raise ValueError(f"{where}.client_secret: expected the client secret as a string")
    return SecretStr(value)


def _scopes(entry: dict[str, Any], where: str, default: str, *, openid: bool) -> str:
    scopes = " ".join(_text(entry, "scopes", where, default=default).split())
    if openid and "openid" not in scopes.split():
        raise ValueError(f"{where}.scopes: must include `openid`, got `{scopes[:200]}`")
    return scopes


def _one(name: str, entry: object) -> Provider:
    where = f"{VARIABLE}: `{name[:63]}`"
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{where}: a provider name is 1 to 63 lowercase letters, digits and dashes "
            "(it is part of the redirect URI)"
        )
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with issuer, client_id, client_secret")
    kind = entry.get("kind", "oidc")
    if kind not in ("oidc", "github"):
        raise ValueError(f"{where}.kind: expected `oidc` (the default) or `github`")
    allowed = _GITHUB_KEYS if kind == "github" else _OIDC_KEYS
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown setting {', '.join(f'`{k[:40]}`' for k in unknown)}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    client_id = _text(entry, "client_id", where)
    secret = _secret(entry, where)
    if kind == "github":
        return GitHubProvider(
            name=name,
            client_id=client_id,
            client_secret=secret,
            scopes=_scopes(entry, where, GitHubProvider.scopes, openid=False),
            api_base=_url(entry, "api_base", where, default=GITHUB_API_BASE).rstrip("/"),
            authorize_url=_url(entry, "authorize_url", where, default=GITHUB_AUTHORIZE_URL),
            token_url=_url(entry, "token_url", where, default=GITHUB_TOKEN_URL),
        )
    return OidcProvider(
        name=name,
        issuer=_url(entry, "issuer", where),
        client_id=client_id,
        client_secret=secret,
        scopes=_scopes(entry, where, OidcProvider.scopes, openid=True),
    )


def parse_providers(text: str) -> dict[str, Provider]:
    """The providers ``text`` (the variable's JSON) configures, by name.

    Raises:
        ValueError: The text is not a JSON object of valid entries; the message names the
            provider and field, never a secret.
    """
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only the position: the text holds client secrets.
        raise ValueError(
            f"{VARIABLE}: not valid JSON ({exc.msg} at character {exc.pos}); expected "
            '{"name": {"issuer": …, "client_id": …, "client_secret": …}}'
        ) from None
    if not isinstance(document, dict):
        raise ValueError(f"{VARIABLE}: expected a JSON object of providers by name")
    return {str(name): _one(str(name), entry) for name, entry in document.items()}
