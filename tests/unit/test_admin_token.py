"""The admin token is never blank: a blank file is replaced, a blank variable refused."""

from __future__ import annotations

import stat
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kombify.admin_token import admin_token, token_path
from kombify.api.app import create_app
from kombify.errors import ConfigError
from kombify.settings import Settings
from tests.support.concurrency import at_once


def _settings(home: Path, token: str | None = None) -> Settings:
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'k.db'}",
        admin_token=SecretStr(token) if token is not None else None,
    )


@pytest.mark.parametrize("blank", ["", "\n", "  \n\t\n"])
def test_blank_token_file_is_replaced_at_start_and_an_empty_bearer_is_refused(
    tmp_path: Path, blank: str
) -> None:
    settings = _settings(tmp_path)
    token_path(settings).write_text(blank)
    assert admin_token(settings) is None  # the CLI sends no token rather than a blank one

    app = create_app(settings)

    token = app.state.admin_token
    assert len(token) >= 32
    assert token_path(settings).read_text() == token + "\n"
    assert stat.S_IMODE(token_path(settings).stat().st_mode) == 0o600
    assert admin_token(settings) == token
    with TestClient(app, raise_server_exceptions=False) as client:  # started: migrated
        for header in ("Bearer ", "Bearer", "Bearer  \t"):
            response = client.get("/v1/stacks", headers={"Authorization": header})
            assert response.status_code == 401, header


def test_token_file_is_created_once_and_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    first = create_app(settings).state.admin_token
    second = create_app(settings).state.admin_token

    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == ["admin-token"]  # no staging file left


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_admin_token_variable_stops_the_api_from_starting(tmp_path: Path, blank: str) -> None:
    with pytest.raises(ConfigError, match="KOMBIFY_ADMIN_TOKEN is set but blank"):
        create_app(_settings(tmp_path, blank))
    assert not token_path(_settings(tmp_path)).exists()


def test_admin_token_variable_wins_over_the_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path, " s3cret-token ")
    token_path(settings).write_text("from-file\n")

    assert create_app(settings).state.admin_token == "s3cret-token"


@pytest.mark.parametrize("start", ["missing", "blank"])
def test_api_processes_starting_together_share_one_token(tmp_path: Path, start: str) -> None:
    # Several API processes on one KOMBIFY_HOME: each must serve the token the file holds,
    # or the CLI (which reads the file) is refused by all but one of them.
    for round_ in range(20):
        settings = _settings(tmp_path / str(round_))
        if start == "blank":
            settings.home.mkdir()
            token_path(settings).write_text("\n")

        tokens = at_once(8, partial(admin_token, settings, create=True))

        assert len(set(tokens)) == 1, f"round {round_}: {len(set(tokens))} different tokens"
        assert token_path(settings).read_text() == f"{tokens[0]}\n"
        assert [p.name for p in settings.home.iterdir()] == ["admin-token"]
