"""PrepareHeadscale and EnrollHeadscale: a stack's Headscale server and its nodes.

Before rollout (the network step), ``PrepareHeadscale`` checks that what enrollment needs is
there (a ``tailscale`` binary on every node, the Headscale image on the server's node) and
ships the generated ``config.yaml`` and ``policy.json`` into the directory the server's
container bind-mounts. After rollout (Headscale runs), ``EnrollHeadscale`` makes the stack's
Headscale user, then for every node not enrolled yet a single-use pre-auth key tagged with
the node's role, and runs ``tailscale up`` on the node with it.

Pre-auth keys are secrets: they live in this process's memory and in a 0600 file on the node
for the length of one ``tailscale up`` (``--auth-key=file:``, so the key is on no command
line), and never in a result, a log line or an error message.

Commands run as root over the node's SSH session (:class:`SshRunner`): the agent has no
command RPC, and kombify reaches nodes over SSH for root work already (bootstrap, agent
install). Tests hand in a fake :class:`Runner`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities
from kombify.activities.heartbeat import heartbeating
from kombify.activities.ssh import CommandResult, node_session
from kombify.agent.engine import L_SERVICE
from kombify.contracts.deploy import NodeTarget
from kombify.contracts.headscale import HeadscaleInput, HeadscaleResult
from kombify.errors import ConfigError, KombifyError
from kombify.unifier.headscale import CONFIG_FILE, ENROLL_FILE, HOST_DIR, POLICY_FILE
from kombify.unifier.swarm import SWARM_MANIFEST_FILE

KEY_EXPIRY = "1h"  # long enough for one deploy's enrollment, short if it ever leaked
KEY_DIR = "/run/kombify"  # tmpfs on systemd hosts: a key file never reaches a disk there


class VpnPrerequisiteError(ConfigError):
    """A node lacks what the VPN provider needs (a binary, an image): the owner installs it."""

    code = "vpn-prerequisite"
    status = 422
    permanent = True


class HeadscaleError(KombifyError):
    """A Headscale or Tailscale command failed (its output is redacted of keys)."""

    code = "headscale-error"


class Runner(Protocol):
    """Runs commands as root on a node of the stack, by node name."""

    async def run(self, node: str, argv: Sequence[str]) -> CommandResult:
        """Run ``argv``; the result whatever the exit status."""
        ...

    async def write(self, node: str, path: str, data: bytes, mode: int) -> None:
        """Write a root-owned file atomically, created with ``mode``."""
        ...


@dataclass(frozen=True)
class Enrollment:
    """``headscale/enroll.json`` (kombify.unifier.headscale): public data only."""

    service: str
    image: str
    node: str
    server_url: str
    base_domain: str
    user: str
    nodes: dict[str, str]  # node -> tag

    @classmethod
    def read(cls, workdir: Path) -> Enrollment:
        data = json.loads((workdir / ENROLL_FILE).read_text())
        return cls(
            service=str(data["service"]),
            image=str(data["image"]),
            node=str(data["node"]),
            server_url=str(data["server_url"]),
            base_domain=str(data["base_domain"]),
            user=str(data["user"]),
            nodes={str(k): str(v) for k, v in data["nodes"].items()},
        )


def in_container(container: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside the Headscale container (its CLI talks to the unix socket)."""
    return ["docker", "exec", container, *argv]


def users_list() -> list[str]:
    return ["headscale", "users", "list", "--output", "json"]


def users_create(user: str) -> list[str]:
    return ["headscale", "users", "create", user]


def preauthkey_create(user: str, tag: str) -> list[str]:
    """A single-use key for one node, expiring soon, that puts the role's tag on the node."""
    return [
        "headscale",
        "preauthkeys",
        "create",
        "--user",
        user,
        "--reusable=false",
        "--expiration",
        KEY_EXPIRY,
        "--tags",
        tag,
        "--output",
        "json",
    ]


