"""`kombify history` and `kombify diff` as a person reads them (API answers recorded live)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from kombify.cli import history_cmds

WEB = {
    "kind": "changed",
    "object": "service",
    "name": "web",
    "details": ["env: ~DB_PASSWORD, ~RELEASE (values hidden)", "command: changed"],
}


def _revision(number: int, **changes: Any) -> dict[str, Any]:
    revision = {
        "revision": number,
        "created_at": f"2026-12-02T21:4{number}:36.505107Z",
        "sha256": "c4d3" * 16,
        "current": False,
        "deployed": False,
        "rollback_of": None,
        "outcome": "succeeded",
        "runs": [
            {
                "id": f"{number:032x}",
                "kind": "deploy",
                "state": "succeeded",
                "started_at": "2026-12-02T21:48:34Z",
                "finished_at": "2026-12-02T21:48:37Z",
                "rollback_of": None,
                "error": None,
            }
        ],
        "previous": number - 1 if number > 1 else None,
        "summary": "~service web (env, command)" if number > 1 else "first revision",
        "changes": [WEB] if number > 1 else [],
    }
    return {**revision, **changes}


HISTORY = {
    "stack": "lab",
    "current_revision": 4,
    "deployed_revision": 3,
    "count": 4,
    "data": [
        _revision(4, current=True, runs=[], outcome="never deployed"),
        _revision(3, deployed=True, rollback_of=1),
        _revision(
            2,
            runs=[
                {**_revision(2)["runs"][0], "state": "failed"},
                _revision(2)["runs"][0],
                {**_revision(2)["runs"][0], "kind": "destroy"},
            ],
        ),
        _revision(1),
    ],
}

DIFF = {
    "stack": "lab",
    "from_revision": 2,
    "to_revision": 1,
    "identical": False,
    "summary": "~service web (env, command)",
    "changes": [WEB, {"kind": "added", "object": "node", "name": "n2", "details": []}],
    "text": (
        "--- revision 2\n+++ revision 1\n@@ -9,2 +9,2 @@\n"
        "-      command: [sh, -c, echo v2]\n+      command: [sh, -c, echo v1]\n"
        "       env: {DB_PASSWORD: ****, RELEASE: ****}\n"
    ),
}


def _run(monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any], call: Any) -> list[Any]:
    screen = Console(width=120, no_color=True, record=True)
    monkeypatch.setattr(history_cmds, "console", screen)
    asked: list[Any] = []

    class _Client:
        def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            asked.append((method, path, kwargs.get("params")))
            return answer

    monkeypatch.setattr(history_cmds, "_client", _Client)
    call()
    text = "\n".join(line.rstrip() for line in screen.export_text().splitlines())
    return [text, *asked]


def test_history_table_marks_deployed_current_and_rollbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text, asked = _run(
        monkeypatch, HISTORY, lambda: history_cmds.history("lab", limit=50, json_output=False)
    )

    assert asked == ("GET", "/v1/stacks/lab/revisions", {"limit": 50})
    assert text == (
        "lab: revision 4 current, revision 3 deployed; 4 revision(s)\n"
        "rev  created              runs                                  now       changes\n"
        "4    2026-12-02 21:44:36  never deployed                        current   "
        "~service web (env, command)\n"
        "3    2026-12-02 21:43:36  rollback of 1: succeeded              deployed  "
        "~service web (env, command)\n"
        "2    2026-12-02 21:42:36  failed, succeeded, destroy succeeded            "
        "~service web (env, command)\n"
        "1    2026-12-02 21:41:36  succeeded                                       first revision"
    )


def test_diff_lists_changes_then_the_masked_text(monkeypatch: pytest.MonkeyPatch) -> None:
    text, asked = _run(
        monkeypatch,
        DIFF,
        lambda: history_cmds.diff("lab", to=1, from_=None, json_output=False),
    )

    assert asked == ("GET", "/v1/stacks/lab/diff", {"to": 1})
    assert text == (
        "lab: revision 2 → revision 1: ~service web (env, command)\n"
        "~ service web\n"
        "    env: ~DB_PASSWORD, ~RELEASE (values hidden)\n"
        "    command: changed\n"
        "+ node n2\n"
        "\n"
        "--- revision 2\n"
        "+++ revision 1\n"
        "@@ -9,2 +9,2 @@\n"
        "-      command: [sh, -c, echo v2]\n"
        "+      command: [sh, -c, echo v1]\n"
        "       env: {DB_PASSWORD: ****, RELEASE: ****}"
    )


def test_diff_colours_added_and_removed_lines_on_a_terminal() -> None:
    lines = history_cmds._diff_lines(DIFF["text"])  # type: ignore[arg-type]

    styles = {str(span.style) for span in lines.spans}
    assert {"green", "red", "cyan", "bold"} <= styles
