"""RepairService: bring one service back to its spec, touching only what needs it.

AUTO, per replica: a missing container is created (as an apply creates it), a stopped one
started, a restarting or unhealthy one restarted; healthy replicas are left alone. The
touched ones are then health-checked, and one still unhealthy after its start or restart is
removed and created anew, once (the "restart or recreate" ladder). RECREATE removes the
service's containers and creates them anew from the spec (what repairs drift). The caller
holds the node's lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from kombify.agent import manifest as mf
from kombify.agent.converge import Converger
from kombify.agent.engine import Engine, Managed
from kombify.agent.health import Probe, health_word, wait_healthy
from kombify.agent.proto import pb
from kombify.agent.watch import by_replica, choose, serving
from kombify.errors import DockerError

LOG_TAIL_LINES = 20


@dataclass
class Repaired:
    """What a repair did.

    Attributes:
        actions: One entry per container touched ("restarted web-0").
        probe: The service's health check afterwards.
        containers: The service's containers afterwards.
        log_tail: Their last log lines when not healthy.
    """

    actions: list[str] = field(default_factory=list)
    probe: Probe = Probe(True, "")
    containers: list[Managed] = field(default_factory=list)
    log_tail: str = ""


class Repairer:
    """Repairs services of one node.

    Args:
        engine: The node's engine.
        converger: Creates and removes containers the way an apply does.
        health: The servicer's health map, updated with the final check.
    """

    def __init__(self, engine: Engine, converger: Converger, health: dict[str, str]) -> None:
        self.engine = engine
        self.converger = converger
        self.health = health

    async def repair(
        self,
        spec: pb.ServiceSpec,
        revision: str,
        *,
        recreate: bool,
        unhealthy: Callable[[Managed], str | None],
    ) -> Repaired:
        """Repairs ``spec``'s containers.

        Args:
            spec: The service as the manifest in effect has it.
            revision: The revision in effect (new containers carry it, as an apply's would).
            recreate: RECREATE instead of AUTO.
            unhealthy: The health monitor's verdict on a running container.

        Raises:
            DockerError: The engine does not even list the service's containers.
        """
        items = await asyncio.to_thread(self.engine.containers, spec.name)
        done = Repaired()
        try:
            if recreate:
                await self._recreate_all(spec, revision, items, done)
            else:
                await self._auto(spec, revision, items, done, unhealthy)
        except DockerError as exc:
            done.probe = Probe(False, exc.message)
        done.containers = await asyncio.to_thread(self.engine.containers, spec.name)
        replicas = serving(self.engine, spec, done.containers)
        if done.probe.ok:
            done.probe = await wait_healthy(self.engine, spec, replicas)
        for item in replicas:
            self.health[item.id] = health_word(spec, done.probe)
        if not done.probe.ok:
            done.log_tail = await self._log_tail(done.containers)
        return done

    def _label(self, spec: pb.ServiceSpec, replica: int) -> str:
        return f"{spec.name}-{replica}"

    async def _auto(
        self,
        spec: pb.ServiceSpec,
        revision: str,
        items: list[Managed],
        done: Repaired,
        unhealthy: Callable[[Managed], str | None],
    ) -> None:
        groups = by_replica(items)
        retry: dict[int, Managed] = {}  # replicas started or restarted: the ladder's rung two
        for replica in range(mf.replicas(spec)):
            label = self._label(spec, replica)
            item = choose(groups.get(replica, []), self.engine.container_name(spec.name, replica))
            if item is None:
                await asyncio.to_thread(self.engine.ensure_image, spec.image)
                await self.converger.create(spec, replica, revision)
                done.actions.append(f"created {label}")
            elif item.state == "restarting" or (item.running and unhealthy(item) is not None):
                await asyncio.to_thread(self.engine.restart, item)
                done.actions.append(f"restarted {label}")
                retry[replica] = item
            elif item.state == "dead":  # Docker cannot start a dead container again
                await self._recreate(spec, revision, replica, item, done)
            elif not item.running and item.state != "paused":
                await asyncio.to_thread(self.engine.start, item.id)
                done.actions.append(f"started {label}")
                retry[replica] = item
        if not retry:
            return
        fresh = [await asyncio.to_thread(self.engine.get, i.id) for i in retry.values()]
        results = await asyncio.gather(*(wait_healthy(self.engine, spec, [i]) for i in fresh))
        for (replica, item), probe in zip(retry.items(), results, strict=True):
            if not probe.ok:
                await self._recreate(spec, revision, replica, item, done)

    async def _recreate(
        self, spec: pb.ServiceSpec, revision: str, replica: int, item: Managed, done: Repaired
    ) -> None:
        await asyncio.to_thread(self.engine.ensure_image, spec.image)
        await self.converger.stop_remove(item)
        await self.converger.create(spec, replica, revision)
        done.actions.append(f"recreated {self._label(spec, replica)}")

    async def _recreate_all(
        self, spec: pb.ServiceSpec, revision: str, items: list[Managed], done: Repaired
    ) -> None:
        # Before anything is removed: an image the node lacks leaves the service untouched.
        await asyncio.to_thread(self.engine.ensure_image, spec.image)
        count = mf.replicas(spec)
        had: set[int] = set()
        for item in items:
            await self.converger.stop_remove(item)
            if item.replica >= count or item.replica in had:  # extras and duplicates go
                done.actions.append(f"removed {item.name}")
            had.add(item.replica)
        for replica in range(count):
            await self.converger.create(spec, replica, revision)
            verb = "recreated" if replica in had else "created"
            done.actions.append(f"{verb} {self._label(spec, replica)}")

    async def _log_tail(self, items: list[Managed]) -> str:
        parts = []
        for item in items:
            tail = await asyncio.to_thread(self.engine.log_tail, item.id, LOG_TAIL_LINES)
            if tail:
                parts.append(f"`{item.name}`:\n{tail}")
        return "\n".join(parts)
