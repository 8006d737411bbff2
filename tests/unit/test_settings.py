"""Settings need nothing to work and honour every KOMBIFY_* variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.settings import Settings


def test_defaults_keep_everything_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOMBIFY_HOME", str(tmp_path))
    settings = Settings()

    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'kombify.db'}"
    assert settings.resolved_api_url == "http://127.0.0.1:8420"
    assert settings.run_dir == tmp_path / "run"
    assert settings.temporal_address is None


def test_default_home_is_an_xdg_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOMBIFY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    assert Settings().home == tmp_path / "kombify"


def test_environment_switches_database_and_temporal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMBIFY_DATABASE_URL", "postgresql+psycopg://k@db/kombify")
    monkeypatch.setenv("KOMBIFY_TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("KOMBIFY_API_PORT", "9000")
    settings = Settings()

    assert settings.resolved_database_url == "postgresql+psycopg://k@db/kombify"
    assert settings.temporal_address == "temporal.internal:7233"
    assert settings.resolved_api_url == "http://127.0.0.1:9000"


def test_status_stream_seconds_is_five_by_default_and_two_at_least(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kombify.errors import ConfigError
    from kombify.settings import get_settings

    assert Settings().status_stream_seconds == 5
    monkeypatch.setenv("KOMBIFY_STATUS_STREAM_SECONDS", "2")
    get_settings.cache_clear()
    assert get_settings().status_stream_seconds == 2
    monkeypatch.setenv("KOMBIFY_STATUS_STREAM_SECONDS", "1")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(refused.value) == (
        "KOMBIFY_STATUS_STREAM_SECONDS: Input should be greater than or equal to 2"
    )
