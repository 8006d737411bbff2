"""One mutating CLI run per stack work directory, within a process and across processes.

Two layers, because each alone falls short: an ``asyncio.Lock`` orders coroutines of one
worker without a syscall per attempt, and a ``flock`` on ``<workdir>/.kombify/lock`` keeps two
worker processes (or a worker and the ``stackkit`` CLI) apart. ``flock`` rather than
``lockf``: it belongs to the open file, so a second open in the same process conflicts too,
and the kernel drops it when the holder dies however it dies, so a crash never leaves a
stale lock behind. The file itself is never deleted (deleting a locked file races).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from kombify.tofu.errors import TofuLockedError

LOCK_FILE = Path(".kombify") / "lock"
_POLL = 0.1

_locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = weakref.WeakValueDictionary()


def _process_lock(key: str) -> asyncio.Lock:
    # Keyed by loop too: an asyncio.Lock belongs to the loop it first waited in.
    loop_key = (id(asyncio.get_running_loop()), key)
    lock = _locks.get(loop_key)
    if lock is None:
        lock = asyncio.Lock()
        _locks[loop_key] = lock
    return lock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return f"{info.get('operation', '?')} by pid {info.get('pid', '?')} on {info.get('host', '?')}"


def _locked_error(workdir: Path, holder: str) -> TofuLockedError:
    return TofuLockedError(
        f"stack work directory {workdir} is busy: {holder} is running; try again when it ends"
    )


async def _acquire_file(path: Path, *, deadline: float, workdir: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _locked_error(workdir, _holder(path)) from None
                await asyncio.sleep(_POLL)
    except BaseException:
        os.close(fd)
        raise


@contextlib.asynccontextmanager
async def stack_lock(workdir: Path, *, operation: str, timeout: float = 0.0) -> AsyncIterator[None]:
    """Hold the stack's lock for the duration of the ``async with`` block.

    Args:
        workdir: The stack's work directory.
        operation: What the holder does (``apply``), recorded for the error others get.
        timeout: Seconds to wait for a busy lock; 0 fails at once.

    Raises:
        TofuLockedError: When the lock is still held after ``timeout``.
    """
    workdir = workdir.resolve()
    deadline = time.monotonic() + timeout
    lock = _process_lock(str(workdir))
    if lock.locked() and timeout <= 0:
        raise _locked_error(workdir, "another run in this process")
    try:
        await asyncio.wait_for(lock.acquire(), timeout=timeout if timeout > 0 else None)
    except TimeoutError:
        raise _locked_error(workdir, "another run in this process") from None
    try:
        fd = await _acquire_file(workdir / LOCK_FILE, deadline=deadline, workdir=workdir)
        try:
            info = {"operation": operation, "pid": os.getpid(), "host": socket.gethostname()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock
    finally:
        lock.release()
