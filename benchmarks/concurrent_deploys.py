"""Deploying several stacks at once, with one and with two workers, against one after another.

What is measured, in one run (wall-clock seconds on this machine):

one after another (the baseline)
    N stacks (default 8), each one ``provider: sim`` node with two services
    (``tests/support/kombinations.one_node``, as in the e2e tests and benchmarks/deploy.py),
    deployed by one worker: each deploy is started through the API once the previous one has
    finished. Every deploy starts from nothing: kombify creates the stack's simulated node
    (PrepareDeployment), bootstraps it with OpenTofu, installs the agent, ships the image and
    rolls out both services, health-gated.
at once, 1 worker
    The same N stacks (new names, new nodes), all started through the API together, one
    worker process polling the task queue.
at once, 2 workers
    The same again with a second worker process polling the same task queue.

A deploy ends when its workflow's result arrives (Temporal), and the phase when its last
deploy has ended. The speed-up is the baseline's wall time over the phase's. Each phase also
shows how busy the machine's CPUs were (from /proc/stat: every process counts, this run's
simulated nodes, workers, API, Temporal and PostgreSQL, and anything else running), and the
load average, since on a small machine the cores are what deploys at once compete for.

Everything runs as kombify scaled out would: ``kombify api`` and ``kombify worker``
processes sharing one KOMBIFY_HOME and a PostgreSQL database, a Temporal dev server started
apart from them (``KOMBIFY_TEMPORAL_ADDRESS``). Before the phases, one stack is deployed and
thrown away (imports, the agent bundle, the first OpenTofu run); before the two-worker
phase, two stacks at once likewise, so the second worker starts warm too. Every phase's
nodes are removed before the next phase starts, so each phase creates N nodes on an engine
with none.

Everything it needs is started here and removed at the end: a temp KOMBIFY_HOME, PostgreSQL,
the Temporal dev server, the processes, uniquely named simulations. Traffic stays on
127.0.0.1. Loops are bounded in count and time.

Usage: .venv/bin/python benchmarks/concurrent_deploys.py [--stacks 8] [--keep-home]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _setup import bench_home, images, tests_support

from kombify import sim

if TYPE_CHECKING:
    from tests.support.cluster import Cluster

DEPLOY_TIMEOUT = 600.0


@dataclass
class Phase:
    """One way of deploying N stacks, and what it took."""

    label: str
    wall: float
    deploys: list[float]  # seconds from start request to result, per stack
    per_worker: Counter[int]  # activity attempts run, by worker pid
    busy: float  # share of the machine's CPU time that was busy during the phase (0-1)


async def _deploy(cluster: Cluster, stack: str) -> tuple[float, dict[str, Any]]:
    """Start one stack's deploy through the API; seconds until its workflow's result."""
    from tests.support.kombinations import one_node

    client = await cluster.client()
    started = time.monotonic()
    run = await cluster.start(one_node(stack))
    handle = client.get_workflow_handle(run["workflow_id"])
    await asyncio.wait_for(handle.result(), timeout=DEPLOY_TIMEOUT)
    took = time.monotonic() - started
    final = await cluster.call("GET", f"/v1/deployments/{run['id']}")
    if final["state"] != "succeeded":
        raise RuntimeError(f"deploy of {stack} ended {final['state']}: {final['summary']}")
    return took, run


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (every process counts)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def _phase(cluster: Cluster, label: str, count: int, *, at_once: bool) -> Phase:
    tag = secrets.token_hex(2)
    stacks = [f"kbc-{tag}-{i}" for i in range(count)]
    cluster.stacks.extend(stacks)
    busy_before, total_before = _cpu_ticks()
    started = time.monotonic()
    if at_once:
        results = await asyncio.gather(*(_deploy(cluster, s) for s in stacks))
    else:
        results = [await _deploy(cluster, s) for s in stacks]
    wall = time.monotonic() - started
    busy_after, total_after = _cpu_ticks()
    busy = (busy_after - busy_before) / max(1, total_after - total_before)
    per_worker: Counter[int] = Counter()
    for _, run in results:
        per_worker.update(pid for _, pid in await cluster.activity_workers(run))
    await _remove(cluster, stacks)
    phase = Phase(label, wall, [took for took, _ in results], per_worker, busy)
    _print_phase(phase)
    return phase


async def _remove(cluster: Cluster, stacks: list[str]) -> None:
    """Delete the stacks' simulated nodes (the next phase starts on an engine without them)."""
    await asyncio.gather(*(asyncio.to_thread(sim.delete_simulation, s) for s in stacks))
    for stack in stacks:
        cluster.stacks.remove(stack)


