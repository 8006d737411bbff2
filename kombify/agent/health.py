"""HTTP health checks of service containers, from loopback or from inside the container.

The agent never sends a probe to an address other than 127.0.0.1: a published port is probed
on loopback; anything else runs ``wget`` (or ``curl``) inside the container's own network
namespace, where the check URL means what the service author wrote.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kombify.agent import manifest as mf
from kombify.agent.engine import Engine, Managed
from kombify.agent.proto import pb
from kombify.errors import DockerError

_LOOPBACK_BINDS = ("", "0.0.0.0", "127.0.0.1")
_CRASHED = ("exited", "dead", "restarting")


@dataclass(frozen=True)
class Probe:
    """Result of a health check.

    Attributes:
        ok: Whether every container answered.
        detail: What was seen (status code, error, container state).
        final: Failed in a way waiting cannot mend (the container exited).
    """

    ok: bool
    detail: str
    final: bool = False


def _loopback_url(spec: pb.ServiceSpec) -> str | None:
    url = urlsplit(spec.healthcheck.http_url)
    port = url.port or 80
    for p in spec.ports:
        published = p.host_port and (p.protocol or "tcp") == "tcp"
        if published and p.container_port == port and p.host_ip in _LOOPBACK_BINDS:
            path = url.path or "/"
            query = f"?{url.query}" if url.query else ""
            return f"http://127.0.0.1:{p.host_port}{path}{query}"
    return None


# No proxy handler: a proxy from the environment must never see a health probe. urllib rather
# than httpx keeps the agent's bundle small.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, timeout: float) -> Probe:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:  # 4xx/5xx arrive as exceptions
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:
        return Probe(False, f"GET {url}: {type(exc).__name__}: {exc}")
    return Probe(200 <= status < 400, f"GET {url}: HTTP {status}")


def _exec(engine: Engine, item: Managed, url: str, timeout: float) -> Probe:
    secs = str(max(1, round(timeout)))
    code, out = engine.exec(item.id, ["wget", "-q", "-T", secs, "-O", "/dev/null", url])
    if code >= 128:
        # The probe tool died of a signal, which says nothing about the service: Debian's
        # static busybox wget segfaults on -T. Once more without the timeout flag.
        code, out = engine.exec(item.id, ["wget", "-q", "-O", "/dev/null", url])
    if code in (126, 127) or "executable file not found" in out:
        code, out = engine.exec(item.id, ["curl", "-fsS", "-m", secs, "-o", "/dev/null", url])
    if code in (126, 127) or "executable file not found" in out:
        return Probe(False, f"no wget or curl in `{item.name}` to probe {url}; publish the port")
    detail = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
    return Probe(code == 0, f"GET {url} in `{item.name}`: {'ok' if code == 0 else detail}")


def probe_once(engine: Engine, spec: pb.ServiceSpec, item: Managed) -> Probe:
    """Checks one container once (blocking).

    Args:
        engine: The engine the container runs on.
        spec: The service, for its health check and published ports.
        item: The container.
    """
    try:
        state = engine.get(item.id).state
    except DockerError as exc:
        return Probe(False, str(exc))
    if state != "running":
        return Probe(False, f"container `{item.name}` is {state}", final=state in _CRASHED)
    hc = spec.healthcheck
    if not hc.http_url:
        return Probe(True, "running (no health check)")
    timeout = (hc.timeout_ms or mf.DEFAULT_PROBE_TIMEOUT_MS) / 1000
    loopback = _loopback_url(spec) if mf.replicas(spec) == 1 else None
    if loopback:
        return _get(loopback, timeout)
    try:
        return _exec(engine, item, hc.http_url, timeout)
    except DockerError as exc:
        return Probe(False, str(exc))


async def wait_healthy(engine: Engine, spec: pb.ServiceSpec, items: Sequence[Managed]) -> Probe:
    """Probes ``items`` until all pass or the service's start timeout runs out.

    A container that exits or restarts fails at once: waiting cannot make it healthy.
    """
    hc = spec.healthcheck
    deadline = time.monotonic() + (hc.start_timeout_ms or mf.DEFAULT_START_TIMEOUT_MS) / 1000
    interval = (hc.interval_ms or mf.DEFAULT_INTERVAL_MS) / 1000
    while True:
        results = [await asyncio.to_thread(probe_once, engine, spec, item) for item in items]
        failed = [r for r in results if not r.ok]
        if not failed:
            return results[0] if results else Probe(True, "no containers")
        if any(r.final for r in failed):
            return next(r for r in failed if r.final)
        if time.monotonic() + interval > deadline:
            return Probe(False, f"not healthy in time: {failed[0].detail}")
        await asyncio.sleep(interval)


def health_word(spec: pb.ServiceSpec, probe: Probe) -> str:
    """How ListServices reports a probe: healthy, unhealthy, or none (no check, running)."""
    if not probe.ok:
        return "unhealthy"
    return "healthy" if spec.healthcheck.http_url else "none"
