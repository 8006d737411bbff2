"""The per-stack lock: refused at once by default, waited for on request, holder named."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from pathlib import Path

import pytest

from kombify.tofu.errors import TofuLockedError
from kombify.tofu.lock import LOCK_FILE, stack_lock


async def test_second_holder_in_process_is_refused(tmp_path: Path) -> None:
    async with stack_lock(tmp_path, operation="apply"):
        with pytest.raises(TofuLockedError, match="another run in this process"):
            async with stack_lock(tmp_path, operation="apply"):
                pass
        async with stack_lock(tmp_path / ".." / tmp_path.name / "sub", operation="x"):
            pass  # a different directory is independent
    async with stack_lock(tmp_path, operation="apply"):
        pass  # released


async def test_waiter_gets_the_lock_when_released(tmp_path: Path) -> None:
    order: list[str] = []

    async def hold() -> None:
        async with stack_lock(tmp_path, operation="apply"):
            order.append("first in")
            await asyncio.sleep(0.2)
            order.append("first out")

    first = asyncio.create_task(hold())
    await asyncio.sleep(0.05)
    async with stack_lock(tmp_path, operation="plan", timeout=5):
        order.append("second in")
    await first
    assert order == ["first in", "first out", "second in"]


async def test_waiting_times_out(tmp_path: Path) -> None:
    async with stack_lock(tmp_path, operation="apply"):
        with pytest.raises(TofuLockedError):
            async with stack_lock(tmp_path, operation="apply", timeout=0.2):
                pass


async def test_a_flock_held_elsewhere_is_refused_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    path.parent.mkdir()
    # A separate open file description conflicts like another process would (flock semantics).
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"operation": "destroy", "pid": 4242, "host": "n1"}).encode())
        with pytest.raises(TofuLockedError, match="destroy by pid 4242 on n1"):
            async with stack_lock(tmp_path, operation="apply", timeout=0.3):
                pass
    finally:
        os.close(fd)
    async with stack_lock(tmp_path, operation="apply"):
        holder = json.loads(path.read_text())
        assert holder["operation"] == "apply" and holder["pid"] == os.getpid()
    assert path.read_text() == ""  # cleared on release
    assert oct(path.stat().st_mode & 0o777) == "0o600"
