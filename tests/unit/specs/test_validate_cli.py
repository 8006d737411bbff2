"""`kombify validate` / `stackkit validate` / `kombify schema`: exact output, exit codes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kombify.cli import validate_cmds
from kombify.cli.stackkit import app as stackkit_app

DATA = Path(__file__).resolve().parents[2] / "data" / "spec"
ENV = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}


@pytest.fixture
def app() -> typer.Typer:
    # The registration as the main app does it, without depending on the other groups.
    main = typer.Typer()
    validate_cmds.register(main)
    return main


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(DATA / "invalid" / "port-clash.yaml", tmp_path / "clash.yaml")
    shutil.copy(DATA / "examples" / "base-homelab.yaml", tmp_path / "good.yaml")
    (tmp_path / "multi.yaml").write_text(
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: Lab}\n"
        "spec:\n  stackkit: base-homelab\n  nodez: []\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_valid_file(app: typer.Typer, files: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "good.yaml"], env=ENV)
    assert result.exit_code == 0
    assert result.stdout == "good.yaml: valid\n"


def test_invalid_file_exact_output(app: typer.Typer, files: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "multi.yaml"], env=ENV)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "multi.yaml:3: metadata.name: expected a DNS label (lowercase letters, digits and '-', "
        'starting and ending with a letter or digit, at most 63 characters), got "Lab"\n'
        'multi.yaml:6: spec.nodez: unknown field "nodez" (did you mean "nodes"?)\n'
        "multi.yaml: 2 problems\n"
    )


def test_json_output(app: typer.Typer, files: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "clash.yaml", "--json"], env=ENV)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {
            "path": "spec.services.b.ports[0].host",
            "line": 11,
            "message": 'host port 8080/tcp on node "nas" is already used by a (line 10)',
        }
    ]
    ok = CliRunner().invoke(app, ["validate", "good.yaml", "--json"], env=ENV)
    assert (ok.exit_code, ok.stdout) == (0, "[]\n")


def test_missing_file_is_a_usage_error(app: typer.Typer, files: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "nope.yaml"], env=ENV)
    assert result.exit_code == 2
    assert result.stderr == "error: `nope.yaml` does not exist\n"


def test_stackkit_validate_is_the_same_command(files: Path) -> None:
    result = CliRunner().invoke(stackkit_app, ["validate", "clash.yaml"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        'clash.yaml:11: spec.services.b.ports[0].host: host port 8080/tcp on node "nas" '
        "is already used by a (line 10)"
    )


def test_schema_command_prints_the_shipped_schema(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["schema"], env=ENV)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}


def test_size_limit_is_checked_before_parsing(app: typer.Typer, files: Path) -> None:
    # /dev/zero never ends: only a bounded read answers at all.
    started = time.monotonic()
    endless = CliRunner().invoke(app, ["validate", "/dev/zero"], env=ENV)
    assert (endless.exit_code, endless.stdout) == (2, "")
    assert endless.stderr == (
        "error: `/dev/zero` is larger than 1 MiB, the limit for a kombination file\n"
    )
    (files / "big.yaml").write_text("# padding\n" * 1_000_000)  # 10 MB
    big = CliRunner().invoke(app, ["validate", "big.yaml"], env=ENV)
    assert big.exit_code == 2
    assert big.stderr == (
        "error: `big.yaml` is larger than 1 MiB, the limit for a kombination file\n"
    )
    assert time.monotonic() - started < 2


def test_binary_file_is_a_usage_error(app: typer.Typer, files: Path) -> None:
    (files / "bin.yaml").write_bytes(b"apiVersion: \xff\n")
    result = CliRunner().invoke(app, ["validate", "bin.yaml"], env=ENV)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: `bin.yaml` is not UTF-8 text (byte 13): expected a kombination in YAML\n"
    )


def test_a_text_over_the_limit_is_refused_unparsed() -> None:
    from kombify.specs import validate_text

    problems = validate_text("a: b\n" + "#" * (1024 * 1024))
    assert [p.format("k.yaml") for p in problems] == [
        "k.yaml:1: the document is larger than 1 MiB, the limit"
    ]