async def _warm_up(cluster: Cluster, count: int) -> None:
    tag = secrets.token_hex(2)
    stacks = [f"kbw-{tag}-{i}" for i in range(count)]
    cluster.stacks.extend(stacks)
    await asyncio.gather(*(_deploy(cluster, s) for s in stacks))
    await _remove(cluster, stacks)


async def _measure(home: Path, address: str, database_url: str, count: int) -> list[Phase]:
    from tests.support.cluster import Cluster

    cluster = Cluster(home, address, database_url)
    try:
        cluster.start_worker(0)
        await cluster.start_api(0)
        cluster.connect_apis()
        await cluster.wait_for_pollers()
        await _warm_up(cluster, 1)
        phases = [
            await _phase(cluster, "one after another, 1 worker", count, at_once=False),
            await _phase(cluster, "at once, 1 worker", count, at_once=True),
        ]
        cluster.start_worker(1)
        await cluster.wait_for_pollers()
        await _warm_up(cluster, 2)
        phases.append(await _phase(cluster, "at once, 2 workers", count, at_once=True))
        return phases
    finally:
        await cluster.close()


def _print_phase(phase: Phase) -> None:
    workers = ", ".join(f"pid {pid}: {n}" for pid, n in sorted(phase.per_worker.items()))
    print(
        f"{phase.label}: {phase.wall:.2f} s for {len(phase.deploys)} stacks; each deploy "
        f"median {statistics.median(phase.deploys):.2f} s, min {min(phase.deploys):.2f}, "
        f"max {max(phase.deploys):.2f}; activities run by worker: {workers}; "
        f"CPUs busy {phase.busy:.0%}; load average after {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def _summary(phases: list[Phase]) -> None:
    baseline = phases[0]
    print(f"\nsummary ({len(baseline.deploys)} one-node stacks, {os.cpu_count()} CPUs)")
    for phase in phases:
        ratio = baseline.wall / phase.wall
        print(
            f"  {phase.label:<30}{phase.wall:8.2f} s   "
            f"per stack {phase.wall / len(phase.deploys):5.2f} s   speed-up {ratio:4.2f}x   "
            f"CPUs busy {phase.busy:.0%}"
        )


async def _database(server: str) -> str:
    """A database of its own on the throwaway server."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "kombify"'))
    admin.dispose()
    return server.rsplit("/", 1)[0] + "/kombify"


def main() -> None:
    """Set up, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stacks", type=int, default=8, help="stacks per phase (2-12)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    args = parser.parse_args()
    if not 2 <= args.stacks <= 12:
        parser.error("--stacks must be between 2 and 12")

    pg_base = Path(tempfile.mkdtemp(prefix="kombify-bench-pg-"))  # PostgreSQL runs as postgres
    try:
        with bench_home("kombify-bench-concurrent-", keep=args.keep_home) as home:
            node_image, image = images()
            print(f"node image {node_image}, service image {image}, {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.1f}, home {home}", flush=True)
            tests_support()
            from tests.support.postgres import running_postgres
            from tests.support.temporal import running_temporal

            with (
                running_postgres(pg_base) as server,
                running_temporal(home / "temporal") as address,
            ):
                database_url = asyncio.run(_database(server))
                phases = asyncio.run(_measure(home, address, database_url, args.stacks))
            _summary(phases)
    finally:
        shutil.rmtree(pg_base, ignore_errors=True)


if __name__ == "__main__":
    main()
