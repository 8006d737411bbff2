"""Finding processes by an environment marker, to prove nothing was left running."""

from __future__ import annotations

import os
from pathlib import Path


def pids_with_env(key: str, value: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose environment has ``key=value``."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found
