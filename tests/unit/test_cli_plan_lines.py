"""The deploy CLI shows the plan per node: in the approval prompt and in the live progress."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from kombify.cli import deploy_cmds
from kombify.cli.output import console, err_console

PLAN_LINES = [
    "node box: re-bootstrap (bootstrap script changed)",
    "services: changed through the node agent in the rollout step, not by OpenTofu",
]


def _run() -> dict[str, Any]:
    return {
        "id": "0" * 32,
        "kind": "deploy",
        "stack": "lab",
        "revision": 2,
        "state": "running",
        "progress": {
            "state": "waiting-approval",
            "steps": [
                {"name": "plan", "state": "done", "detail": "1 to add, 0 to change, 1 to destroy"}
            ],
            "nodes": [{"name": "box", "state": "pending", "services": {}}],
            "plan": {"add": 1, "change": 0, "destroy": 1},
            "plan_lines": PLAN_LINES,
        },
    }


def test_the_approval_prompt_lists_what_changes_per_node() -> None:
    with console.capture() as captured, err_console.capture() as errors:
        asked = deploy_cmds._ask_approval(None, _run())  # type: ignore[arg-type]  # no tty: no call
    assert not asked
    out = captured.get()
    for line in PLAN_LINES:
        assert line in out
    # Without a terminal the question goes to stderr, with the command that answers it.
    assert "waiting for approval of the plan (1 to add, 0 to change, 1 to destroy)" in errors.get()


def test_the_live_progress_lists_what_changes_per_node() -> None:
    screen = Console(width=120, no_color=True, record=True)
    screen.print(deploy_cmds._render(_run()))
    text = screen.export_text()
    for line in PLAN_LINES:
        assert f"  {line}" in text
