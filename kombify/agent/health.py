"""Health checks of service containers: http(s), tcp and cmd, with Docker's retry semantics.

The agent never sends a probe to an address other than 127.0.0.1 (docs/agent.md, "Health
checks", has the long form):

- **http/https**: a published port is probed on loopback; anything else runs ``wget`` (or
  ``curl``) inside the container's own network namespace, where the check URL means what the
  service author wrote. Any certificate is accepted: self-signed is the homelab norm.
- **tcp**: a connect to 127.0.0.1:<port> *inside the container's network namespace* (the
  agent enters it on a thread of its own, as root beside dockerd). A published port is not
  used: Docker's userland proxy accepts every connection while the container runs, listening
  or not. Without the namespace, ``nc`` or ``bash`` in the container do the connect.
- **cmd**: ``/bin/sh -c CMD`` through the engine's exec, like Docker's CMD-SHELL; exit 0 is
  healthy; a probe that outlives the timeout is killed and fails.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import socket
import ssl
import threading
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
_CLONE_NEWNET = 0x40000000
# While failures do not count yet (start period, first interval) the agent probes at least
# this often, so a quick starter passes at once even with `interval: 30s` (Docker's
# start_interval, with a shorter default).
START_INTERVAL_S = 1.0


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


@dataclass(frozen=True)
class Policy:
    """When a service's probes run and when failures make it unhealthy (seconds).

    Attributes:
        interval: Pause between counted probes.
        timeout: Longest one probe may take.
        retries: Consecutive counted failures that make a container unhealthy.
        grace: Time from the start during which failures do not count: the start period,
            but at least one interval (Docker's first probe comes one interval after start).
        cap: An explicit bound on the whole wait (``start_timeout_ms``), or None.
    """

    interval: float
    timeout: float
    retries: int
    grace: float
    cap: float | None

    @property
    def longest(self) -> float:
        """The longest a start-up gate can take before it decides."""
        derived = self.grace + (self.retries - 1) * self.interval + self.retries * self.timeout
        return min(derived, self.cap) if self.cap else derived


def policy(check: pb.HealthCheck) -> Policy:
    """The timing of ``check``, defaults filled in (see :mod:`kombify.agent.manifest`)."""
    interval = (check.interval_ms or mf.DEFAULT_INTERVAL_MS) / 1000
    return Policy(
        interval=interval,
        timeout=(check.timeout_ms or mf.DEFAULT_PROBE_TIMEOUT_MS) / 1000,
        retries=check.retries or mf.DEFAULT_RETRIES,
        grace=max(check.start_period_ms / 1000, interval),
        cap=check.start_timeout_ms / 1000 if check.start_timeout_ms else None,
    )


def check_kind(check: pb.HealthCheck) -> str:
    """``http``, ``tcp``, ``cmd``, or ``""`` when there is no check."""
    if check.http_url:
        return "http"
    if check.tcp_port:
        return "tcp"
    if check.cmd:
        return "cmd"
    return ""


def describe(check: pb.HealthCheck) -> str:
    """The check in a few words, for progress events."""
    kind = check_kind(check)
    if kind == "http":
        return f"GET {check.http_url}"
    if kind == "tcp":
        return f"tcp port {check.tcp_port}"
    if kind == "cmd":
        return f"cmd `{check.cmd}`"
    return "no health check: running counts"


# ---- http(s) -----------------------------------------------------------------------------------


def _loopback_url(spec: pb.ServiceSpec) -> str | None:
    url = urlsplit(spec.healthcheck.http_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    for p in spec.ports:
        published = p.host_port and (p.protocol or "tcp") == "tcp"
        if published and p.container_port == port and p.host_ip in _LOOPBACK_BINDS:
            path = url.path or "/"
            query = f"?{url.query}" if url.query else ""
            return f"{url.scheme}://127.0.0.1:{p.host_port}{path}{query}"
    return None


def _insecure_tls() -> ssl.SSLContext:
    # A health probe asks "does it answer", not "is this the server I trust": homelab services
    # mostly serve self-signed or internal-CA certificates, so none is verified.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """No proxy handler: a proxy from the environment must never see a health probe. urllib
    rather than httpx keeps the agent's bundle small. Made at the first probe, not at import:
    the TLS context loads the system's CA store, a cost every agent start would pay."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_insecure_tls())
    )


