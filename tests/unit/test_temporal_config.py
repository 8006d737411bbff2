"""temporal-dev.yml becomes the right `temporal server start-dev` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.errors import ConfigError
from kombify.runtime.temporal_dev import build_command, load_config
from kombify.settings import Settings


def _flag_values(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == flag]


def test_shipped_config_persists_history_and_registers_search_attributes(tmp_path: Path) -> None:
    config = load_config(Settings(home=tmp_path))
    cmd = build_command(config, binary="temporal")

    assert cmd[:3] == ["temporal", "server", "start-dev"]
    assert _flag_values(cmd, "--ip") == ["127.0.0.1"]
    assert _flag_values(cmd, "--port") == ["7233"]
    assert _flag_values(cmd, "--ui-port") == ["8233"]
    assert _flag_values(cmd, "--db-filename") == [str(tmp_path / "temporal" / "dev.sqlite")]
    attrs = _flag_values(cmd, "--search-attribute")
    assert "KombifyStack=Keyword" in attrs and "KombifyOrganisation=Keyword" in attrs
    assert "limit.blobSize.error=16777216" in _flag_values(cmd, "--dynamic-config-value")


def test_port_override_frees_the_other_pinned_ports(tmp_path: Path) -> None:
    config = load_config(Settings(home=tmp_path, temporal_port=17233, temporal_ui_port=18233))
    cmd = build_command(config, binary="temporal")

    assert config.address == "127.0.0.1:17233"
    assert config.ui_url == "http://127.0.0.1:18233"
    assert "--http-port" not in cmd and "--metrics-port" not in cmd


def test_unknown_search_attribute_type_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "temporal-dev.yml"
    bad.write_text("port: 7233\nsearch_attributes:\n  KombifyStack: Strnig\n")

    with pytest.raises(
        ConfigError, match=r"search_attributes.KombifyStack: 'Strnig' is not one of"
    ):
        load_config(Settings(home=tmp_path, temporal_config=bad))


def test_non_numeric_port_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "temporal-dev.yml"
    bad.write_text("port: seven\n")

    with pytest.raises(ConfigError, match="`port` must be a port number"):
        load_config(Settings(home=tmp_path, temporal_config=bad))
