"""`kombify workflow validate`: exact output and the exit codes and JSON of `kombify validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kombify.cli import workflow_cmds

ENV = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}
GOOD = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata: {name: nightly}
spec:
  steps:
    - id: wait
      sleep: 5s
"""
BAD = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata: {name: nightly}
spec:
  steps:
    - id: wait
      sleep: 5 seconds
    - id: tell
      notify: {message: "waited: ${{ steps.wiat.outcome }}"}
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "refs.yaml").write_text(BAD.replace("5 seconds", "5s"))
    monkeypatch.chdir(tmp_path)
    main = typer.Typer()
    workflow_cmds.register(main)
    return main


def test_valid(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["workflow", "validate", "good.yaml"], env=ENV)
    assert (result.exit_code, result.stdout) == (0, "good.yaml: valid\n")


def test_problems_on_stderr_with_line_and_path(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["workflow", "validate", "bad.yaml"], env=ENV)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        'bad.yaml:7: spec.steps[0].sleep: expected a duration like 30s, 5m or 1h, got "5 seconds"\n'
        "bad.yaml: 1 problem\n"
    )
    result = CliRunner().invoke(app, ["workflow", "validate", "refs.yaml"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr == (
        "refs.yaml:9: spec.steps[1].notify.message: `steps.wiat.outcome`: no step `wiat` "
        '(did you mean "wait"?)\n'
        "refs.yaml: 1 problem\n"
    )


def test_json_shape_and_exit_codes(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["workflow", "validate", "bad.yaml", "--json"], env=ENV)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {
            "path": "spec.steps[0].sleep",
            "line": 7,
            "message": 'expected a duration like 30s, 5m or 1h, got "5 seconds"',
        }
    ]
    result = CliRunner().invoke(app, ["workflow", "validate", "good.yaml", "--json"], env=ENV)
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])
    result = CliRunner().invoke(app, ["workflow", "validate", "missing.yaml"], env=ENV)
    assert result.exit_code == 2
    assert result.stderr == "error: `missing.yaml` does not exist\n"