def _get(url: str, timeout: float) -> Probe:
    try:
        with _opener().open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:  # 4xx/5xx arrive as exceptions
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:
        return Probe(False, f"GET {url}: {type(exc).__name__}: {exc}")
    return Probe(200 <= status < 400, f"GET {url}: HTTP {status}")


def _missing(code: int | None, out: str) -> bool:
    return code in (126, 127) or "executable file not found" in out


def _http_exec(engine: Engine, item: Managed, url: str, timeout: float) -> Probe:
    secs = str(max(1, round(timeout)))
    insecure = ["--no-check-certificate"] if url.startswith("https:") else []
    code, out = engine.exec_timed(
        item.id, ["wget", "-q", *insecure, "-T", secs, "-O", "/dev/null", url], timeout
    )
    if code is not None and code >= 128:
        # The probe tool died of a signal, which says nothing about the service: Debian's
        # static busybox wget segfaults on -T. Once more without the timeout flag.
        code, out = engine.exec_timed(
            item.id, ["wget", "-q", *insecure, "-O", "/dev/null", url], timeout
        )
    if _missing(code, out):
        curl = ["curl", "-fsS", "-k", "-m", secs, "-o", "/dev/null", url]
        code, out = engine.exec_timed(item.id, curl, timeout)
    if _missing(code, out):
        return Probe(False, f"no wget or curl in `{item.name}` to probe {url}; publish the port")
    if code is None:
        return Probe(False, f"GET {url} in `{item.name}`: no answer within {timeout:g} s")
    detail = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
    return Probe(code == 0, f"GET {url} in `{item.name}`: {'ok' if code == 0 else detail}")


def _http(engine: Engine, spec: pb.ServiceSpec, item: Managed, timeout: float) -> Probe:
    loopback = _loopback_url(spec) if mf.replicas(spec) == 1 else None
    if loopback:
        return _get(loopback, timeout)
    return _http_exec(engine, item, spec.healthcheck.http_url, timeout)


# ---- tcp ---------------------------------------------------------------------------------------


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)  # Debian 12's python3 is 3.11
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _connect_in_netns(pid: int, port: int, timeout: float) -> OSError | None | bool:
    """Connects to 127.0.0.1:``port`` in the network namespace of process ``pid``.

    Returns:
        None when connected, the connect error, or False when the namespace could not be
        entered (not root, or not in dockerd's PID namespace).
    """
    outcome: list[OSError | None | bool] = []

    def run() -> None:
        # A thread of its own: setns changes only the calling thread, which then ends, so no
        # other work ever runs in the container's namespace.
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
        except OSError:
            outcome.append(False)
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True, name=f"tcp-probe-{pid}")
    thread.start()
    thread.join(timeout + 1)
    return outcome[0] if outcome else TimeoutError("connect did not return")


def _tcp_exec(engine: Engine, item: Managed, port: int, timeout: float) -> Probe:
    where = f"tcp 127.0.0.1:{port} in `{item.name}`"
    secs = str(max(1, round(timeout)))
    attempts = (
        # busybox nc has no -z: with stdin at its end it connects, then leaves, exit 0.
        ["/bin/sh", "-c", f"nc -w {secs} 127.0.0.1 {port} </dev/null"],
        ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
    )
    for argv in attempts:
        code, out = engine.exec_timed(item.id, argv, timeout)
        if _missing(code, out):
            continue
        if code is None:
            return Probe(False, f"{where}: no answer within {timeout:g} s")
        return Probe(code == 0, f"{where}: {'accepted' if code == 0 else 'refused'}")
    return Probe(
        False,
        f"cannot probe {where}: the agent cannot enter the container's network namespace "
        "(it needs root beside dockerd) and the image has no nc or bash",
    )


