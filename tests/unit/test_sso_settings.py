"""The SSO and tool settings: what is accepted, and the sentence for what is not."""

from __future__ import annotations

import pytest

from kombify.errors import ConfigError
from kombify.settings import get_settings


def _refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as caught:
        get_settings()
    return caught.value.message


def test_tools_and_audiences_are_read_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMBIFY_TOOLS", " stack=http://127.0.0.1:8421/ , grafana=https://g.lan")
    monkeypatch.setenv("KOMBIFY_SSO_AUDIENCES", "billing,stack")

    settings = get_settings()

    assert settings.tool_urls == {"stack": "http://127.0.0.1:8421", "grafana": "https://g.lan"}
    assert settings.sso_audience_names == ("billing", "stack", "grafana")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "stack",
            "KOMBIFY_TOOLS: expected name=URL pairs like `stack=http://127.0.0.1:8421`, "
            "got `stack` without `=`",
        ),
        (
            "stack=ftp://host",
            "KOMBIFY_TOOLS (stack): expected an http:// or https:// URL with a host, "
            "e.g. `http://127.0.0.1:8421`",
        ),
        (
            "stack=http://u:secret@host",
            "KOMBIFY_TOOLS (stack): expected a URL without user, password, query or fragment",
        ),
        ("a=http://h,a=http://i", "KOMBIFY_TOOLS: tool `a` is named twice"),
        (
            "Stack=http://h",
            "KOMBIFY_TOOLS: expected tool names of lowercase letters, digits and `-` "
            "(starting with a letter, at most 63), got `Stack`",
        ),
    ],
)
def test_bad_tools_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    assert _refusal(monkeypatch, KOMBIFY_TOOLS=value) == message


def test_a_password_in_a_tool_url_is_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "secret" not in _refusal(monkeypatch, KOMBIFY_TOOLS="s=http://u:secret@host")


def test_an_issuer_needs_an_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, KOMBIFY_SSO_TRUSTED_ISSUER="https://portal.lan")

    assert message == (
        "KOMBIFY_SSO_TRUSTED_ISSUER and KOMBIFY_SSO_AUDIENCE: set both (to accept a portal's "
        "SSO tokens) or neither"
    )


def test_the_issuer_must_be_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(
        monkeypatch, KOMBIFY_SSO_TRUSTED_ISSUER="portal.lan", KOMBIFY_SSO_AUDIENCE="stack"
    )

    assert message == (
        "KOMBIFY_SSO_TRUSTED_ISSUER: expected an http:// or https:// URL with a host, "
        "e.g. `http://127.0.0.1:8421`"
    )


def test_the_grace_period_must_outlive_the_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(
        monkeypatch, KOMBIFY_SSO_TOKEN_MINUTES="10", KOMBIFY_SSO_KEY_GRACE_MINUTES="10"
    )

    assert message == (
        "KOMBIFY_SSO_KEY_GRACE_MINUTES: expected more than KOMBIFY_SSO_TOKEN_MINUTES (a retired "
        "key must outlive every token it signed)"
    )
