"""A kombify API as its own process (`kombify api`) on a loopback port, for multi-instance tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port


@dataclass(frozen=True)
class ApiProcess:
    """A running API: its URL, home and database."""

    url: str
    home: Path
    database_url: str
    admin_token: str


@contextmanager
def running_api(
    home: Path, *, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[ApiProcess]:
    """``kombify api`` with its own KOMBIFY_HOME and SQLite database; stopped on exit."""
    port = port or free_port()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    database_url = f"sqlite:///{home / 'kombify.db'}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOMBIFY_")}
    full_env = {
        **clean,
        "KOMBIFY_HOME": str(home),
        "KOMBIFY_DATABASE_URL": database_url,
        "KOMBIFY_API_HOST": "127.0.0.1",
        "KOMBIFY_API_PORT": str(port),
        # Nobody listens there: these tests never reach Temporal.
        "KOMBIFY_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        **(env or {}),
    }
    log = (home / "api.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kombify", "api"], env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, home / "api.log")
        token = (home / "admin-token").read_text().strip()
        yield ApiProcess(url=url, home=home, database_url=database_url, admin_token=token)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not answer within 60 s: {log.read_text()[-2000:]}")
