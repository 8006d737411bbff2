"""Cancellation and the per-stack lock, with the real CLI and real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kombify.tofu import TofuLockedError, TofuRunner
from kombify.tofu.lock import LOCK_FILE
from tests.integration.tofu.conftest import GOOD_CONFIG, StackFactory, processes_in, processes_left

SLOW_CONFIG = """
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo started; sleep 30; echo never"
  }
}
"""


async def _start_apply(
    runner: TofuRunner, workdir: Path, lines: list[str] | None = None
) -> asyncio.Task[object]:
    """Start an apply and return once its provisioner has printed ``started``."""
    started = asyncio.Event()
    sink = lines if lines is not None else []

    def on_line(line: str) -> None:
        sink.append(line)
        if line.endswith("(local-exec): started"):
            started.set()

    task: asyncio.Task[object] = asyncio.create_task(runner.apply(workdir, on_line=on_line))
    await asyncio.wait_for(started.wait(), timeout=20)
    return task


async def test_cancel_interrupts_the_cli_and_leaves_state_unlocked(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(SLOW_CONFIG)
    await runner.init(workdir)
    lines: list[str] = []
    task = await _start_apply(runner, workdir, lines)
    assert processes_in(workdir), "the CLI and its provisioner should be running"

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert processes_left(workdir) == []
    assert any("Interrupt received" in line for line in lines)  # it was SIGINT, not SIGKILL

    # Neither kombify's lock nor the CLI's state lock is left behind: a new run proceeds,
    # and sees the interrupted resource as needing to be created again.
    summary = await runner.plan(workdir)
    assert summary.add == 1


async def test_a_second_apply_of_the_same_stack_is_refused_in_process(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(SLOW_CONFIG)
    other = make_stack(GOOD_CONFIG, name="other")
    await runner.init(workdir)
    await runner.init(other)
    task = await _start_apply(runner, workdir)
    try:
        with pytest.raises(TofuLockedError, match="busy"):
            await runner.apply(workdir)
        with pytest.raises(TofuLockedError):
            await runner.destroy(workdir)
        # Another stack is not held up.
        assert (await runner.apply(other)).added == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_waiting_runner_gets_the_stack_when_it_is_free(
    tofu_binary: str, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    patient = TofuRunner(binary=tofu_binary, lock_timeout=20)
    await patient.init(workdir)
    first = asyncio.create_task(patient.apply(workdir))
    second = asyncio.create_task(patient.apply(workdir))
    results = await asyncio.gather(first, second)
    assert sorted(r.added for r in results) == [0, 2]


async def test_another_process_holding_the_stack_blocks_apply(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)
    holder_code = (
        "import fcntl, json, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "info = {'operation': 'apply', 'pid': os.getpid(), 'host': 'h'}\n"
        "os.write(fd, json.dumps(info).encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    (workdir / LOCK_FILE).parent.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(workdir / LOCK_FILE)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(TofuLockedError) as info:
            await runner.apply(workdir)
        assert f"apply by pid {holder.pid} on h" in info.value.message
    finally:
        holder.kill()
        holder.wait()
    assert (await runner.apply(workdir)).added == 2  # the kernel dropped the dead holder's lock


async def test_the_clis_own_state_lock_is_reported_as_locked(
    runner: TofuRunner, tofu_binary: str, make_stack: StackFactory
) -> None:
    # A run kombify did not start (someone at a shell) holds the state lock.
    workdir = make_stack(SLOW_CONFIG)
    await runner.init(workdir)
    outsider = subprocess.Popen(
        [tofu_binary, "apply", "-auto-approve", "-no-color", "-input=false"],
        cwd=workdir,
        env=runner.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert outsider.stdout is not None
        for raw in outsider.stdout:
            if raw.rstrip().endswith(b"started"):
                break
        with pytest.raises(TofuLockedError) as info:
            await runner.plan(workdir)
        assert "Error acquiring the state lock" in info.value.stderr_tail
        assert info.value.command[1] == "plan"
    finally:
        os.killpg(outsider.pid, signal.SIGKILL)
        outsider.wait()
