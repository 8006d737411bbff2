"""Node agent activities: install or upgrade it over SSH, then roll services out through it.

The agent listens on the node's 127.0.0.1 only; kombify reaches it through an SSH tunnel and
talks gRPC with mutual TLS inside it. Installing needs nothing from the internet: the agent
bundle, its certificates and any image the node cannot pull are shipped from this host.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import shlex
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.deploy import AGENT_PORT, DeployActivities
from kombify.activities.ssh import NodeSession, node_session
from kombify.agent.bundle import AgentBundle, build_bundle, python_path
from kombify.contracts.deploy import (
    NodeRollout,
    RenewInput,
    RenewNodeInput,
    RolloutInput,
    ServiceReport,
)
from kombify.errors import (
    AgentError,
    CertificateRevokedError,
    HostKeyChangedError,
    KombifyError,
    SshError,
)
from kombify.locks import directory_lock
from kombify.names import contained
from kombify.pki.authority import CertificateAuthority, load_or_create_ca
from kombify.pki.certs import IssuedCert, cert_identity, load_cert, needs_renewal
from kombify.pki.revocation import RevocationList
from kombify.settings import Settings
from kombify.unifier.swarm import swarm_images

# Unpacked bundles, one immutable directory per version, and `current` linking to the one in
# use. Under /var/lib like k3s's unpacked data: written by kombify, not by a package manager.
REMOTE_ROOT = "/var/lib/kombify/bundles"
REMOTE_ETC = "/etc/kombify/agent"
REMOTE_STATE = "/var/lib/kombify/agent"
REMOTE_PID = "/run/kombify-agent.pid"
REMOTE_LOG = "/var/log/kombify-agent.log"
# How the agent starts, written at every install; the systemd unit, a KombiSim node's init
# and the fallback below all run this one script.
REMOTE_RUN = f"{REMOTE_ETC}/run"
UNIT_NAME = "kombify-agent.service"
REMOTE_UNIT = f"/etc/systemd/system/{UNIT_NAME}"
# Written by a KombiSim node's init (kombify.sim.bootfiles): the agent's supervisor there.
REMOTE_SUPERVISOR_PID = "/run/kombify/agent-supervisor.pid"
CONTROL_CERT = "control"
_HEALTH_WAIT = 45.0
# A refused attempt costs the node next to nothing (the port is closed until the agent is up).
_HEALTH_POLL = 0.05
_END_CERT = b"-----END CERTIFICATE-----\n"
# The pid file may be a stale one of an earlier boot whose number another process has now.
_AGENT_ALIVE = (
    f"test -f {REMOTE_PID} && grep -qa kombify.agent /proc/$(cat {REMOTE_PID})/cmdline 2>/dev/null"
)
# systemd is pid 1 (its runtime directory exists) and its CLI is there.
_HAS_SYSTEMD = "test -d /run/systemd/system && command -v systemctl >/dev/null 2>&1"
_SUPERVISED = (
    f'sup=$(cat {REMOTE_SUPERVISOR_PID} 2>/dev/null) && [ -n "$sup" ] && kill -0 "$sup" 2>/dev/null'
)
# Stops an agent that runs outside systemd and waits (5 s at most) until it is gone.
_STOP_AGENT = (
    f"if {_AGENT_ALIVE}; then pid=$(cat {REMOTE_PID}); kill $pid 2>/dev/null; "
    "for i in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; fi"
)
_LIST_MANAGED = "docker ps -aq --no-trunc --filter label=io.kombify.managed=true"
_REMOVE_MANAGED = f'ids=$({_LIST_MANAGED}); [ -z "$ids" ] || docker rm -f -v $ids >/dev/null'
# The start script goes first, so that no supervisor starts the agent again.
_UNINSTALL_AGENT = (
    f"rm -f {REMOTE_RUN}; "
    f"if {_HAS_SYSTEMD} && test -f {REMOTE_UNIT}; then "
    f"systemctl disable --now --quiet {UNIT_NAME}; rm -f {REMOTE_UNIT}; systemctl daemon-reload; "
    f"fi; {_STOP_AGENT}; "
    # The WireGuard mesh goes with it (a userspace wireguard-go ends with its interface).
    "ip link del wg-kombify 2>/dev/null; "
    # So does the Headscale config kombify generated (kombify/unifier/headscale.py).
    "rm -rf /etc/kombify/headscale; "
    f"rm -rf {REMOTE_ROOT} {REMOTE_STATE} {REMOTE_ETC} {REMOTE_PID}"
)
_READ_CERTS = f"cat {REMOTE_ETC}/ca.crt {REMOTE_ETC}/agent.crt 2>/dev/null"
_READ_AGENT_CERT = f"cat {REMOTE_ETC}/agent.crt 2>/dev/null"
_PROBE_SEPARATOR = "\n--kombify--\n"


def event_level(kind: int) -> str:
    """The log level of an agent's apply event: a failure is an error, a rollback or an
    unhealthy probe a warning, the rest information."""
    from kombify.agent.proto import pb

    if kind == pb.ApplyEvent.FAILED:
        return "error"
    if kind in (pb.ApplyEvent.ROLLED_BACK, pb.ApplyEvent.UNHEALTHY):
        return "warning"
    return "info"


def _agent_argv() -> list[str]:
    return [
        "python3",
        # No site: the bundle and the standard library are all the agent imports, so
        # Python packages installed on the node can neither shadow nor break it.
        "-S",
        "-m",
        "kombify.agent",
        "--listen",
        f"127.0.0.1:{AGENT_PORT}",
        "--cert",
        f"{REMOTE_ETC}/agent.crt",
        "--key",
        f"{REMOTE_ETC}/agent.key",
        "--ca",
        f"{REMOTE_ETC}/ca.crt",
        "--state-dir",
        REMOTE_STATE,
    ]


def run_script() -> str:
    """The node's ``/etc/kombify/agent/run``: starts the agent in the foreground.

    Its pid is the agent's (``exec``), written where kombify looks for it whichever
    supervisor started it; its output goes to one log file in every case.
    """
    command = " ".join(shlex.quote(a) for a in _agent_argv())
    return (
        "#!/bin/sh\n"
        "# Written by kombify at every agent install: how the node agent starts. Run by the\n"
        f"# systemd unit {UNIT_NAME}, by a KombiSim node's init, or else by kombify itself.\n"
        f"mkdir -p {REMOTE_STATE}\n"
        "cd /\n"
        f"exec >>{REMOTE_LOG} 2>&1 </dev/null\n"
        f"echo $$ >{REMOTE_PID}\n"
        f"PYTHONPATH={python_path(REMOTE_ROOT + '/current')} exec {command}\n"
    )


def systemd_unit() -> str:
    """The unit that starts the agent at boot and again after any exit, however it ended."""
    return (
        "[Unit]\n"
        "Description=kombify node agent\n"
        "After=network.target docker.service\n"
        # Never give up restarting: the agent is how kombify reaches the node at all.
        "StartLimitIntervalSec=0\n"
        "\n"
        "[Service]\n"
        f"ExecStart={REMOTE_RUN}\n"
        "Restart=always\n"
        "RestartSec=1\n"
        "TimeoutStopSec=15\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


_RUN_SHA = hashlib.sha256(run_script().encode()).hexdigest()
# Restarts (or first starts) the agent under the best supervisor the node has; prints which.
_START_AGENT = f"""
if {_HAS_SYSTEMD}; then
    # An agent started before kombify used the unit is stopped first (it holds the port).
    systemctl is-active --quiet {UNIT_NAME} || {{ {_STOP_AGENT}; }}
    install -m 644 {REMOTE_ETC}/{UNIT_NAME} {REMOTE_UNIT} \\
        && systemctl daemon-reload \\
        && systemctl enable --quiet {UNIT_NAME} \\
        && systemctl restart {UNIT_NAME} \\
        && echo systemd
