"""`kombify drift` and `kombify heal` as a person and a script read them.

The API's answers are the contracts' dataclasses (DriftFound, HealPassResult) as JSON; here
they come from those dataclasses, so a renamed field breaks these tests too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest
from typer.testing import CliRunner

from kombify.cli import heal_cmds
from kombify.cli.main import app
from kombify.contracts.heal import DriftFound, DriftItem, HealPassResult

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}
DRIFT = DriftFound(
    items=[
        DriftItem("box", "changed", "web", "web-1", "env FOO: bar (spec: baz)"),
        DriftItem("box", "unmanaged", "", "by-hand", "not started by kombify"),
        DriftItem("", "tofu", detail="terraform_data.box: update in place"),
    ],
    checked_at="2026-12-03T10:00:00+00:00",
    strategy="restart",
)


def _answer(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []

    class Client:
        def request(self, method: str, path: str, **_: Any) -> Any:
            calls.append((method, path))
            return answer

    monkeypatch.setattr(heal_cmds, "_client", lambda *_: Client())
    return calls


def test_drift_prints_a_line_per_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _answer(monkeypatch, asdict(DRIFT))
    result = CliRunner().invoke(app, ["drift", "lab"], env=ENV)

    assert calls == [("GET", "/v1/stacks/lab/drift")]
    assert result.exit_code == 0
    assert result.output == (
        "box/web (web-1): changed: env FOO: bar (spec: baz)\n"
        "box (by-hand): unmanaged: not started by kombify\n"
        "stack: tofu: terraform_data.box: update in place\n"
    )


@pytest.mark.parametrize(
    ("found", "args", "code"),
    [
        (DRIFT, ["--exit-code"], 2),
        (DRIFT, [], 0),
        (DriftFound(checked_at="2026-12-03T10:00:00+00:00"), ["--exit-code"], 0),
        (DRIFT, ["--json", "--exit-code"], 2),
    ],
)
def test_drift_exit_code(
    monkeypatch: pytest.MonkeyPatch, found: DriftFound, args: list[str], code: int
) -> None:
    _answer(monkeypatch, asdict(found))
    result = CliRunner().invoke(app, ["drift", "lab", *args], env=ENV)
    assert result.exit_code == code, result.output


def test_no_drift_says_so_and_json_is_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = DriftFound(checked_at="2026-12-03T10:00:00+00:00")
    _answer(monkeypatch, asdict(clean))
    assert CliRunner().invoke(app, ["drift", "lab"], env=ENV).output == (
        "no drift (lab, checked at 2026-12-03 10:00:00)\n"
    )
    _answer(monkeypatch, asdict(DRIFT))
    printed = CliRunner().invoke(app, ["drift", "lab", "--json"], env=ENV).output
    assert json.loads(printed) == asdict(DRIFT)


def test_heal_prints_what_the_pass_found_and_did(monkeypatch: pytest.MonkeyPatch) -> None:
    result = HealPassResult(
        nodes_down=["nas: did not answer within 20 s"],
        problems=["box/web: exited (exit code 137)"],
        drift=[DriftItem("box", "missing-volume", "db", "", "volume data")],
        actions=["restarted web-1", "started the simulated node nas"],
        incidents=[4, 5],
    )
    calls = _answer(monkeypatch, asdict(result))
    printed = CliRunner().invoke(app, ["heal", "lab"], env=ENV)

    assert calls == [("POST", "/v1/stacks/lab/heal")]
    assert printed.exit_code == 0
    assert printed.output == (
        "node down: nas: did not answer within 20 s\n"
        "problem: box/web: exited (exit code 137)\n"
        "drift: box/db: missing-volume: volume data\n"
        "did: restarted web-1\n"
        "did: started the simulated node nas\n"
        "incidents: 4, 5\n"
    )


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (HealPassResult(skipped="healing is off (spec.healing.enabled: false)"),
         "skipped: healing is off (spec.healing.enabled: false)\n"),
        (HealPassResult(), "nothing to heal: every node answered and runs what the spec says\n"),
    ],
)
def test_heal_skipped_or_nothing_to_do(
    monkeypatch: pytest.MonkeyPatch, result: HealPassResult, line: str
) -> None:
    _answer(monkeypatch, asdict(result))
    assert CliRunner().invoke(app, ["heal", "lab"], env=ENV).output == line
    assert json.loads(CliRunner().invoke(app, ["heal", "lab", "--json"], env=ENV).output) == (
        asdict(result)
    )