def tailscale_up(server_url: str, key_file: str, hostname: str) -> list[str]:
    """Join the node; the key is read from ``key_file`` (Tailscale's ``file:`` form)."""
    return [
        "tailscale",
        "up",
        "--login-server",
        server_url,
        f"--auth-key=file:{key_file}",
        "--hostname",
        hostname,
    ]


def redact(text: str, *keys: str) -> str:
    """``text`` with every key in it replaced by ``<redacted>``."""
    for key in keys:
        if key:
            text = text.replace(key, "<redacted>")
    return text


def _tail(result: CommandResult, *keys: str) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
    return redact(" / ".join(text), *keys)


class Headscale:
    """The steps, given a runner (so tests run them with a fake one)."""

    def __init__(self, runner: Runner, log: Callable[[str], None]) -> None:
        self.runner = runner
        self.log = log

    async def missing(self, plan: Enrollment) -> list[str]:
        """What enrollment needs and the nodes lack, as sentences (empty: nothing)."""

        async def has_tailscale(node: str) -> bool:
            probe = await self.runner.run(node, ["sh", "-c", "command -v tailscale"])
            return probe.exit_status == 0

        names = sorted(plan.nodes)
        found = await asyncio.gather(*(has_tailscale(n) for n in names))
        problems = []
        lacking = [n for n, ok in zip(names, found, strict=True) if not ok]
        if lacking:
            problems.append(
                f"no `tailscale` binary on {', '.join(lacking)} (kombify enrolls each node "
                "with `tailscale up`: install Tailscale there)"
            )
        image = await self.runner.run(plan.node, ["docker", "image", "inspect", plan.image])
        if image.exit_status != 0:
            problems.append(
                f"the headscale image {plan.image} is not on {plan.node} (load or pull it "
                "there, or make it available to the deploy's image staging)"
            )
        return problems

    async def prepare(
        self, plan: Enrollment, files: Mapping[str, bytes], *, swarm: bool = False
    ) -> None:
        """Refuse what cannot be enrolled; ship the config and the policy to the server.

        ``swarm``: the stack runs on a swarm kit, where the server is a Swarm task that may
        land on any manager, away from the config written here and out of `docker ps` reach.
        """
        if swarm:
            raise VpnPrerequisiteError(
                "headscale: on a swarm kit the Headscale server runs as a Swarm service, and "
                "kombify does not configure it or enroll nodes through it yet: use provider: "
                "wireguard (a mesh kombify builds on every node), or run Headscale yourself"
            )
        problems = await self.missing(plan)
        if problems:
            raise VpnPrerequisiteError("headscale: " + "; ".join(problems))
        for name in (CONFIG_FILE, POLICY_FILE):
            target = f"{HOST_DIR}/{Path(name).name}"
            await self.runner.write(plan.node, target, files[name], 0o644)
        self.log(f"{plan.node}: headscale config and ACL policy written to {HOST_DIR}")

    async def _in_server(self, plan: Enrollment, container: str, argv: list[str]) -> str:
        result = await self.runner.run(plan.node, in_container(container, argv))
        if result.exit_status != 0:
            raise HeadscaleError(
                f"headscale on {plan.node}: `{shlex.join(argv[:3])}` exited "
                f"{result.exit_status}: {_tail(result)}"
            )
        return result.stdout

    async def _container(self, plan: Enrollment) -> str:
        found = await self.runner.run(
            plan.node,
            ["docker", "ps", "--quiet", "--filter", f"label={L_SERVICE}={plan.service}"],
        )
        ids = found.stdout.split()
        if found.exit_status != 0 or not ids:
            raise HeadscaleError(f"headscale on {plan.node}: its container is not running")
        return ids[0]

    async def _enrolled(self, plan: Enrollment, node: str) -> bool:
        status = await self.runner.run(node, ["tailscale", "status", "--json"])
        try:
            data: dict[str, Any] = json.loads(status.stdout) if status.exit_status == 0 else {}
        except ValueError:
            return False
        tailnet = data.get("CurrentTailnet") or {}
        return data.get("BackendState") == "Running" and (
            tailnet.get("MagicDNSSuffix") == plan.base_domain
        )

    async def enroll(self, plan: Enrollment) -> HeadscaleResult:
        """The stack's user, then every node not in the tailnet yet, each with its own key."""
        container = await self._container(plan)
        users = json.loads(await self._in_server(plan, container, users_list()) or "[]")
        if plan.user not in {u.get("name") for u in users or []}:
            await self._in_server(plan, container, users_create(plan.user))
            self.log(f"{plan.node}: headscale user {plan.user} created")
        enrolled, already = [], []
        for node in sorted(plan.nodes):
            if await self._enrolled(plan, node):
                already.append(node)
                continue
            await self._enroll_node(plan, container, node)
            enrolled.append(node)
            self.log(f"{node}: enrolled in headscale as {plan.nodes[node]} ({plan.server_url})")
        return HeadscaleResult(plan.node, plan.server_url, enrolled, already)

    async def _enroll_node(self, plan: Enrollment, container: str, node: str) -> None:
        argv = preauthkey_create(plan.user, plan.nodes[node])
        created = await self._in_server(plan, container, argv)
        try:
            key = str(json.loads(created)["key"])
        except (ValueError, KeyError, TypeError):
            # Neither the output nor the parse error is kept (``from None``): it may hold a
            # key in a shape this did not expect, and a cause travels into the history.
            raise HeadscaleError(
                f"headscale on {plan.node}: `headscale preauthkeys create` gave no key"
            ) from None
        key_file = f"{KEY_DIR}/headscale-{secrets.token_hex(8)}.key"
        await self.runner.write(node, key_file, key.encode(), 0o600)
        try:
            up = await self.runner.run(node, tailscale_up(plan.server_url, key_file, node))
        finally:
            await self.runner.run(node, ["rm", "-f", key_file])
        if up.exit_status != 0:
            raise HeadscaleError(
                f"{node}: `tailscale up --login-server {plan.server_url}` exited "
                f"{up.exit_status}: {_tail(up, key)}"
            )