elif {_SUPERVISED}; then
    {_STOP_AGENT}
    kill -HUP "$sup"
    echo "the node's init"
else
    {_STOP_AGENT}
    cd / && setsid nohup {REMOTE_RUN} >/dev/null 2>&1 </dev/null &
    echo "nothing (no systemd, no supervising init: it is not restarted after a crash)"
fi
"""
_PROBE_INSTALL = (
    f"cat {REMOTE_ROOT}/current/VERSION 2>/dev/null; echo; echo --kombify--; "
    f"{_AGENT_ALIVE} && echo running; "
    f'[ "$(sha256sum < {REMOTE_RUN} 2>/dev/null)" = "{_RUN_SHA}  -" ] && echo supervised; '
    f"echo; echo --kombify--; {_READ_CERTS} || true"
)
# The ApplicationError type of a rollout that lost its node (connection, tunnel or agent
# gone): the deploy waits for the node and retries, where other failures end the run.
NODE_UNREACHABLE = "node-unreachable"
_GONE = re.compile(
    r"\((UNAVAILABLE|DEADLINE_EXCEEDED|CANCELLED)\)|TLS handshake failed|ended without a result"
)
# Certificates are replaced on the first deploy within this window of their expiry.
RENEW_WITHIN = timedelta(days=30)


def _rollout_error_type(exc: KombifyError) -> str:
    """``NODE_UNREACHABLE`` when the node (or its agent) went away, else the error's code."""
    if isinstance(exc, HostKeyChangedError):
        return exc.code  # reachable, but not the node it was: the user has to look
    if isinstance(exc, SshError) or (isinstance(exc, AgentError) and _GONE.search(exc.message)):
        return NODE_UNREACHABLE
    return exc.code


