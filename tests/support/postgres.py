"""A throwaway PostgreSQL server: initdb in a temp dir, a free loopback port, stopped after."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port


def _bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's `{name}` is missing: apt-get install postgresql")
    return found


def _as_user() -> tuple[list[str], str]:
    """PostgreSQL refuses to run as root; run it as the `postgres` system user then."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid()).pw_name
    return ["runuser", "-u", "postgres", "--"], "postgres"


@contextmanager
def running_postgres(base: Path) -> Iterator[str]:
    """Start PostgreSQL under ``base``; yields a URL of the ``postgres`` database."""
    prefix, user = _as_user()
    data = base / "data"
    base.mkdir(parents=True, exist_ok=True)
    if prefix:
        shutil.chown(base, user=user)
    subprocess.run(
        [
            *prefix,
            _bin("initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    opts = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [
            *prefix,
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(base / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, _bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
