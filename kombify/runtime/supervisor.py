"""``kombify server``: Temporal dev server, worker and API as children of one process.

Children run in their own sessions so a Ctrl-C reaches only the supervisor, which then stops
them in order (API and worker first, so in-flight activities finish; Temporal last). Each child
also asks Linux to end it if the supervisor dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from kombify.errors import ServiceUnavailableError
from kombify.runtime.temporal_dev import (
    TemporalDevConfig,
    build_command,
    die_with_parent,
    load_config,
    port_open,
    wait_until_serving,
)
from kombify.settings import PRIVATE_UMASK, Settings

# Grace periods: the worker lets in-flight activities finish within its own 10 s.
_STOP_GRACE = {"api": 10.0, "worker": 15.0, "temporal": 10.0}


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Logs can name hosts and paths of the homelab: the owner's eyes only.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
                umask=PRIVATE_UMASK,  # what Temporal, the worker and the API write is private
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """Signal the child, wait out its grace period, then kill it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(_STOP_GRACE.get(self.name, 10.0))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Endpoints:
    """Where the parts of a running kombify listen."""

    api: str
    docs: str
    temporal: str
    temporal_ui: str | None
    database: str
    logs: Path


@dataclass
class Supervisor:
    """Starts the parts in order, watches them, and stops them all on request."""

    settings: Settings
    say: Callable[[str], None]
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def _python_child(self, name: str) -> Child:
        argv = [sys.executable, "-m", "kombify", name]
        return Child(name, argv, self.settings.run_dir / f"{name}.log")

    def _start_temporal(self) -> TemporalDevConfig | None:
        if self.settings.temporal_address:
            return None
        config = load_config(self.settings)
        if port_open(config.ip, config.port):
            raise ServiceUnavailableError(
                f"port {config.address} is already in use: is kombify already running? "
                "(`kombify status`), or set KOMBIFY_TEMPORAL_PORT"
            )
        if config.db_filename:
            config.db_filename.parent.mkdir(parents=True, exist_ok=True)
        child = Child("temporal", build_command(config), self.settings.run_dir / "temporal.log")
        self.children.append(child)
        child.start()
        self.say(f"starting Temporal dev server on {config.address}")
        asyncio.run(wait_until_serving(config.address, self.settings.temporal_namespace))
        return config

    def _wait_ready(self, url: str, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_children()
            try:
                response = httpx.get(f"{url}/readyz", timeout=5.0)
                if response.status_code == 200:
                    return
                last = response.json().get("detail", response.text)
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.3)
        raise ServiceUnavailableError(
            f"the API at {url} was not ready within {timeout:.0f}s: {last}"
        )

    def _check_children(self) -> None:
        for child in self.children:
            if not child.running():
                code = child.proc.returncode if child.proc else None
                raise ServiceUnavailableError(
                    f"{child.name} exited (code {code}); its log: {child.log_path}"
                )

    def start(self, parts: tuple[str, ...] = ("temporal", "worker", "api")) -> Endpoints:
        """Start Temporal (unless external), the worker and the API; wait until ready."""
        config = self._start_temporal() if "temporal" in parts else None
        for name in ("worker", "api"):
            if name in parts:
                child = self._python_child(name)
                self.children.append(child)
                child.start()
        api = self.settings.resolved_api_url
        if "api" in parts:
            self._wait_ready(api)
        from sqlalchemy.engine import make_url

        return Endpoints(
            api=api,
            docs=f"{api}/docs",
            temporal=config.address if config else str(self.settings.temporal_address),
            temporal_ui=config.ui_url if config else None,
            database=make_url(self.settings.resolved_database_url).render_as_string(
                hide_password=True
            ),
            logs=self.settings.run_dir,
        )

    def stop(self) -> None:
        """Stop every child, newest first (API, worker, then Temporal)."""
        if self._stopping:
            return
        self._stopping = True
        for child in reversed(self.children):
            if child.running():
                self.say(f"stopping {child.name}")
            # The dev server shuts down cleanly on SIGINT (flushes its SQLite store).
            child.stop(signal.SIGINT if child.name == "temporal" else signal.SIGTERM)

    def run_forever(self) -> int:
        """Block until SIGINT/SIGTERM or a child dies; returns the exit code to use."""
        stop_requested = False

        def _request_stop(_sig: int, _frame: FrameType | None) -> None:
            nonlocal stop_requested
            stop_requested = True

        signal.signal(signal.SIGINT, _request_stop)
        signal.signal(signal.SIGTERM, _request_stop)
        try:
            while not stop_requested:
                for child in self.children:
                    if not child.running():
                        self.say(f"{child.name} exited unexpectedly; see {child.log_path}")
                        return 1
                time.sleep(0.2)
            return 0
        finally:
            self.stop()
