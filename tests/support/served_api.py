"""A kombify API on a real loopback port, and the ``kombify`` CLI run against it as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tests.support.ports import free_port

# The CLI's settings a test must not inherit from the shell that runs it.
_CLI_VARIABLES = ("KOMBIFY_API_KEY", "KOMBIFY_ORG", "KOMBIFY_ADMIN_TOKEN", "KOMBIFY_DATABASE_URL")


@contextmanager
def served(app: FastAPI, *, port: int | None = None) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; its base URL.

    ``port`` when the app must know its address beforehand (``public_url``); else a free one.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def run_cli(
    home: Path, url: str, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``kombify ARGS`` as a user runs it: own process, ``home`` as KOMBIFY_HOME, ``url`` as API."""
    base = {k: v for k, v in os.environ.items() if k not in _CLI_VARIABLES}
    variables = {
        **base,
        "KOMBIFY_HOME": str(home),
        "KOMBIFY_API_URL": url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "TERM": "dumb",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "kombify", *args],
        env=variables,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
