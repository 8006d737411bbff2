"""`kombify server` starts Temporal, a worker and the API; Ctrl-C stops every child."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.procs import pids_with_env

pytestmark = pytest.mark.docker  # deploys onto a simulated node


def _wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"server exited early ({proc.poll()}):\n{''.join(lines)}")
        lines.append(line)
        if marker in line:
            return lines
    pytest.fail(f"no {marker!r} within {timeout}s:\n{''.join(lines)}")


def test_server_starts_everything_and_sigint_leaves_no_child(kombify_home: Path) -> None:
    api_port, t_port, ui_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "KOMBIFY_HOME": str(kombify_home),
        "KOMBIFY_API_PORT": str(api_port),
        "KOMBIFY_TEMPORAL_PORT": str(t_port),
        "KOMBIFY_TEMPORAL_UI_PORT": str(ui_port),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kombify", "server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_line(proc, "kombify is running", timeout=120)
        lines = _wait_for_line(proc, "logs", timeout=10)
        out = "".join(lines)
        assert f"http://127.0.0.1:{api_port}/docs" in out
        assert f"http://127.0.0.1:{ui_port}" in out

        ready = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        ui = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10)
        assert ui.status_code == 200
        with sqlite3.connect(kombify_home / "kombify.db") as db:
            (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version

        status = subprocess.run(
            [sys.executable, "-m", "kombify", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        parts = json.loads(status.stdout)
        assert {name: p["ok"] for name, p in parts.items()} == {
            "api": True,
            "worker": True,
            "temporal": True,
            "database": True,
        }
        assert len(pids_with_env("KOMBIFY_HOME", str(kombify_home))) >= 3

        _apply_status_destroy_through_the_cli(env, kombify_home)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while pids_with_env("KOMBIFY_HOME", str(kombify_home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids_with_env("KOMBIFY_HOME", str(kombify_home)) == []


def _kombify(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kombify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _apply_status_destroy_through_the_cli(env: dict[str, str], home: Path) -> None:
    """The user's path: apply a file, read the status, destroy, as the README shows it."""
    name = f"ks-{secrets.token_hex(3)}"
    example = Path(__file__).parents[2] / "docs" / "examples" / "rehearsal.yaml"
    file = home / "lab.yaml"
    file.write_text(example.read_text().replace("name: rehearsal", f"name: {name}"))
    try:
        # No terminal to ask on: a distinct exit code, the id, and the command that approves.
        waiting = _kombify(env, "apply", str(file))
        assert waiting.returncode == 3, waiting.stdout + waiting.stderr
        run_id = waiting.stdout.split()[1]
        assert waiting.stdout.startswith(f"deployment {run_id} of `{name}`: `kombify logs ")
        assert f"run `kombify approve {run_id}`" in waiting.stderr
        approved = _kombify(env, "approve", run_id)
        assert approved.returncode == 0, approved.stdout + approved.stderr
        logs = _kombify(env, "logs", run_id, "--follow")
        assert logs.returncode == 0 and logs.stdout, logs.stderr

        applied = _kombify(env, "apply", str(file), "--auto-approve")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"deploy of `{name}` succeeded" in applied.stdout
        assert "✓ rollout" in applied.stdout

        status = _kombify(env, "status", name, "--json")
        assert status.returncode == 0, status.stderr
        (node,) = json.loads(status.stdout)["nodes"]
        assert node["name"] == "box" and node["services"]["web"]["healthy"] is True

        refused = _kombify(env, "destroy", name)
        assert refused.returncode == 2 and "pass --yes" in refused.stderr

        destroyed = _kombify(env, "destroy", name, "--yes")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert f"destroy of `{name}` succeeded" in destroyed.stdout
    finally:
        _kombify(env, "sim", "delete", name)


def test_status_reports_what_is_down(kombify_home: Path) -> None:
    env = {
        **os.environ,
        "KOMBIFY_HOME": str(kombify_home),
        "KOMBIFY_API_PORT": str(free_port()),
        "KOMBIFY_TEMPORAL_PORT": str(free_port()),
    }
    status = subprocess.run(
        [sys.executable, "-m", "kombify", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 1
    parts = json.loads(status.stdout)
    assert parts["api"]["ok"] is False and parts["api"]["detail"] == "not answering"
    assert parts["temporal"]["ok"] is False
    assert parts["worker"]["detail"] == "unknown: Temporal does not answer"
    assert parts["database"]["ok"] is True


def test_apply_of_an_invalid_file_names_every_problem_and_changes_nothing(
    kombify_home: Path,
) -> None:
    env = {**os.environ, "KOMBIFY_HOME": str(kombify_home), "NO_COLOR": "1", "COLUMNS": "200"}
    bad = kombify_home / "bad.yaml"
    kombify_home.mkdir(parents=True, exist_ok=True)
    bad.write_text(
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\nspec:\n"
        "  stackkit: base-homelab\n  nodez: []\n"
    )

    result = _kombify(env, "apply", str(bad), timeout=60)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f'{bad}:6: spec.nodez: unknown field "nodez" (did you mean "nodes"?)'
    assert lines[-1] == f"error: `{bad}` is not valid: 1 problem(s); nothing was changed"
    assert not (kombify_home / "kombify.db").exists()  # nothing was stored anywhere
