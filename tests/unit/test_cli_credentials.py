"""Which credential the CLI sends, and the file ``kombify login`` keeps sessions in."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from kombify.admin_token import admin_token
from kombify.cli.credentials import (
    SavedLogin,
    credentials_path,
    forget_login,
    resolve,
    save_login,
    saved_login,
)
from kombify.errors import ConfigError
from kombify.settings import Settings

A = "http://127.0.0.1:8420"
B = "https://kombify.example.org"


def _settings(home: Path, url: str = A, **changes: object) -> Settings:
    return Settings(home=home, api_url=url, **changes)  # type: ignore[arg-type]


def _login(token: str) -> SavedLogin:
    return SavedLogin(token=token, email="a@example.org", organisation="local", expires_at="")


def test_api_key_then_saved_session_then_admin_token(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert resolve(settings) is None
    admin = admin_token(settings, create=True)
    assert admin is not None
    found = resolve(settings)
    assert found is not None and (found.token, found.source) == (admin, "admin-token")

    save_login(settings, _login("kfs_session"))
    found = resolve(settings)
    assert found is not None and (found.token, found.source) == ("kfs_session", "session")

    with_key = _settings(tmp_path, api_key=SecretStr("kfk_key"))
    found = resolve(with_key)
    assert found is not None and (found.token, found.source) == ("kfk_key", "api-key")
    assert "kfk_key" not in repr(found)


def test_a_blank_api_key_is_refused_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KOMBIFY_API_KEY is set but blank"):
        resolve(_settings(tmp_path, api_key=SecretStr("  ")))


def test_sessions_are_kept_per_api_url_in_a_private_file(tmp_path: Path) -> None:
    at_a, at_b = _settings(tmp_path, A), _settings(tmp_path, B + "/")
    save_login(at_a, _login("kfs_a"))
    save_login(at_b, _login("kfs_b"))
    path = credentials_path(at_a)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [f.name for f in path.parent.iterdir()] == ["credentials.json"]  # no staging left

    found_b = saved_login(_settings(tmp_path, B))  # with or without the trailing slash
    assert found_b is not None and found_b.token == "kfs_b"
    assert forget_login(at_a) is True
    assert saved_login(at_a) is None
    assert forget_login(at_a) is False
    found_b = saved_login(at_b)
    assert found_b is not None and found_b.token == "kfs_b"


def test_an_unreadable_file_says_what_to_do(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path = credentials_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="delete it and `kombify login` again"):
        resolve(settings)


def test_a_bad_kombify_org_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombify.settings import get_settings

    monkeypatch.setenv("KOMBIFY_ORG", "../lab")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"KOMBIFY_ORG: organisation `\.\./lab` is not valid"):
        get_settings()
