"""The process layer with ordinary commands: streaming, long lines, the SIGKILL fallback."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from kombify.tofu.process import run_cli
from tests.integration.tofu.conftest import processes_left


def _identity(text: str) -> str:
    return text


async def test_a_child_that_ignores_sigint_is_killed_after_the_grace(tmp_path: Path) -> None:
    started = asyncio.Event()

    def on_line(line: str) -> None:
        if line == "ready":
            started.set()

    script = "trap '' INT; echo ready; sleep 30 & wait; sleep 30"
    task = asyncio.create_task(
        run_cli(
            ["sh", "-c", script],
            cwd=tmp_path,
            env=dict(os.environ),
            mask=_identity,
            on_line=on_line,
            grace=0.5,
        )
    )
    await asyncio.wait_for(started.wait(), timeout=10)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # It waited out the 0.5 s grace, then killed rather than waiting for `sleep 30`.
    assert 0.4 < time.monotonic() - began < 20
    assert processes_left(tmp_path) == []  # the sleeping grandchild too


async def test_exit_code_stderr_tail_and_masking(tmp_path: Path) -> None:
    lines: list[str] = []
    script = "echo out-1; echo 'err secret' >&2; exit 7"
    done = await run_cli(
        ["sh", "-c", script],
        cwd=tmp_path,
        env=dict(os.environ),
        mask=lambda text: text.replace("secret", "***"),
        on_line=lines.append,
    )
    assert done.exit_code == 7
    assert done.stdout_lines == ("out-1",) and done.stderr_tail == ("err ***",)
    assert sorted(lines) == ["err ***", "out-1"]


async def test_an_overlong_line_is_left_out_not_fatal(tmp_path: Path) -> None:
    lines: list[str] = []
    script = "head -c 2000000 /dev/zero | tr '\\0' x; echo; echo after"
    done = await run_cli(
        ["sh", "-c", script],
        cwd=tmp_path,
        env=dict(os.environ),
        mask=_identity,
        on_line=lines.append,
    )
    assert done.exit_code == 0
    assert lines[-1] == "after" and all(len(line) < 100 for line in lines)


async def test_a_failing_callback_stops_the_command(tmp_path: Path) -> None:
    def on_line(line: str) -> None:
        raise RuntimeError(f"sink broke on {line}")

    began = time.monotonic()
    with pytest.raises(RuntimeError, match="sink broke on hello"):
        await run_cli(
            ["sh", "-c", "echo hello; sleep 30"],
            cwd=tmp_path,
            env=dict(os.environ),
            mask=_identity,
            on_line=on_line,
            grace=0.5,
        )
    assert time.monotonic() - began < 20  # not the 30 s of `sleep`
    assert processes_left(tmp_path) == []
