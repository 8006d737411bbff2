"""Which CLI binary kombify picks, and the error when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kombify.errors import ConfigError, TofuError
from kombify.settings import get_settings
from kombify.tofu.binary import find_tofu_binary
from kombify.tofu.errors import TofuNotFound


def _fake(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.delenv("KOMBIFY_TOFU_BIN", raising=False)
    get_settings.cache_clear()
    return directory


def test_prefers_tofu_over_terraform(bin_dir: Path) -> None:
    _fake(bin_dir, "terraform")
    assert find_tofu_binary() == str(bin_dir / "terraform")
    _fake(bin_dir, "tofu")
    assert find_tofu_binary() == str(bin_dir / "tofu")


def test_setting_overrides_path(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(bin_dir, "tofu")
    custom = _fake(tmp_path, "my-tofu")
    monkeypatch.setenv("KOMBIFY_TOFU_BIN", str(custom))
    get_settings.cache_clear()
    assert find_tofu_binary() == str(custom)
    assert find_tofu_binary(str(bin_dir / "tofu")) == str(bin_dir / "tofu")  # explicit wins


def test_neither_found_names_what_to_install(bin_dir: Path) -> None:
    with pytest.raises(TofuNotFound) as info:
        find_tofu_binary()
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TofuError)
    assert "`tofu`" in info.value.message and "`terraform`" in info.value.message
    assert "KOMBIFY_TOFU_BIN" in info.value.message


def test_a_chosen_binary_that_is_missing_does_not_fall_back(bin_dir: Path) -> None:
    _fake(bin_dir, "terraform")
    with pytest.raises(TofuNotFound, match="/nowhere/tofu"):
        find_tofu_binary("/nowhere/tofu")


def test_a_chosen_binary_must_be_executable(bin_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "tofu"
    path.write_text("")
    os.chmod(path, 0o644)
    with pytest.raises(TofuNotFound):
        find_tofu_binary(str(path))