class SshRunner:
    """Commands as root over each node's SSH session."""

    def __init__(self, nodes: Sequence[NodeTarget]) -> None:
        self.nodes = {n.name: n for n in nodes}

    async def run(self, node: str, argv: Sequence[str]) -> CommandResult:
        async with node_session(self.nodes[node]) as session:
            return await session.run(shlex.join(argv), check=False, sudo=True)

    async def write(self, node: str, path: str, data: bytes, mode: int) -> None:
        async with node_session(self.nodes[node]) as session:
            await session.write(path, data, mode=mode)


class HeadscaleActivities:
    """The two activities; they log into the deployment's log (source ``vpn``)."""

    def __init__(self, agents: AgentActivities) -> None:
        self.agents = agents

    def _steps(self, request: HeadscaleInput) -> Headscale:
        def log(message: str) -> None:
            self.agents.deploy.log(request.deployment_id, "vpn", message)

        return Headscale(SshRunner(request.nodes), log)

    @activity.defn(name="PrepareHeadscale")
    async def prepare(self, request: HeadscaleInput) -> HeadscaleResult:
        """Check what enrollment needs; ship the generated config and policy to the server."""
        workdir = Path(request.workdir)
        plan = Enrollment.read(workdir)
        files = {name: (workdir / name).read_bytes() for name in (CONFIG_FILE, POLICY_FILE)}
        try:
            async with heartbeating("preparing headscale"):
                swarm = (workdir / SWARM_MANIFEST_FILE).exists()
                await self._steps(request).prepare(plan, files, swarm=swarm)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        return HeadscaleResult(plan.node, plan.server_url)

    @activity.defn(name="EnrollHeadscale")
    async def enroll(self, request: HeadscaleInput) -> HeadscaleResult:
        """Enroll every node of the stack that is not in its tailnet yet."""
        plan = Enrollment.read(Path(request.workdir))
        try:
            async with heartbeating("enrolling nodes in headscale"):
                return await self._steps(request).enroll(plan)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