def _tcp(engine: Engine, item: Managed, port: int, timeout: float) -> Probe:
    pid = engine.pid(item.id)
    result = _connect_in_netns(pid, port, timeout) if pid else False
    if result is False:
        return _tcp_exec(engine, item, port, timeout)
    where = f"tcp 127.0.0.1:{port} in `{item.name}`"
    if result is None:
        return Probe(True, f"{where}: accepted")
    assert isinstance(result, OSError)
    reason = "no answer" if isinstance(result, TimeoutError) else (result.strerror or result)
    return Probe(False, f"{where}: {reason}")


# ---- cmd ---------------------------------------------------------------------------------------


def _cmd(engine: Engine, item: Managed, cmd: str, timeout: float) -> Probe:
    where = f"`{cmd}` in `{item.name}`"
    code, out = engine.exec_timed(item.id, ["/bin/sh", "-c", cmd], timeout)
    if code is None:
        return Probe(False, f"{where}: still running after the {timeout:g} s timeout")
    if code == 0:
        return Probe(True, f"{where}: exit 0")
    last = out.strip().splitlines()[-1][-200:] if out.strip() else ""
    return Probe(False, f"{where}: exit {code}" + (f" ({last})" if last else ""))


# ---- probing -----------------------------------------------------------------------------------


def probe_once(engine: Engine, spec: pb.ServiceSpec, item: Managed) -> Probe:
    """Checks one container once (blocking), whatever kind of check it has.

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
    kind = check_kind(hc)
    if not kind:
        return Probe(True, "running (no health check)")
    timeout = policy(hc).timeout
    try:
        if kind == "http":
            return _http(engine, spec, item, timeout)
        if kind == "tcp":
            return _tcp(engine, item, hc.tcp_port, timeout)
        return _cmd(engine, item, hc.cmd, timeout)
    except DockerError as exc:
        return Probe(False, str(exc))


async def wait_healthy(engine: Engine, spec: pb.ServiceSpec, items: Sequence[Managed]) -> Probe:
    """Probes ``items`` until all pass, or until the check's retries are used up.

    Docker's HEALTHCHECK semantics: ``retries`` consecutive failed probes make the service
    unhealthy; failures within the grace time (start period, and at least one interval) do
    not count, and probes then run every :data:`START_INTERVAL_S` at most. A container that
    exits or restarts fails at once: waiting cannot make it healthy.
    """
    rules = policy(spec.healthcheck)
    started = time.monotonic()
    counted = 0
    while True:
        results = [await asyncio.to_thread(probe_once, engine, spec, item) for item in items]
        failed = [r for r in results if not r.ok]
        if not failed:
            return results[0] if results else Probe(True, "no containers")
        if any(r.final for r in failed):
            return next(r for r in failed if r.final)
        elapsed = time.monotonic() - started
        in_grace = elapsed < rules.grace
        if not in_grace:
            counted += 1
            if counted >= rules.retries:
                return Probe(
                    False, f"unhealthy after {counted} failed probe(s): {failed[0].detail}"
                )
        pause = min(rules.interval, START_INTERVAL_S) if in_grace else rules.interval
        if in_grace:  # the first counted probe comes right when the grace time ends
            pause = min(pause, max(0.0, rules.grace - elapsed))
        if rules.cap is not None and elapsed + pause > rules.cap:
            return Probe(False, f"not healthy in time: {failed[0].detail}")
        await asyncio.sleep(pause)


def health_word(spec: pb.ServiceSpec, probe: Probe) -> str:
    """How ListServices reports a probe: healthy, unhealthy, or none (no check, running)."""
    if not probe.ok:
        return "unhealthy"
    return "healthy" if check_kind(spec.healthcheck) else "none"
