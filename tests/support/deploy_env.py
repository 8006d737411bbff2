"""A whole kombify for end-to-end deploy tests: real Temporal, a worker process, the API app.

The worker runs as a separate process (``python -m kombify worker``) so tests can kill it
with SIGKILL in the middle of a deploy, as a crash would, and start another.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh
import httpx
from sqlmodel import Session, select

from kombify.api.app import create_app
from kombify.db.engine import get_engine
from kombify.db.hostkeys import get_pin
from kombify.db.migrate import upgrade
from kombify.db.models import Stack
from kombify.hostkeys import HostKey
from kombify.settings import Settings
from kombify.sim import connection_info, delete_simulation


def unique_stack(prefix: str = "kd") -> str:
    """A stack (and simulation) name no other test uses."""
    return f"{prefix}-{secrets.token_hex(3)}"


class KombifyEnv:
    """kombify pointed at a given Temporal, with its own home, queue and database."""

    def __init__(self, home: Path, temporal_address: str) -> None:
        self.home = home
        self.settings = Settings(
            home=home,
            temporal_address=temporal_address,
            task_queue=f"e2e-{secrets.token_hex(4)}",
            # One API serves a whole module's deploys and waits (many polls a minute); the
            # limits themselves are tested in tests/integration/test_gateway_limits.py.
            rate_limits="auth=600/60,write=6000/60,read=60000/60,tries=10/60",
        )
        self.env = {
            **os.environ,
            "KOMBIFY_HOME": str(home),
            "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
            "KOMBIFY_TASK_QUEUE": self.settings.task_queue,
        }
        self.worker: subprocess.Popen[bytes] | None = None
        self.stacks: list[str] = []  # simulations to remove at the end
        self.worker_log = home / "worker.log"
        upgrade(self.settings.resolved_database_url)
        self.app = create_app(self.settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://kombify",
            headers={"Authorization": f"Bearer {self.app.state.admin_token}"},
            timeout=60,
        )

    # ---- worker ------------------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start a worker process polling this env's task queue."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self.worker_log.open("ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "kombify", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill_worker(self) -> None:
        """SIGKILL the worker: no graceful shutdown, as in a crash."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait(10)
        self.worker = None

    def stop_worker(self) -> None:
        """Stop the worker cleanly."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None

    # ---- API -----------------------------------------------------------------------------------

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """An API call that must succeed; its JSON body."""
        response = await self.http.request(method, path, **kwargs)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.status_code != 204 else None

    async def store(self, source: str) -> dict[str, Any]:
        """Create the stack, or add a revision when it exists."""
        response = await self.http.post("/v1/stacks", json={"source": source})
        if response.status_code == 409:
            name = response.json()["detail"].split("`")[1]
            return dict(await self.call("PUT", f"/v1/stacks/{name}", json={"source": source}))
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def start(self, source: str, **options: Any) -> dict[str, Any]:
        """Store ``source`` and start a deploy; the deployment as the API returns it."""
        stack = await self.store(source)
        body = {"auto_approve": True, **options}
        return dict(await self.call("POST", f"/v1/stacks/{stack['name']}/deployments", json=body))

    async def wait(self, run: dict[str, Any], *, timeout: float = 300) -> dict[str, Any]:
        """Poll a deployment until it ends; the final deployment with progress."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = dict(await self.call("GET", f"/v1/deployments/{run['id']}"))
            if current["state"] != "running":
                return current
            await asyncio.sleep(0.5)
        raise AssertionError(f"deployment {run['id']} still running after {timeout}s: {current}")

    async def wait_for_step(
        self, run: dict[str, Any], step: str, *, timeout: float = 180
    ) -> dict[str, Any]:
        """Poll until ``step`` runs (or is past); the deployment then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = dict(await self.call("GET", f"/v1/deployments/{run['id']}"))
            steps = {
                s["name"]: s["state"] for s in (current.get("progress") or {}).get("steps", [])
            }
            if steps.get(step) in ("running", "waiting", "done", "failed"):
                return current
            await asyncio.sleep(0.2)
        raise AssertionError(f"step {step} never started: {current}")

    async def wait_for_state(
        self, run: dict[str, Any], state: str, *, timeout: float = 180
    ) -> dict[str, Any]:
        """Poll until the live progress reports ``state``; the deployment then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = dict(await self.call("GET", f"/v1/deployments/{run['id']}"))
            if (current.get("progress") or {}).get("state") == state:
                return current
            await asyncio.sleep(0.2)
        raise AssertionError(f"never reached {state}: {current}")

    async def deploy(self, source: str, **options: Any) -> dict[str, Any]:
        """Store, deploy and wait."""
        return await self.wait(await self.start(source, **options))

    async def destroy(self, stack: str) -> dict[str, Any]:
        """Destroy a stack and wait."""
        return await self.wait(await self.call("POST", f"/v1/stacks/{stack}/destroy"))

    # ---- nodes -----------------------------------------------------------------------------

    async def on_node(self, stack: str, node: str, command: str) -> str:
        """Run a command on a simulated node over real SSH; its stdout (must exit 0).

        A deployed stack's node is held to its pinned host key, as kombify holds it; a bare
        simulation (no stack of that name) is reached like KombiSim's own commands do.
        """
        endpoint = connection_info(stack)[node]
        pin = self.pinned_key(stack, node)
        async with asyncssh.connect(
            endpoint.host,
            endpoint.port,
            username=endpoint.user,
            client_keys=[endpoint.identity_file],
            known_hosts=([asyncssh.import_public_key(pin)], [], []) if pin else None,
            agent_path=None,
            config=[],
        ) as conn:
            result = await conn.run(command, check=True)
        return str(result.stdout)

    def pinned_key(self, stack: str, node: str) -> str | None:
        """The host key kombify pinned for a node of a deployed stack; None for a bare sim."""
        with Session(get_engine(self.settings.resolved_database_url)) as session:
            row = session.exec(select(Stack).where(Stack.name == stack)).first()
            if row is None:
                return None
            pin = get_pin(session, stack_id=row.id, node=node, simulated=True)
            assert pin, f"no host key pinned for {stack}/{node}: deploy the stack first"
            return HostKey(pin.algorithm, pin.key).line

    async def containers(
        self, stack: str, node: str, *, running: bool = False
    ) -> dict[str, list[str]]:
        """kombify-managed containers on a node (only running ones with ``running``), by
        service label: {service: [ids]}."""
        every = "" if running else " -a"
        out = await self.on_node(
            stack,
            node,
            f"sudo docker ps{every} --filter label=io.kombify.service "
            "--format '{{.Label \"io.kombify.service\"}} {{.ID}}'",
        )
        found: dict[str, list[str]] = {}
        for line in out.split("\n"):
            if line.strip():
                service, cid = line.split()
                found.setdefault(service, []).append(cid)
        return {k: sorted(v) for k, v in found.items()}

    def new_stack(self) -> str:
        """A unique stack name whose simulation ``close`` removes."""
        name = unique_stack()
        self.stacks.append(name)
        return name

    async def close(self) -> None:
        """Stop the worker and remove every simulation the tests made."""
        self.stop_worker()
        await self.http.aclose()
        for stack in self.stacks:
            await asyncio.to_thread(delete_simulation, stack)


async def sim_action(action: str, name: str) -> None:
    """``start``, ``stop`` or ``restart`` a simulation, as ``kombify sim ACTION`` does."""
    from kombify.sim.client import docker_client
    from kombify.sim.engine import SimEngine

    client = docker_client()
    try:
        await asyncio.to_thread(getattr(SimEngine(client), action), name)
    finally:
        client.close()


def published(stack: str, node: str, port: int) -> int:
    """The 127.0.0.1 port where a simulated node's ``port`` is published."""
    from kombify.sim.client import docker_client
    from kombify.sim.engine import SimEngine

    client = docker_client()
    try:
        info = SimEngine(client).info(stack)
    finally:
        client.close()
    return next(n.ports[port] for n in info.nodes if n.name == node)
