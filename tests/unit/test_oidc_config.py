"""KOMBIFY_OIDC_PROVIDERS: parsed and checked at start, never shown with its client secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kombify.errors import ConfigError
from kombify.identity.oidc_config import GitHubProvider, OidcProvider
from kombify.settings import Settings, get_settings

SECRET = "s3cr3t-client-value"


def _refused(monkeypatch: pytest.MonkeyPatch, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    monkeypatch.setenv("KOMBIFY_OIDC_PROVIDERS", text)
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert SECRET not in caught.value.message
    return caught.value.message


def test_oidc_and_github_providers_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KOMBIFY_OIDC_PROVIDERS",
        json.dumps(
            {
                "keycloak": {
                    "issuer": "https://sso.example.org/realms/home",
                    "client_id": "kombify",
                    "client_secret": SECRET,
                },
                "authentik": {
                    "issuer": "https://auth.example.org/application/o/kombify/",
                    "client_id": "k",
                    "client_secret": SECRET,
                    "scopes": "openid  email",
                },
                "github": {"kind": "github", "client_id": "Iv1.abc", "client_secret": SECRET},
            }
        ),
    )
    settings = Settings()

    providers = settings.oidc_provider_map
    keycloak, authentik, github = providers["keycloak"], providers["authentik"], providers["github"]
    assert isinstance(keycloak, OidcProvider) and keycloak.scopes == "openid email profile"
    # Kept exactly: the ID token's iss is compared with it character by character.
    assert isinstance(authentik, OidcProvider)
    assert authentik.issuer == "https://auth.example.org/application/o/kombify/"
    assert authentik.scopes == "openid email"
    assert isinstance(github, GitHubProvider)
    assert (github.authorize_url, github.token_url, github.api_base) == (
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "https://api.github.com",
    )
    assert github.client_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in repr(providers)
    assert SECRET not in settings.model_dump_json()


def test_unset_means_no_providers() -> None:
    assert Settings().oidc_provider_map == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"kc": {"issuer": "http://sso.example.org", "client_id": "k", "client_secret": SECRET}},
            "KOMBIFY_OIDC_PROVIDERS: `kc`.issuer: expected an https URL (http only to 127.0.0.1 "
            "or ::1), got `http://sso.example.org`",
        ),
        (
            {"kc": {"issuer": "https://sso.example.org", "client_secret": SECRET}},
            "KOMBIFY_OIDC_PROVIDERS: `kc`.client_id: expected a non-empty string",
        ),
        (
            {"kc": {"issuer": "https://sso.example.org", "client_id": "k"}},
            "KOMBIFY_OIDC_PROVIDERS: `kc`.client_secret: expected the client secret as a string",
        ),
        (
            {"Key Cloak": {"issuer": "https://a.example", "client_id": "k", "client_secret": "x"}},
            "KOMBIFY_OIDC_PROVIDERS: `Key Cloak`: a provider name is 1 to 63 lowercase letters, "
            "digits and dashes (it is part of the redirect URI)",
        ),
        (
            {
                "kc": {
                    "issuer": "https://sso.example.org",
                    "client_id": "k",
                    "client_secret": SECRET,
                    "redirect_uri": "https://elsewhere",
                }
            },
            "KOMBIFY_OIDC_PROVIDERS: `kc`: unknown setting `redirect_uri`; expected some of "
            "client_id, client_secret, issuer, kind, scopes",
        ),
        (
            {
                "kc": {
                    "issuer": "https://a.example",
                    "client_id": "k",
                    "client_secret": SECRET,
                    "scopes": "email profile",
                }
            },
            "KOMBIFY_OIDC_PROVIDERS: `kc`.scopes: must include `openid`, got `email profile`",
        ),
        (
            {"gl": {"kind": "gitlab", "client_id": "k", "client_secret": SECRET}},
            "KOMBIFY_OIDC_PROVIDERS: `gl`.kind: expected `oidc` (the default) or `github`",
        ),
        (
            {
                "gh": {
                    "kind": "github",
                    "client_id": "k",
                    "client_secret": SECRET,
                    "token_url": "ftp://github.example/token",
                }
            },
            "KOMBIFY_OIDC_PROVIDERS: `gh`.token_url: expected an https URL (http only to "
            "127.0.0.1 or ::1), got `ftp://github.example/token`",
        ),
        (
            ["not", "an", "object"],
            "KOMBIFY_OIDC_PROVIDERS: expected a JSON object of providers by name",
        ),
    ],
)
def test_a_bad_entry_is_refused_at_start_naming_provider_and_field(
    monkeypatch: pytest.MonkeyPatch, value: Any, message: str
) -> None:
    assert _refused(monkeypatch, value) == message


def test_broken_json_is_refused_by_position_without_echoing_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = _refused(monkeypatch, '{"kc": {"client_secret": "' + SECRET + '",}}')

    assert message.startswith("KOMBIFY_OIDC_PROVIDERS: not valid JSON (")
    assert "at character" in message