def node_identity(organisation: str, stack: str, node: str) -> str:
    """The name in a node agent's certificate; the control plane dials exactly this."""
    return f"{node}.{stack}.{organisation}.nodes.kombify"


_BUNDLE_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _cached_bundle(cache_dir: Path) -> AgentBundle:
    return build_bundle(cache_dir)


def _bundle(cache_dir: Path) -> AgentBundle:
    # Finding and hashing the packages takes a second or two: once per worker process, and
    # never twice at once (prebuild_bundle may already be at it).
    with _BUNDLE_LOCK:
        return _cached_bundle(cache_dir)


def prebuild_bundle(settings: Settings) -> None:
    """Build the agent bundle in the background, so the first deploy does not wait for it."""
    threading.Thread(
        target=_bundle,
        args=(settings.home / "cache" / "agent",),
        daemon=True,
        name="agent-bundle",
    ).start()


def _parse_duration_ms(text: str | None, default: int) -> int:
    from kombify.specs.quantities import parse_duration

    seconds = parse_duration(text) if text else None
    return int(seconds * 1000) if seconds else default


def to_proto_manifest(manifest: dict[str, Any], revision: str) -> Any:
    """The unifier's per-node manifest as the agent's ``Manifest`` message."""
    from kombify.agent.proto import pb

    services = []
    for s in manifest.get("services", []):
        check = s.get("healthcheck") or {}
        services.append(
            pb.ServiceSpec(
                name=s["name"],
                image=s["image"] or "",
                env={k: str(v) for k, v in (s.get("env") or {}).items()},
                ports=[
                    pb.PortMapping(
                        container_port=p["container"],
                        host_port=p.get("host") or 0,
                        protocol=p.get("protocol") or "tcp",
                    )
                    for p in s.get("ports", [])
                ],
                volumes=[_volume(v) for v in s.get("volumes", [])],
                replicas=int(s.get("replicas") or 1),
                command=list(s.get("command") or []),
                healthcheck=_health_check(check),
                networks=list(s.get("networks") or []),
            )
        )
    return pb.Manifest(revision=revision, services=services)


def _health_check(check: dict[str, Any]) -> Any:
    """A service's ``healthcheck`` as the agent's message: every field the schema accepts.

    Zero means "the agent's default" (interval 1 s, timeout 2 s, 3 retries, no start period).
    """
    from kombify.agent.proto import pb

    return pb.HealthCheck(
        http_url=check.get("http") or "",
        tcp_port=int(check.get("tcp") or 0),
        cmd=check.get("cmd") or "",
        interval_ms=_parse_duration_ms(check.get("interval"), 1000),
        timeout_ms=_parse_duration_ms(check.get("timeout"), 0),
        retries=int(check.get("retries") or 0),
        start_period_ms=_parse_duration_ms(check.get("start_period"), 0),
    )


