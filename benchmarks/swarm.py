"""An ha-homelab swarm deployed by kombify against the raw Docker Swarm steps, same run.

What is measured (wall-clock seconds on this machine), per round:

kombify
    ``POST /v1/stacks/{name}/deployments`` of an ha-homelab kombination with 3 managers and 2
    workers (``provider: sim``, the kit's own services off) and one service ``web``
    (``kombify-test/httpd:1``, 3 replicas, host port 8080, an HTTP check every 1 s). Timed
    from the request until every replica answers HTTP 200 on its node's port 8080 (published
    on 127.0.0.1). That includes making the 5 simulated nodes, OpenTofu's bootstrap over SSH,
    the agent install, shipping the image, forming the swarm and rolling the service out.
raw
    The same by hand on 5 fresh simulated nodes of the same image, ports and limits: create
    them (``kombify.sim.create_simulation``, until SSH answers), ``docker load`` the image on
    each, ``docker swarm init`` on m1, ``join`` of the other two managers and the two workers
    with the tokens, ``docker network create -d overlay --attachable``, ``docker service
    create`` (3 replicas, host-mode port, the same health check, spread over nodes), until
    every replica answers the same way. The commands run through ``docker exec`` into the
    node containers (no SSH, no agent, no OpenTofu: the floor of the same work).

Printed: both totals, kombify's steps (from the run's progress) and the raw steps, and the
ratio. Goal (issue 11): kombify within 1.5x the raw steps.

Everything it needs is started here and removed at the end, on failure and Ctrl-C too: a temp
KOMBIFY_HOME, the Temporal dev server, the worker, uniquely named simulations. It talks to
127.0.0.1 only.

Usage: .venv/bin/python benchmarks/swarm.py [--rounds 1] [--keep-home]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import os
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _setup import bench_home, images, tests_support, wait_for_worker

from kombify import sim
from kombify.sim.models import NodeSpec, SimulationSpec

MANAGERS = ("m1", "m2", "m3")
WORKERS = ("w1", "w2")
PORT = 8080
HEALTH = "wget -q -O /dev/null http://localhost:80/"
_ANSWER_TIMEOUT = 300.0


@dataclass
class Timing:
    """One side's total and its steps, in seconds."""

    total: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def _kombination(name: str) -> str:
    tests_support()
    from tests.e2e.test_swarm import _kombination as swarm_kombination

    return swarm_kombination(name)


