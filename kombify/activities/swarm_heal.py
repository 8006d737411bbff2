"""HealSwarm: the swarm part of a heal pass on a swarm kit.

Swarm reschedules the tasks of a node that went down and restarts failed ones by itself. What
it cannot do alone kombify does here: a node of the stack that is back but out of the swarm
(its swarm state lost, or it left) is joined again, labelled and given its role; a swarm
whose managers lost their quorum is reported, so the heal pass opens an incident.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.deploy import stack_workdir
from kombify.activities.heal import HealActivities
from kombify.activities.swarm import SwarmActivities, read_swarm_manifest
from kombify.contracts.heal import StackRef
from kombify.contracts.swarm import SwarmHealth, SwarmInput
from kombify.errors import HostKeyChangedError, KombifyError, SshError
from kombify.unifier.swarm import SWARM_MANIFEST_FILE


class SwarmHealActivities:
    """Activities of the heal pass that look after a swarm kit's swarm."""

    def __init__(self, heal: HealActivities, swarm: SwarmActivities) -> None:
        self.heal = heal
        self.swarm = swarm

    def _request(self, ref: StackRef) -> SwarmInput | None:
        deployed = self.heal._deployed(ref)
        if deployed is None:
            return None
        workdir = stack_workdir(self.heal.deploy.settings, ref.organisation, ref.stack)
        if not (workdir / SWARM_MANIFEST_FILE).exists():
            return None
        k = deployed.kombination
        _, targets, instances = self.heal.deploy._targets(k, deployed.simulate, create=False)
        pinned = []
        for target in targets:  # one node whose SSH is not up yet must not hide the others
            try:
                pinned += self.heal.deploy._pin(deployed.stack, k, [target], instances)[1]
            except HostKeyChangedError:
                raise  # not the node it was: that is for the owner to look at
            except SshError:
                continue
        # No deployment id: a heal pass writes no deploy log (its incidents say what it did).
        return SwarmInput("", deployed.stack.id, str(workdir), pinned)

    @activity.defn(name="HealSwarm")
    async def heal_swarm(self, ref: StackRef) -> SwarmHealth:
        """Re-joins nodes that are back but out of the swarm; reports a lost quorum."""
        try:
            request = await asyncio.to_thread(self._request, ref)
            if request is None:
                return SwarmHealth(swarm=False)
            labels = {n["name"]: n["labels"] for n in read_swarm_manifest(request.workdir)["nodes"]}
            async with self.swarm._connected(request, reachable_only=True) as nodes:
                statuses = await asyncio.gather(*(n.agent.swarm_status() for n in nodes))
                managers = [(n, s) for n, s in zip(nodes, statuses, strict=True) if s.is_manager]
                if not any(s.quorum for _, s in managers):
                    return SwarmHealth(swarm=True, quorum=False, detail=_quorum_text(managers))
                formed = await self.swarm._form(request, nodes, labels)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=False) from exc
        return SwarmHealth(
            swarm=True,
            quorum=formed.quorum,
            rejoined=formed.joined,
            detail=f"{formed.managers} manager(s), {formed.workers} worker(s)",
        )

    def all(self) -> list[Any]:
        """The activities to register."""
        return [self.heal_swarm]


def _quorum_text(managers: list[tuple[Any, Any]]) -> str:
    reached = ", ".join(sorted(n.name for n, _ in managers)) or "none"
    return (
        f"the swarm's managers have lost their quorum (managers that answer: {reached}); "
        "start the stopped managers, or re-initialise the swarm from one of them "
        "(`docker swarm init --force-new-cluster`) and apply again"
    )