def _volume(text: str) -> Any:
    from kombify.agent.proto import pb

    parts = text.split(":")
    read_only = len(parts) > 2 and parts[2] == "ro"
    return pb.VolumeMount(
        source=parts[0], target=parts[1] if len(parts) > 1 else parts[0], read_only=read_only
    )


def _saved_image(client: Any, name: str) -> list[bytes]:
    # Saved by the requested name, so the node gets exactly that tag.
    return list(client.api.get_image(name))


_OUTCOME_WORDS = {
    1: "unchanged",
    2: "created",
    3: "updated",
    4: "removed",
    5: "rolled-back",
    6: "failed",
    7: "started",
}


def service_reports(result: Any) -> list[ServiceReport]:
    """What an agent's apply result (a node's or the swarm's) says of each service."""
    return [
        ServiceReport(
            name=o.service,
            state=_OUTCOME_WORDS.get(o.outcome, "unknown"),
            healthy=o.outcome not in (5, 6),  # OUTCOME_ROLLED_BACK, OUTCOME_FAILED
            reason=o.reason,
            containers=list(o.container_ids),
        )
        for o in result.services
    ]


class AgentActivities:
    """Activities that act on nodes through SSH and the node agent."""

    def __init__(self, settings: Settings, deploy: DeployActivities) -> None:
        self.settings = settings
        self.deploy = deploy
        self.pki_dir = settings.home / "pki"
        self.revocations = RevocationList(self.pki_dir)

    # ---- certificates ----------------------------------------------------------------------

    def _ca(self) -> CertificateAuthority:
        return load_or_create_ca(self.pki_dir)

    async def _node_cert(self, session: NodeSession) -> x509.Certificate | None:
        """The agent certificate on the node if our CA issued it (expired or not), else None."""
        read = await session.run(_READ_AGENT_CERT, check=False, sudo=True)
        if read.exit_status != 0 or not read.stdout.strip():
            return None
        try:
            cert = load_cert(read.stdout.encode())
            cert.verify_directly_issued_by(self._ca().cert)
        except (ValueError, TypeError, InvalidSignature):
            return None  # not one of ours: there is nothing of ours to revoke
        return cert

    def _revoke_node_cert(
        self, request: RolloutInput, cert: x509.Certificate, identity: str
    ) -> str:
        """Put the node agent's certificate on the revocation list; a line for the run's log."""
        organisation, stack = Path(request.workdir).parts[-3:-1]
        entry, added = self.revocations.revoke(
            cert,
            identity=identity,
            reason=f"destroy of stack `{organisation}/{stack}`, deployment {request.deployment_id}",
        )
        if added:
            return f"agent certificate {entry.serial:x} revoked"
        return f"agent certificate {entry.serial:x} was revoked already ({entry.reason})"

    def control_cert(self, within: timedelta = RENEW_WITHIN) -> IssuedCert:
        """The control plane's client certificate, issued once and renewed before it expires."""
        crt, key = self.pki_dir / f"{CONTROL_CERT}.crt", self.pki_dir / f"{CONTROL_CERT}.key"
        ca = self._ca()  # before the lock: it takes the same one when it makes the CA
        # Workers sharing a home take turns: one issues, the others read its pair (never a
        # certificate of one issue with the key of another).
        with directory_lock(self.pki_dir):
            if crt.exists() and key.exists() and not needs_renewal(load_cert(crt), within=within):
                return IssuedCert(
                    cert_pem=crt.read_bytes(), key_pem=key.read_bytes(), ca_pem=ca.cert_pem
                )
            issued = ca.issue_client()
            issued.write(self.pki_dir, CONTROL_CERT)
            return issued

    async def _ensure_node_cert(
        self,
        session: NodeSession,
        identity: str,
        within: timedelta = RENEW_WITHIN,
        current: str | None = None,
    ) -> bool:
        """Issue the node's server certificate unless a valid one of our CA is there.

        ``current`` is the node's ``ca.crt`` followed by its ``agent.crt`` when the caller
        read them already ("" when they are missing); else they are read here.
        """
        ca = self._ca()
        if current is None:
            read = await session.run(_READ_CERTS, check=False, sudo=True)
            current = read.stdout if read.exit_status == 0 else ""
        node_ca, _, node_cert = current.encode().partition(_END_CERT)
        if node_cert and node_ca + _END_CERT == ca.cert_pem:
            try:
                cert = load_cert(node_cert)
                fresh = not needs_renewal(cert, within=within)
                # A revoked one (a copy put back after destroy) is never used again.
                usable = fresh and not self.revocations.is_revoked(cert.serial_number)
                if usable and cert_identity(cert).matches(identity):
                    return False
            except ValueError:
                pass
        issued = ca.issue_server(
            identity, dns_names=[session.node.name], ip_addresses=["127.0.0.1"]
        )
        await session.run(f"mkdir -p {REMOTE_ETC} && chmod 700 {REMOTE_ETC}", sudo=True)
        await session.write_files(
            [
                (f"{REMOTE_ETC}/agent.key", issued.key_pem, 0o600),
                (f"{REMOTE_ETC}/agent.crt", issued.cert_pem, 0o644),
                (f"{REMOTE_ETC}/ca.crt", issued.ca_pem, 0o644),
            ]
        )
        return True

    # ---- install ---------------------------------------------------------------------------

    async def _ensure_bundle(self, session: NodeSession, bundle: AgentBundle, have: str) -> bool:
        """Ship and unpack ``bundle`` unless ``have`` (the node's current version) is it."""
        if have == bundle.version:
            return False
        target = f"{REMOTE_ROOT}/{bundle.version}"
        # Copied whole, then unpacked: piping the SSH channel straight into `gunzip | tar` was
        # three times slower (measured 0.56 s against 0.08 + 0.09 s for 3 MB). Versions other
        # than the new one and the one it replaces are removed.
        staged = await session.upload(bundle.path)
        script = f"""
            set -e
            trap 'rm -f "{staged}"' EXIT
            rm -rf {target} && mkdir -p {target}
            gunzip -c < "{staged}" | tar -x -C {target}
            echo {bundle.version} > {target}/VERSION
            cd {REMOTE_ROOT}
            prev=$(readlink current || true)
            ln -sfn {target} current
            for dir in */; do
                dir=${{dir%/}}
                case "{REMOTE_ROOT}/$dir" in "$prev"|{target}|*/current) ;; *) rm -rf "$dir" ;; esac
            done
        """
        await session.run(script, sudo=True)
        return True

    async def _agent_running(self, session: NodeSession) -> bool:
        result = await session.run(_AGENT_ALIVE, check=False, sudo=True)
        return result.exit_status == 0

    async def _start_agent(self, session: NodeSession) -> str:
        """(Re)start the agent under the node's supervisor; which supervisor that is.

        The start script and the unit go in the same command as the start (one round trip:
        on a busy node each costs a tenth of a second)."""
        files = session.inline_files(
            [
                (REMOTE_RUN, run_script().encode(), 0o755),
                (f"{REMOTE_ETC}/{UNIT_NAME}", systemd_unit().encode(), 0o644),
            ]
        )
        result = await session.run(files + _START_AGENT, sudo=True)
        return result.stdout.strip()

    @asynccontextmanager
    async def agent(
        self, session: NodeSession, identity: str, cert: IssuedCert | None = None
    ) -> AsyncIterator[Any]:
        """An mTLS client for the node's agent, through an SSH tunnel of this session.

        ``cert`` is the control plane's client certificate when the caller holds it already.
        """
        from kombify.agent.client import AgentClient

        cert = cert or self.control_cert()
        async with session.tunnel(AGENT_PORT) as port:
            client = AgentClient.with_cert(
                f"127.0.0.1:{port}", identity, cert, revocations=self.revocations
            )
            async with client:
                yield client

    async def _wait_healthy(self, session: NodeSession, identity: str) -> Any:
        deadline = time.monotonic() + _HEALTH_WAIT
        last: Exception | None = None
        cert = self.control_cert()  # read from disk once, not on every attempt
        while time.monotonic() < deadline:
            activity.heartbeat("waiting for the agent")
            # Until its port listens, an SSH channel request is all an attempt costs (a TLS
            # client, a tunnel and a gRPC channel each time cost the busy host far more).
            if not await session.port_open(AGENT_PORT):
                last = AgentError(f"node `{session.node.name}`: the agent's port is not open yet")
                await asyncio.sleep(_HEALTH_POLL)
                continue
            try:
                async with self.agent(session, identity, cert) as client:
                    return await client.health()
            except CertificateRevokedError:
                raise  # waiting does not make it valid again
            except AgentError as exc:
                last = exc
                await asyncio.sleep(_HEALTH_POLL)
        tail = await session.run(f"tail -n 5 {REMOTE_LOG} 2>/dev/null", check=False, sudo=True)
        raise AgentError(
            f"node `{session.node.name}`: the agent did not answer within {_HEALTH_WAIT:.0f}s "
            f"({last}); its log ends: {tail.stdout.strip()[-400:]}"
        )

    def _identity(self, request: RolloutInput) -> str:
        parts = Path(request.workdir).parts
        # .../stacks/<organisation>/<stack>/tofu
        return node_identity(parts[-3], parts[-2], request.node.name)

    @activity.defn(name="InstallNodeAgent")
    async def install_agent(self, request: RolloutInput) -> str:
        """Install or upgrade the agent on one node and wait until it answers; its version."""
        identity = self._identity(request)
        bundle = await asyncio.to_thread(_bundle, self.settings.home / "cache" / "agent")
        source = f"agent/{request.node.name}"
        started = time.monotonic()
        try:
            async with node_session(request.node) as session:
                # What the node has, in one round trip: bundle version, agent alive, certs.
                probe = await session.run(_PROBE_INSTALL, check=False, sudo=True)
                version, liveness, certs = (probe.stdout.split(_PROBE_SEPARATOR) + [""] * 3)[:3]
                # Independent, so they share the connection at once (one SSH channel each).
                shipped, renewed = await asyncio.gather(
                    self._ensure_bundle(session, bundle, version.strip()),
                    self._ensure_node_cert(session, identity, current=certs.lstrip("\n")),
                )
                running = "running" in liveness.split()
                supervised = "supervised" in liveness.split()
                if shipped:
                    size = bundle.path.stat().st_size / 1e6
                    self.deploy.log(
                        request.deployment_id,
                        source,
                        f"agent {bundle.version} copied and unpacked ({size:.1f} MB) "
                        f"in {time.monotonic() - started:.2f}s",
                    )
                if shipped or renewed or not running or not supervised:
                    why = (
                        "new version"
                        if shipped
                        else "new certificate"
                        if renewed
                        else "not running"
                        if not running
                        else "not supervised yet"
                    )
                    by = await self._start_agent(session)
                    self.deploy.log(
                        request.deployment_id,
                        source,
                        f"started agent {bundle.version} ({why}), supervised by {by}",
                    )
                health = await self._wait_healthy(session, identity)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        self.deploy.log(
            request.deployment_id,
            source,
            f"agent {health.agent_version or bundle.version} ready, docker "
            f"{health.docker_version} ({time.monotonic() - started:.2f}s)",
        )
        return bundle.version

    @activity.defn(name="RenewNodeCertificate")
    async def renew_certificate(self, request: RenewNodeInput) -> bool:
        """Replace the node agent's certificate if it expires within the window; restart it."""
        within = timedelta(days=request.within_days)
        rollout = request.node
        identity = self._identity(rollout)
        try:
            async with node_session(rollout.node) as session:
                if not await self._ensure_node_cert(session, identity, within):
                    return False
                await self._start_agent(session)
                await self._wait_healthy(session, identity)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        return True

    @activity.defn(name="RenewControlCertificate")
    def renew_control_certificate(self, request: RenewInput) -> bool:
        """Replace the control plane's client certificate if it expires within the window."""
        crt = self.pki_dir / f"{CONTROL_CERT}.crt"
        before = crt.read_bytes() if crt.exists() else b""
        return self.control_cert(timedelta(days=request.within_days)).cert_pem != before

    # ---- services --------------------------------------------------------------------------

    async def _ship_images(
        self, session: NodeSession, client: Any, images: list[str], on_line: Callable[[str], None]
    ) -> None:
        """Send images the node lacks from this host's engine (the node may be offline)."""
        import docker
        import docker.errors

        local = None
        for image in sorted(set(images)):
            probe = await session.run(
                f"docker image inspect {shlex.quote(image)} >/dev/null 2>&1", check=False, sudo=True
            )
            if probe.exit_status == 0:
                continue
            if local is None:
                local = docker.from_env()
            try:
                await asyncio.to_thread(local.images.get, image)
            except docker.errors.ImageNotFound:
                continue  # not here either: the agent pulls it, or says why it cannot
            on_line(f"shipping image {image} from the control host")
            chunks: list[bytes] = await asyncio.to_thread(_saved_image, local, image)
            await client.load_image(chunks)
        if local is not None:
            local.close()

    def _saved_image_file(self, local: Any, image: str) -> Path:
        """``docker save`` of ``image`` in this host's cache, named by image id and name.

        The tarball carries the name it was saved under, and ``docker load`` tags what it
        loads with exactly that: one content under two names needs two tarballs, or the node
        would get the first name only.
        """
        image_id = str(local.images.get(image).id).removeprefix("sha256:")
        tag = hashlib.sha256(image.encode()).hexdigest()[:12]
        target = self.settings.home / "cache" / "images" / f"{image_id[:32]}-{tag}.tar"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{secrets.token_hex(4)}.part")
            with partial.open("wb") as fh:
                for chunk in local.api.get_image(image):
                    fh.write(chunk)
            partial.replace(target)
        return target

    @activity.defn(name="StageImages")
    async def stage_images(self, request: RolloutInput) -> list[str]:
        """Ship the images a node's services need and it lacks, before the rollout needs them.

        Runs beside the agent install, over SSH into the node's ``docker load``, so the
        rollout only creates containers. Fails (``NodeEngineNotReady``) when the node's
        engine does not answer yet: a real node's bootstrap may still be installing it, and
        a fresh simulated node answers SSH before its engine (more so with many booting at
        once). The workflow then does not count the node as staged and the rollout ships
        the images through the agent. Images this host lacks too are left to the agent to pull.
        """
        import docker
        import docker.errors

        data, _ = self._manifest(request)
        images = sorted(
            {s["image"] for s in data.get("services", []) if s.get("image")}
            | swarm_images(Path(request.workdir), request.node.name)
        )
        source = f"agent/{request.node.name}"
        shipped: list[str] = []
        if not images:
            return shipped
        try:
            async with node_session(request.node) as session:
                # One docker CLI run (each costs a node tens of ms of CPU): the tags of the
                # images it has; it fails naming the daemon when the engine is down.
                quoted = " ".join(shlex.quote(i) for i in images)
                probe = await session.run(
                    f"docker image inspect --format '{{{{json .RepoTags}}}}' {quoted}",
                    check=False,
                    sudo=True,
                )
                if probe.exit_status == 127 or "daemon" in probe.stderr:
                    raise ApplicationError(
                        f"node `{request.node.name}`: its Docker engine does not answer yet; "
                        "the rollout ships the images",
                        type="NodeEngineNotReady",
                        non_retryable=True,
                    )
                have = {
                    tag
                    for line in probe.stdout.splitlines()
                    if line.startswith("[")  # the CLI prints an empty line for a missing one
                    for tag in json.loads(line)
                }
                missing = [i for i in images if i not in have and f"{i}:latest" not in have]
                if not missing:
                    return shipped
                local = docker.from_env()
                try:
                    for image in missing:
                        activity.heartbeat(image)
                        started = time.monotonic()
                        try:
                            saved = await asyncio.to_thread(self._saved_image_file, local, image)
                        except docker.errors.ImageNotFound:
                            continue
                        # Copied whole first, for the reason given in _ensure_bundle.
                        staged = await session.upload(saved)
                        await session.run(
                            f'docker load -q < "{staged}" >/dev/null; rc=$?; '
                            f'rm -f "{staged}"; exit $rc',
                            sudo=True,
                        )
                        shipped.append(image)
                        self.deploy.log(
                            request.deployment_id,
                            source,
                            f"image {image} shipped from the control host "
                            f"({saved.stat().st_size / 1e6:.1f} MB) in "
                            f"{time.monotonic() - started:.2f}s",
                        )
                finally:
                    local.close()
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        return shipped

    def _manifest(self, request: RolloutInput) -> tuple[dict[str, Any], str]:
        path = contained(Path(request.workdir) / "manifests", request.node.name)
        path = path.with_name(f"{path.name}.json")
        raw = path.read_bytes()
        return json.loads(raw), hashlib.sha256(raw).hexdigest()[:16]

    async def _apply(
        self, request: RolloutInput, manifest: Any, on_line: Callable[[str, str], None]
    ) -> Any:
        identity = self._identity(request)
        async with node_session(request.node) as session, self.agent(session, identity) as client:
            if not request.images_staged:  # else StageImages did it, and probing costs
                images = [s.image for s in manifest.services if s.image]
                await self._ship_images(session, client, images, lambda line: on_line(line, "info"))

            def on_event(event: Any) -> None:
                activity.heartbeat(event.service)
                text = f"{event.service}: {event.message}" if event.service else event.message
                on_line(text, event_level(event.kind))

            return await client.apply(manifest, on_event)

    @activity.defn(name="RolloutServices")
    async def rollout(self, request: RolloutInput) -> NodeRollout:
        """Converge the node to its manifest; unhealthy new revisions are rolled back."""
        data, revision = self._manifest(request)
        manifest = to_proto_manifest(data, revision)
        source = f"rollout/{request.node.name}"  # the step and the node (agent/…: installing)
        try:
            result = await self._apply(
                request,
                manifest,
                lambda line, level: self.deploy.log(request.deployment_id, source, line, level),
            )
        except KombifyError as exc:
            raise ApplicationError(
                exc.message, type=_rollout_error_type(exc), non_retryable=exc.permanent
            ) from exc
        return NodeRollout(node=request.node.name, services=service_reports(result))

    @activity.defn(name="RemoveServices")
    async def remove_services(self, request: RolloutInput) -> None:
        """Stop and remove every service kombify runs on the node, and the agent itself.

        The agent's certificate is revoked before it is deleted from the node, so a copy of it
        cannot act as this node's agent again; a retry finds it revoked and goes on.
        """
        from kombify.agent.proto import pb

        source = f"agent/{request.node.name}"
        identity = self._identity(request)
        try:
            async with node_session(request.node) as session:
                cert = await self._node_cert(session)
                revoked = cert is not None and self.revocations.is_revoked(cert.serial_number)
                if revoked:
                    # A retry after the revocation below: the client would refuse this agent.
                    self.deploy.log(
                        request.deployment_id,
                        source,
                        "the agent's certificate is revoked already: removing kombify's "
                        "containers with docker",
                    )
                    await session.run(_REMOVE_MANAGED, sudo=True)
                elif await self._agent_running(session):
                    async with self.agent(session, identity) as client:
                        await client.apply(
                            pb.Manifest(revision="removed", services=[]),
                            lambda e: self.deploy.log(request.deployment_id, source, e.message),
                        )
                else:
                    # A restarted node comes back without its agent while Docker restarts
                    # the services: remove them with the node's own docker CLI.
                    self.deploy.log(
                        request.deployment_id,
                        source,
                        "the agent is not running: removing kombify's containers with docker",
                    )
                    await session.run(_REMOVE_MANAGED, sudo=True)
                left = (await session.run(_LIST_MANAGED, sudo=True)).stdout.split()
                if left:
                    raise AgentError(
                        f"node `{request.node.name}`: {len(left)} kombify container(s) are "
                        f"still there after their removal ({', '.join(c[:12] for c in left)})"
                    )
                if cert is not None:
                    line = await asyncio.to_thread(self._revoke_node_cert, request, cert, identity)
                    self.deploy.log(request.deployment_id, source, line)
                # What kombify put on the node goes too: agent, bundles, certificates, manifest.
                await session.run(_UNINSTALL_AGENT, sudo=True)
                self.deploy.log(request.deployment_id, source, "agent stopped and removed")
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
