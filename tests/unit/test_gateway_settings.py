"""KOMBIFY_RATE_LIMITS, KOMBIFY_CORS_ORIGINS and KOMBIFY_REDIS_URL: used as given, or refused."""

from __future__ import annotations

import pytest

from kombify.errors import ConfigError
from kombify.gateway.rules import Rule
from kombify.settings import get_settings


def test_rate_limits_default_and_override_class_by_class(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().rate_limit_rules == {
        "auth": Rule(30, 60),
        "write": Rule(120, 60),
        "read": Rule(600, 60),
        "tries": Rule(10, 60),
    }
    monkeypatch.setenv("KOMBIFY_RATE_LIMITS", " read = 5000/1, tries=3/300 ")
    get_settings.cache_clear()

    rules = get_settings().rate_limit_rules
    assert rules["read"] == Rule(5000, 1) and rules["tries"] == Rule(3, 300)
    assert rules["auth"] == Rule(30, 60)  # left out: the default


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "read=600",
            "KOMBIFY_RATE_LIMITS: `read=600` is not CLASS=COUNT/SECONDS, e.g. "
            "`auth=30/60,write=120/60,read=600/60,tries=10/60`",
        ),
        (
            "reads=1/60",
            "KOMBIFY_RATE_LIMITS: unknown class `reads`; expected one of auth, write, read, tries",
        ),
        (
            "read=0/60",
            "KOMBIFY_RATE_LIMITS: `read=0/60`: the count and the seconds must be 1 or more",
        ),
        ("read=1/60,read=2/60", "KOMBIFY_RATE_LIMITS: class `read` is given twice"),
        (
            "https://*.example.org",
            "KOMBIFY_CORS_ORIGINS: `https://*.example.org` is not an origin; expected "
            "scheme://host[:port] such as `https://portal.example.org`",
        ),
    ],
)
def test_a_wrong_limit_or_origin_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    variable = "KOMBIFY_CORS_ORIGINS" if "://" in value else "KOMBIFY_RATE_LIMITS"
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()

    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "*",
            "KOMBIFY_CORS_ORIGINS: `*` is not accepted (credentials are allowed): list the "
            "origins, e.g. `https://portal.example.org`",
        ),
        (
            "https://portal.example.org/app",
            "KOMBIFY_CORS_ORIGINS: `https://portal.example.org/app` is not an origin; expected "
            "scheme://host[:port] such as `https://portal.example.org`",
        ),
    ],
)
def test_cors_wildcards_and_paths_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("KOMBIFY_CORS_ORIGINS", value)
    get_settings.cache_clear()

    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert str(caught.value) == message


def test_cors_origins_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMBIFY_CORS_ORIGINS", "https://Portal.Example.org/, http://127.0.0.1:3000")
    get_settings.cache_clear()

    assert get_settings().cors_origin_list == [
        "https://portal.example.org",
        "http://127.0.0.1:3000",
    ]


def test_redis_url_must_be_a_redis_url_and_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMBIFY_REDIS_URL", "http://:hunter2@cache:6379")
    get_settings.cache_clear()

    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert str(caught.value) == (
        "KOMBIFY_REDIS_URL: expected a URL starting with redis://, rediss:// or unix://"
    )
    monkeypatch.setenv("KOMBIFY_REDIS_URL", "redis://:hunter2@cache:6379/0")
    get_settings.cache_clear()
    assert "hunter2" not in repr(get_settings())
