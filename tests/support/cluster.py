"""kombify scaled out on one machine: several ``kombify worker`` and ``kombify api`` processes.

Every process shares one ``KOMBIFY_HOME`` (stack work dirs, keys, CA, admin token), one
PostgreSQL database and one task queue on a Temporal started separately, as a user would run
them (see docs/deploy.md, "Scaling out"). The test process talks to the API processes over
HTTP with the admin token from the shared home, like the CLI does.
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

import httpx
from temporalio.client import Client

from kombify.api.auth import token_path
from kombify.settings import Settings
from tests.support.deploy_env import KombifyEnv
from tests.support.ports import free_port


class Cluster(KombifyEnv):
    """``workers`` worker processes and ``apis`` API processes sharing one home and database.

    The inherited helpers (``start``, ``wait``, ``containers`` …) go through API process 0;
    ``call``, ``store`` and ``start`` take ``api=`` to choose another one.
    """

    def __init__(self, home: Path, temporal_address: str, database_url: str) -> None:
        # Not KombifyEnv.__init__: no in-process app; the API runs as processes here.
        self.home = home
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings = Settings(
            home=home,
            temporal_address=temporal_address,
            database_url=database_url,
            task_queue=f"scale-{secrets.token_hex(4)}",
        )
        self.env = {
            **os.environ,
            "KOMBIFY_HOME": str(home),
            "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
            "KOMBIFY_DATABASE_URL": database_url,
            "KOMBIFY_TASK_QUEUE": self.settings.task_queue,
            # Many clients through few API processes; limits are tested on their own.
            "KOMBIFY_RATE_LIMITS": "auth=600/60,write=60000/60,read=600000/60,tries=10/60",
        }
        self.env.pop("KOMBIFY_ADMIN_TOKEN", None)  # the API processes share the home's file
        self.worker = None
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.api_procs: dict[int, subprocess.Popen[bytes]] = {}
        self.api_urls: dict[int, str] = {}
        self.apis: dict[int, httpx.AsyncClient] = {}
        self.stacks: list[str] = []
        self.worker_log = home / "worker.log"  # every worker appends here, lines carry pids
        self.http = httpx.AsyncClient(timeout=60)  # replaced by API 0's client once it serves
        self.temporal: Client | None = None
        # No upgrade here: the processes migrate the fresh database themselves, all at once.

    # ---- processes ---------------------------------------------------------------------------

    def _spawn(self, argv: list[str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "kombify", *argv],
                env={**self.env, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start_worker(self, index: int = 0) -> None:
        """Start worker ``index`` (``kombify worker``)."""
        self.workers[index] = self._spawn(["worker"], self.home / f"worker-{index}.log")

    def kill_worker_pid(self, pid: int) -> int:
        """SIGKILL the worker with ``pid`` (as a crash would); its index."""
        for index, proc in self.workers.items():
            if proc.pid == pid:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                return index
        raise AssertionError(f"no worker of this cluster has pid {pid}: {self.worker_pids()}")

    def worker_pids(self) -> dict[int, int]:
        """Live workers: {index: pid}."""
        return {i: p.pid for i, p in self.workers.items() if p.poll() is None}

    async def start_api(self, index: int) -> None:
        """Start API process ``index`` (``kombify api`` on a free port); wait until ready."""
        port = free_port()
        self.api_urls[index] = f"http://127.0.0.1:{port}"
        self.api_procs[index] = self._spawn(
            ["api"], self.home / f"api-{index}.log", KOMBIFY_API_PORT=str(port)
        )
        await self._until_ready(index)

    async def _until_ready(self, index: int, timeout: float = 60) -> None:
        url, proc = self.api_urls[index], self.api_procs[index]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5) as probe:
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"API {index} exited; see {self.home}/api-{index}.log"
                try:
                    if (await probe.get(f"{url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"API {index} at {url} not ready after {timeout}s")

    def connect_apis(self) -> None:
        """HTTP clients for every API process, with the token from the shared home's file."""
        token = token_path(self.settings).read_text().strip()
        for index, url in self.api_urls.items():
            self.apis[index] = httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
        self.http = self.apis[0]

    async def wait_for_pollers(self, timeout: float = 60) -> None:
        """Until every live worker process polls the task queue for activities.

        By pid: Temporal keeps listing a killed worker among the pollers for a while.
        """
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        client = await self.client()
        deadline = time.monotonic() + timeout
        while True:
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=self.settings.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                )
            )
            polling = {int(p.identity.split("@", 1)[0]) for p in answer.pollers}
            missing = set(self.worker_pids().values()) - polling
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"workers {sorted(missing)} do not poll after {timeout}s")
            await asyncio.sleep(0.3)

    async def client(self) -> Client:
        """A Temporal client of the test's own (to read histories, find the busy worker)."""
        if self.temporal is None:
            assert self.settings.temporal_address is not None
            self.temporal = await Client.connect(self.settings.temporal_address)
        return self.temporal

    # ---- API -----------------------------------------------------------------------------------

    async def call(self, method: str, path: str, *, api: int = 0, **kwargs: Any) -> Any:
        """An API call to API process ``api`` that must succeed; its JSON body."""
        response = await self.apis[api].request(method, path, **kwargs)
        assert response.is_success, f"API {api}: {method} {path}: {response.status_code} " + (
            response.text
        )
        return response.json() if response.status_code != 204 else None

    async def store(self, source: str, *, api: int = 0) -> dict[str, Any]:
        """Create the stack through API process ``api``."""
        return dict(await self.call("POST", "/v1/stacks", api=api, json={"source": source}))

    async def start(self, source: str, *, api: int = 0, **options: Any) -> dict[str, Any]:
        """Store ``source`` and start its deploy, both through API process ``api``."""
        stack = await self.store(source, api=api)
        body = {"auto_approve": True, **options}
        path = f"/v1/stacks/{stack['name']}/deployments"
        return dict(await self.call("POST", path, api=api, json=body))

    # ---- who ran what ----------------------------------------------------------------------------

    async def busy_worker(
        self, run: dict[str, Any], timeout: float = 60
    ) -> tuple[int, list[str]]:
        """A worker running the run's activities now: its pid and those activities' names.

        Workers name themselves ``pid@host`` (the SDK's default identity).
        """
        from temporalio.api.enums.v1 import PendingActivityState

        handle = (await self.client()).get_workflow_handle(run["workflow_id"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = await handle.describe()
            busy: dict[int, list[str]] = {}
            started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for pending in described.raw_description.pending_activities:
                identity = pending.last_worker_identity
                if identity and pending.state == started:
                    pid = int(identity.split("@", 1)[0])
                    busy.setdefault(pid, []).append(pending.activity_type.name)
            for pid, names in busy.items():
                if pid in self.worker_pids().values():
                    return pid, names
            await asyncio.sleep(0.1)
        raise AssertionError(f"no activity of {run['workflow_id']} ran within {timeout}s")

    async def activity_workers(self, run: dict[str, Any]) -> list[tuple[str, int]]:
        """Each activity attempt the run's history records as started: (activity, worker pid)."""
        from temporalio.api.enums.v1 import EventType

        handle = (await self.client()).get_workflow_handle(run["workflow_id"])
        history = await handle.fetch_history()
        names: dict[int, str] = {}
        found: list[tuple[str, int]] = []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = event.activity_task_scheduled_event_attributes
                names[event.event_id] = attrs.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                pid = int(started.identity.split("@", 1)[0])
                found.append((names[started.scheduled_event_id], pid))
        return found

    # ---- end -------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every process and remove every simulation the tests made."""
        for proc in [*self.api_procs.values(), *self.workers.values()]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.api_procs.values(), *self.workers.values()]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for client in self.apis.values():
            await client.aclose()
        from kombify.sim import delete_simulation

        for stack in self.stacks:
            await asyncio.to_thread(delete_simulation, stack)