async def _all_answer(ports: list[int], timeout: float = _ANSWER_TIMEOUT) -> None:
    """Until every port on 127.0.0.1 answers HTTP 200."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        waiting = set(ports)
        while waiting:
            for port in sorted(waiting):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200:
                        waiting.discard(port)
                except httpx.HTTPError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"ports {sorted(waiting)} never answered")
            if waiting:
                await asyncio.sleep(0.05)


def _task_nodes(container: Any, service: str) -> list[str]:
    out = container.exec_run(
        [
            "docker",
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
        ]
    ).output.decode()
    return sorted(line for line in out.split() if line)


def _published(stack: str) -> dict[str, int]:
    client = sim.docker_client()
    try:
        info = sim.SimEngine(client).info(stack)
    finally:
        client.close()
    return {n.name: n.ports[PORT] for n in info.nodes if PORT in n.ports}


async def _wait_tasks(container: Any, service: str, count: int) -> list[str]:
    deadline = time.monotonic() + _ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        nodes = await asyncio.to_thread(_task_nodes, container, service)
        if len(nodes) == count:
            return nodes
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{service}: fewer than {count} tasks placed")


def _step_seconds(step: dict[str, Any]) -> float:
    start, end = step.get("started_at"), step.get("finished_at")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def _finished(env: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The deployment once it ended, looked at every 0.1 s: the granularity of the raw side's
    own waits (``_wait_tasks``), so neither side is timed by a coarser poll than the other."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        current = dict(await env.call("GET", f"/v1/deployments/{run['id']}"))
        if current["state"] != "running":
            return current
        await asyncio.sleep(0.1)
    raise TimeoutError(f"deployment {run['id']} still running after 900 s")


async def _kombify_round(env: Any, stack: str) -> Timing:
    timing = Timing()
    started = time.monotonic()
    run = await env.start(_kombination(stack))
    done = await _finished(env, run)
    if done["state"] != "succeeded":
        raise RuntimeError(f"deploy of {stack} ended {done['state']}; see {env.worker_log}")
    manager = await asyncio.to_thread(_container, stack, "m1")
    nodes = await _wait_tasks(manager, f"{stack}_web", 3)
    ports = await asyncio.to_thread(_published, stack)
    await _all_answer([ports[n] for n in nodes])
    timing.total = time.monotonic() - started
    for step in done["progress"]["steps"]:
        timing.steps[step["name"]] = _step_seconds(step)
    return timing


@functools.lru_cache(maxsize=1)
def _docker() -> Any:
    return sim.docker_client()  # one client for the run's docker exec calls


def _container(stack: str, node: str) -> Any:
    return _docker().containers.get(f"kombisim-{stack}-{node}")


def _run(container: Any, *argv: str) -> str:
    result = container.exec_run(list(argv))
    if result.exit_code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}: {result.output.decode()[-300:]}")
    return str(result.output.decode()).strip()


def _raw_nodes(name: str) -> None:
    spec = SimulationSpec(
        name=name,
        nodes=[
            NodeSpec(name=n, role="manager" if n in MANAGERS else "worker", ports=[PORT])
            for n in MANAGERS + WORKERS
        ],
    )
    sim.create_simulation(name, spec, wait=True, timeout=180)


def _load_image(name: str, node: str, archive: bytes) -> None:
    """``docker load`` of the image in a node: the tarball copied in, as kombify ships it."""
    container = _container(name, node)
    container.put_archive("/tmp", archive)
    # A node answers SSH before its own dockerd may: on a busy host the load can come first,
    # and then it waits for the engine as kombify's agent install does (nothing in the usual
    # case, where the first attempt works).
    deadline = time.monotonic() + 60
    while True:
        try:
            _run(container, "sh", "-c", "docker load -q -i /tmp/httpd.tar && rm -f /tmp/httpd.tar")
            return
        except RuntimeError as exc:
            if "Cannot connect to the Docker daemon" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _archive(tarball: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(tarball), arcname="httpd.tar")
    return buffer.getvalue()


async def _raw_round(name: str, image: str, home: Path) -> Timing:
    timing = Timing()
    tarball = home / "httpd.tar"
    if not tarball.exists():
        client = sim.docker_client()
        with tarball.open("wb") as fh:
            for chunk in client.api.get_image(image):
                fh.write(chunk)
        client.close()
    started = mark = time.monotonic()

    def lap(step: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timing.steps[step] = now - mark
        mark = now

    await asyncio.to_thread(_raw_nodes, name)
    lap("create 5 nodes")
    nodes = MANAGERS + WORKERS
    archive = await asyncio.to_thread(_archive, tarball)
    await asyncio.gather(*(asyncio.to_thread(_load_image, name, n, archive) for n in nodes))
    lap("docker load")
    m1 = await asyncio.to_thread(_container, name, "m1")
    address = await asyncio.to_thread(
        _run, m1, "sh", "-c", "ip -4 route get 1.1.1.1 | awk '{print $7; exit}'"
    )
    await asyncio.to_thread(_run, m1, "docker", "swarm", "init", "--advertise-addr", address)
    lap("swarm init")
    worker_token = await asyncio.to_thread(
        _run, m1, "docker", "swarm", "join-token", "-q", "worker"
    )
    manager_token = await asyncio.to_thread(
        _run, m1, "docker", "swarm", "join-token", "-q", "manager"
    )
    for node in MANAGERS[1:]:
        target = await asyncio.to_thread(_container, name, node)
        await asyncio.to_thread(
            _run, target, "docker", "swarm", "join", "--token", manager_token, f"{address}:2377"
        )

    async def join_worker(node: str) -> None:
        target = await asyncio.to_thread(_container, name, node)
        await asyncio.to_thread(
            _run, target, "docker", "swarm", "join", "--token", worker_token, f"{address}:2377"
        )

    await asyncio.gather(*(join_worker(n) for n in WORKERS))
    lap("joins")
    await asyncio.to_thread(
        _run, m1, "docker", "network", "create", "-d", "overlay", "--attachable", "kombify-overlay"
    )
    lap("network create")
    await asyncio.to_thread(
        _run,
        m1,
        "docker",
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--no-resolve-image",
        "--network",
        "kombify-overlay",
        "--placement-pref",
        "spread=node.id",
        "--publish",
        f"mode=host,target=80,published={PORT}",
        "--health-cmd",
        HEALTH,
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        image,
    )
    placed = await _wait_tasks(m1, "web", 3)
    ports = await asyncio.to_thread(_published, name)
    await _all_answer([ports[n] for n in placed])
    lap("service create until 3 answer")
    timing.total = time.monotonic() - started
    return timing


async def _measure(
    home: Path, address: str, rounds: int, image: str
) -> list[tuple[Timing, Timing]]:
    from temporalio.client import Client

    from tests.support.deploy_env import KombifyEnv

    env = KombifyEnv(home, address)
    created: list[str] = []
    results = []
    try:
        env.start_worker()
        client = await Client.connect(address)
        await wait_for_worker(client, env.settings.task_queue)
        for _ in range(rounds):
            tag = secrets.token_hex(3)
            stack, raw_name = f"kbs-{tag}", f"kbsr-{tag}"
            created.append(stack)
            kombify = await _kombify_round(env, stack)
            await asyncio.to_thread(sim.delete_simulation, stack)
            created.remove(stack)
            created.append(raw_name)
            raw = await _raw_round(raw_name, image, home)
            await asyncio.to_thread(sim.delete_simulation, raw_name)
            created.remove(raw_name)
            results.append((kombify, raw))
            _print_round(kombify, raw)
    finally:
        await env.close()
        for name in created:
            await asyncio.to_thread(sim.delete_simulation, name)
    return results


def _print_round(kombify: Timing, raw: Timing) -> None:
    print(f"kombify: {kombify.total:6.1f} s until 3 replicas answer")
    for step, seconds in kombify.steps.items():
        print(f"    {step:<32} {seconds:6.1f} s")
    print(f"raw:     {raw.total:6.1f} s until 3 replicas answer")
    for step, seconds in raw.steps.items():
        print(f"    {step:<32} {seconds:6.1f} s")
    print(f"ratio:   {kombify.total / raw.total:.2f}x (goal: within 1.5x)")


def main() -> None:
    """Set up, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 5:
        parser.error("--rounds must be between 1 and 5")
    with bench_home("kombify-bench-swarm-", keep=args.keep_home) as home:
        node_image, image = images()
        print(f"node image {node_image}, service image {image}, {os.cpu_count()} CPUs")
        tests_support()
        from tests.support.temporal import running_temporal

        with running_temporal(home / "temporal") as address:
            results = asyncio.run(_measure(home, address, args.rounds, image))
        if len(results) > 1:
            ratios = [k.total / r.total for k, r in results]
            print(f"ratios: {', '.join(f'{x:.2f}' for x in ratios)}")


if __name__ == "__main__":
    main()
