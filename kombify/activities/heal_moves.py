"""The ``reschedule`` strategy: run a down node's services on other nodes until it returns.

The services come from the last good deploy's plan (never the node itself, which is down).
A receiving node must answer, have a role the kit runs applications on, free host ports for
the service, and room for its memory (when the node states its memory). What moved where is
kept in ``moves.json`` beside the stack's OpenTofu directory, so that several nodes down at
once share their receivers correctly, and a worker restart loses nothing. When the node
returns, every receiver runs its own plan again; a new deploy makes the plan true anyway.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import to_proto_manifest
from kombify.activities.deploy import stack_workdir
from kombify.activities.heal import HealActivities
from kombify.contracts.heal import MoveResult, NodeRef
from kombify.errors import KombifyError
from kombify.specs.quantities import format_quantity, parse_quantity
from kombify.stackkits.library import load_library
from kombify.unifier import unify

MOVES_FILE = "moves.json"


def _host_ports(services: list[dict[str, Any]]) -> set[tuple[int, str]]:
    return {
        (int(p["host"]), p.get("protocol") or "tcp")
        for s in services
        for p in s.get("ports", [])
        if p.get("host")
    }


def _memory(services: list[dict[str, Any]]) -> int:
    return sum(
        (parse_quantity(s.get("memory")) or 0) * int(s.get("replicas") or 1) for s in services
    )


@asynccontextmanager
async def _moves_lock(directory: Path) -> AsyncIterator[None]:
    """Exclusive use of a stack's moves, between coroutines, threads and worker processes.

    An ``flock`` of a descriptor of its own (not :func:`kombify.locks.directory_lock`, which
    is re-entrant per thread: two activities on one event loop would both pass it), taken on
    a thread so that waiting never blocks the event loop.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class MoveActivities:
    """Moves a down node's services away, and back when it returns.

    Args:
        heal: The healing activities (what is deployed, how to reach a node).
    """

    def __init__(self, heal: HealActivities) -> None:
        self.heal = heal
        self.settings = heal.deploy.settings

    def _dir(self, ref: NodeRef) -> Path:
        return stack_workdir(self.settings, ref.organisation, ref.stack).parent

    def _read(self, ref: NodeRef) -> dict[str, dict[str, str]]:
        path = self._dir(ref) / MOVES_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _write(self, ref: NodeRef, moves: dict[str, dict[str, str]]) -> None:
        path = self._dir(ref) / MOVES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(moves, indent=2, sort_keys=True))
        tmp.replace(path)

    def forget(self, organisation: str, stack: str) -> None:
        """A deploy rolled out the plan everywhere: nothing is moved any more (one unlink,
        atomic, so it needs no lock)."""
        ref = NodeRef(organisation, stack, "")
        (self._dir(ref) / MOVES_FILE).unlink(missing_ok=True)

    def _receiver_manifest(
        self, plan: dict[str, dict[str, Any]], receiver: str, moves: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        """A receiver's plan, plus every service moved to it."""
        own = plan.get(receiver, {"services": []})
        moved = [
            next(s for s in plan[m["from"]]["services"] if s["name"] == name)
            for name, m in sorted(moves.items())
            if m["to"] == receiver
        ]
        return {**own, "services": [*own.get("services", []), *moved]}

    async def _apply(self, ref: NodeRef, receiver: str, manifest: dict[str, Any]) -> None:
        target_ref = NodeRef(ref.organisation, ref.stack, receiver)
        _, target = await asyncio.to_thread(self.heal._reach, target_ref)
        if target is None:
            raise KombifyError(f"node `{receiver}` does not run")
        revision = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
        async with self.heal._connected(target_ref, target) as (session, client):
            # The receiver may never have run these images: ship what it lacks, as a rollout.
            images = sorted({s["image"] for s in manifest.get("services", []) if s.get("image")})
            await self.heal.agent._ship_images(
                session, client, images, lambda _: activity.heartbeat(receiver)
            )
            result = await client.apply(
                to_proto_manifest(manifest, revision), lambda _: activity.heartbeat(receiver)
            )
        if not result.ok:
            failed = [s.service for s in result.services if s.outcome in (5, 6)]
            raise KombifyError(f"node `{receiver}` could not run {', '.join(failed)}")

    async def _answers(self, ref: NodeRef) -> bool:
        try:
            _, target = await asyncio.to_thread(self.heal._reach, ref)
            if target is None:
                return False
            async with asyncio.timeout(20), self.heal._client(ref, target) as client:
                await client.health()
        except (KombifyError, TimeoutError, OSError):
            return False
        return True

    @activity.defn(name="RescheduleServices")
    async def move_away(self, ref: NodeRef) -> MoveResult:
        """Run the services of ``ref``'s node (down) on other nodes that can take them."""
        deployed = await asyncio.to_thread(self.heal._deployed, ref.stack_ref)
        if deployed is None:
            return MoveResult(left=["the stack is not deployed"])
        k = deployed.kombination
        plan = unify(k).manifests
        kit = load_library().kit(k.spec.stackkit_name)
        candidates = [n for n in k.spec.nodes if n.name != ref.node and n.role in kit.app_roles]
        answering = [
            n
            for n in candidates
            if await self._answers(NodeRef(ref.organisation, ref.stack, n.name))
        ]
        result = MoveResult()
        async with _moves_lock(self._dir(ref)):
            moves = self._read(ref)
            for service in plan.get(ref.node, {}).get("services", []):
                name = service["name"]
                if name in moves:
                    continue
                why, receiver = self._pick(plan, moves, service, answering)
                if receiver is None:
                    result.left.append(f"{name}: {why}")
                    continue
                moves[name] = {"from": ref.node, "to": receiver}
            # Written before any receiver is touched, and every receiver of this node applied
            # again on each attempt: a retry after a half-done move finishes it.
            self._write(ref, moves)
            mine = sorted((n, m["to"]) for n, m in moves.items() if m["from"] == ref.node)
            result.moved = [f"{name} -> {receiver}" for name, receiver in mine]
            for receiver in sorted({receiver for _, receiver in mine}):
                try:
                    await self._apply(ref, receiver, self._receiver_manifest(plan, receiver, moves))
                except KombifyError as exc:
                    raise ApplicationError(exc.message, type=exc.code) from exc
        return result

    def _pick(
        self,
        plan: dict[str, dict[str, Any]],
        moves: dict[str, dict[str, str]],
        service: dict[str, Any],
        answering: list[Any],
    ) -> tuple[str, str | None]:
        """The least loaded node that can take ``service``, or why there is none."""
        if not answering:
            return "no other node that runs applications answers", None
        reasons: list[str] = []
        fits: list[tuple[int, str]] = []
        for node in answering:
            running = self._receiver_manifest(plan, node.name, moves)["services"]
            if any(s["name"] == service["name"] for s in running):
                reasons.append(f"{node.name} runs it already")
                continue
            clash = _host_ports([service]) & _host_ports(running)
            if clash:
                port, proto = sorted(clash)[0]
                reasons.append(f"{node.name} uses host port {port}/{proto}")
                continue
            have = parse_quantity(node.resources.memory) if node.resources else None
            need = _memory([*running, service])
            if have is not None and need > have:
                reasons.append(
                    f"{node.name} has {format_quantity(have)} of memory, "
                    f"needs {format_quantity(need)}"
                )
                continue
            fits.append((len(running), node.name))
        if not fits:
            return "; ".join(reasons), None
        return "", min(fits)[1]

    @activity.defn(name="ReturnServices")
    async def move_back(self, ref: NodeRef) -> MoveResult:
        """The node is back: its services leave the nodes that stood in for it."""
        deployed = await asyncio.to_thread(self.heal._deployed, ref.stack_ref)
        result = MoveResult()
        async with _moves_lock(self._dir(ref)):
            moves = self._read(ref)
            back = {name: m for name, m in moves.items() if m["from"] == ref.node}
            if not back or deployed is None:
                return result
            remaining = {name: m for name, m in moves.items() if m["from"] != ref.node}
            plan = unify(deployed.kombination).manifests
            for receiver in sorted({m["to"] for m in back.values()}):
                try:
                    await self._apply(
                        ref, receiver, self._receiver_manifest(plan, receiver, remaining)
                    )
                except KombifyError as exc:
                    raise ApplicationError(exc.message, type=exc.code) from exc
            self._write(ref, remaining)
            result.moved.extend(f"{name} -> {ref.node}" for name in sorted(back))
        return result

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.move_away, self.move_back]
