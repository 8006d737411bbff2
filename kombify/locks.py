"""A lock between processes that share ``KOMBIFY_HOME`` (several workers and API processes).

Files made once per installation (the CA, the admin token, a simulation's key pair) are
made by whichever process needs them first; with more than one process, two can find them
missing at the same moment and each make its own. Makers therefore hold this lock, look
again, and make the files only when they are still missing, so every process ends up using
the same ones. Readers need no lock as long as each file is written whole (replaced, not
rewritten in place).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_held = threading.local()  # the directories this thread holds: .paths


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` itself (made 0700 if missing).

    The directory rather than a lock file beside its contents: nothing extra to leave
    behind. Blocks until the lock is free. ``flock`` belongs to the open file, so threads of
    one process exclude each other too, and the kernel drops the lock when its holder dies,
    however it dies. Re-entrant within a thread: code holding a directory may call code that
    locks it too (a second ``flock`` of its own would wait for itself forever).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = str(directory.resolve())
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if key in held:
        yield
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
