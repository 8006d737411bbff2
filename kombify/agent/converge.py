"""ApplyServices: converge the node's containers to a manifest, health-gated, with rollback.

Rules (docs/agent.md has the long form):
- a service whose containers all carry the desired config hash, run, and have their canonical
  names is left alone (same container ids);
- a changed service gets new containers; the old ones are stopped and parked under another
  name until the new ones pass their health check, then removed;
- a new revision that fails its health check is removed and the parked containers are
  renamed back and started: the previous revision serves again, and the outcome says why;
- containers of services no longer in the manifest are stopped and removed;
- what a replacement parks is written to the rollout journal first, so an agent that died
  midway (killed, node stopped) undoes the replacement when it starts again (``recover``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from kombify.agent import manifest as mf
from kombify.agent.engine import Engine, Managed
from kombify.agent.health import Probe, describe, health_word, wait_healthy
from kombify.agent.proto import pb
from kombify.agent.state import ManifestStore, Parked, RolloutJournal
from kombify.errors import DockerError

Emit = Callable[[pb.ApplyEvent], None]
_PARKED = ".old-"
# Services converged at once on one node: enough to overlap the engine's waits, few enough
# for a Raspberry Pi.
PARALLEL_SERVICES = 4
_NOT_OK = (pb.OUTCOME_ROLLED_BACK, pb.OUTCOME_FAILED)
T = TypeVar("T")


def event(
    kind: pb.ApplyEvent.Kind, service: str, message: str, ids: Sequence[str] = ()
) -> pb.ApplyEvent:
    """One progress event of an apply."""
    return pb.ApplyEvent(kind=kind, service=service, message=message, container_ids=list(ids))


def _outcome(
    spec: pb.ServiceSpec, outcome: pb.Outcome, ids: Sequence[str], reason: str = ""
) -> pb.ServiceOutcome:
    return pb.ServiceOutcome(
        service=spec.name,
        outcome=outcome,
        reason=reason,
        container_ids=list(ids),
        config_hash=mf.config_hash(spec),
    )


class Converger:
    """Applies manifests to one node's engine, one at a time (the caller holds a lock).

    Args:
        engine: The node's Docker engine, scoped to this node's containers.
        store: Where the manifest in effect and the previous one are kept.
        health: Last known health per container id; updated by every check made here.
    """

    def __init__(self, engine: Engine, store: ManifestStore, health: dict[str, str]) -> None:
        self.engine = engine
        self.store = store
        self.health = health
        self.journal = RolloutJournal(store.dir)

    async def recover(self, emit: Emit) -> int:
        """Settles the replacements an earlier agent left unfinished; how many there were.

        An unfinished replacement is undone: the containers it created are removed and the
        parked ones get their names back and run again, as a failed health check would have
        done. One whose new containers had passed already only removes the parked leftovers.

        Raises:
            DockerError: The engine does not answer (yet); the journal is kept for a retry.
        """
        entries = self.journal.entries()
        for entry in entries:
            await self._recover_service(entry, emit)
            self.journal.end(entry.service)
        return len(entries)

    async def _recover_service(self, entry: Parked, emit: Emit) -> None:
        items = await self._run(self.engine.containers, entry.service)
        if entry.committed:
            for item in items:
                if item.id in entry.parked:
                    await self.stop_remove(item)
            return
        for item in items:  # what the interrupted replacement created
            if item.id not in entry.parked and item.id not in entry.kept:
                await self.stop_remove(item)
        restored = []
        for item in items:
            original = entry.parked.get(item.id)
            if original is None:
                continue
            if item.name != original:
                try:
                    await self._run(self.engine.rename, item.id, original)
                except DockerError:  # two leftovers claimed one name: keep the first
                    await self.stop_remove(item)
                    continue
            if not item.running:
                await self._run(self.engine.start, item.id)
            restored.append(item.id)
        emit(
            event(
                pb.ApplyEvent.ROLLED_BACK,
                entry.service,
                "an interrupted replacement was undone: the previous revision runs again",
                sorted(restored),
            )
        )

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(fn, *args)

    async def apply(self, manifest: pb.Manifest, emit: Emit) -> pb.ApplyResult:
        """Converges the node to ``manifest``, emitting progress; ends with a DONE event.

        Raises:
            ManifestInvalid: The manifest cannot be applied; nothing was changed.
            DockerError: The engine cannot even list containers.
        """
        mf.validate(manifest)
        await self.recover(emit)  # a journal the start-up could not settle yet (engine down)
        revision = mf.manifest_revision(manifest)
        before = {s.name: s for s in (self.store.current() or pb.Manifest()).services}
        existing: dict[str, list[Managed]] = defaultdict(list)
        for item in await self._run(self.engine.containers):
            existing[item.service].append(item)
        wanted = {s.name for s in manifest.services}
        gone = sorted(set(existing) - wanted)
        emit(
            event(
                pb.ApplyEvent.PLAN,
                "",
                f"revision {revision}: {len(wanted)} service(s), {len(gone)} to remove",
            )
        )
        # Services are independent (each has its own containers, names and host ports), so
        # they converge side by side, a few at a time, like `docker compose up` does.
        slots = asyncio.Semaphore(PARALLEL_SERVICES)

        async def one(spec: pb.ServiceSpec) -> pb.ServiceOutcome:
            async with slots:
                old = before.get(spec.name)
                return await self._service(spec, existing.get(spec.name, []), old, revision, emit)

        outcomes = list(await asyncio.gather(*(one(spec) for spec in manifest.services)))
        effective: list[pb.ServiceSpec] = []
        for spec, done in zip(manifest.services, outcomes, strict=True):
            old = before.get(spec.name)
            if done.outcome not in _NOT_OK:
                effective.append(spec)
            elif old is not None:  # the previous revision is what runs (or is meant to)
                effective.append(old)
        for name in gone:
            outcomes.append(await self._remove_service(name, existing[name], emit))
        ok = all(o.outcome not in _NOT_OK for o in outcomes)
        in_effect = revision if ok else f"{revision}+rollback"
        self.store.save(pb.Manifest(revision=in_effect, services=effective))
        result = pb.ApplyResult(revision=in_effect, ok=ok, services=outcomes)
        emit(
            pb.ApplyEvent(kind=pb.ApplyEvent.DONE, message="ok" if ok else "failed", result=result)
        )
        return result

    async def _service(
        self,
        spec: pb.ServiceSpec,
        existing: list[Managed],
        old_spec: pb.ServiceSpec | None,
        revision: str,
        emit: Emit,
    ) -> pb.ServiceOutcome:
        try:
            return await self._converge_service(spec, existing, old_spec, revision, emit)
        except DockerError as exc:
            emit(event(pb.ApplyEvent.FAILED, spec.name, exc.message))
            return _outcome(spec, pb.OUTCOME_FAILED, [], exc.message)

    async def _converge_service(
        self,
        spec: pb.ServiceSpec,
        existing: list[Managed],
        old_spec: pb.ServiceSpec | None,
        revision: str,
        emit: Emit,
    ) -> pb.ServiceOutcome:
        want_hash, count = mf.config_hash(spec), mf.replicas(spec)
        good: dict[int, Managed] = {}
        for item in existing:
            canonical = item.name == self.engine.container_name(spec.name, item.replica)
            if item.config_hash == want_hash and item.replica < count and canonical:
                good.setdefault(item.replica, item)
        keep_ids = {item.id for item in good.values()}
        stale = [item for item in existing if item.id not in keep_ids]
        missing = [i for i in range(count) if i not in good]
        stopped = [item for item in good.values() if not item.running]
        kept = [good[i].id for i in sorted(good)]

        if not missing and not stale and not stopped:
            emit(event(pb.ApplyEvent.UNCHANGED, spec.name, "unchanged", kept))
            return _outcome(spec, pb.OUTCOME_UNCHANGED, kept)
        if stopped:
            for item in stopped:
                await self._run(self.engine.start, item.id)
            emit(event(pb.ApplyEvent.STARTED, spec.name, "started stopped containers", kept))
        if not missing:  # scaled down, stopped replicas or crash leftovers
            for item in stale:
                await self.stop_remove(item)
            probe = await self._check(spec, list(good.values()), emit)
            if not probe.ok:
                emit(event(pb.ApplyEvent.FAILED, spec.name, probe.detail, kept))
                return _outcome(spec, pb.OUTCOME_FAILED, kept, probe.detail)
            kind = pb.OUTCOME_UPDATED if stale else pb.OUTCOME_STARTED
            return _outcome(spec, kind, kept)
        return await self._replace(spec, existing, stale, missing, kept, old_spec, revision, emit)

    async def _replace(
        self,
        spec: pb.ServiceSpec,
        existing: list[Managed],
        stale: list[Managed],
        missing: list[int],
        kept: list[str],
        old_spec: pb.ServiceSpec | None,
        revision: str,
        emit: Emit,
    ) -> pb.ServiceOutcome:
        # Before anything is stopped: an image the node lacks fails the service untouched.
        await self._run(self.engine.ensure_image, spec.image)
        if stale:  # on disk before the first stop: an agent that dies midway undoes it
            self.journal.begin(
                Parked(
                    service=spec.name,
                    parked={item.id: item.name.split(_PARKED)[0] for item in stale},
                    kept=tuple(kept),
                )
            )
        parked = await self._park(stale)
        emit(event(pb.ApplyEvent.CREATING, spec.name, f"creating {len(missing)} container(s)"))
        created: list[Managed] = []
        try:
            for replica in missing:
                created.append(await self.create(spec, replica, revision))
            emit(event(pb.ApplyEvent.STARTED, spec.name, "started", [c.id for c in created]))
            probe = await self._check(spec, created, emit)
        except DockerError as exc:
            probe = Probe(False, exc.message)
        if probe.ok:
            if parked:
                self.journal.commit(spec.name)
            for item, _ in parked:
                await self._run(self.engine.remove, item.id)
            self.journal.end(spec.name)
            ids = sorted([*kept, *(c.id for c in created)])
            return _outcome(spec, pb.OUTCOME_UPDATED if existing else pb.OUTCOME_CREATED, ids)

        reason = probe.detail
        if created:
            tail = await self._run(self.engine.log_tail, created[0].id, 10)
            reason += f"; last log lines of `{created[0].name}`:\n{tail}" if tail else ""
        for item in created:
            await self._run(self.engine.remove, item.id)
            self.health.pop(item.id, None)
        if not parked:
            why = f"new service is unhealthy and there is no previous revision: {reason}"
            emit(event(pb.ApplyEvent.FAILED, spec.name, why))
            return _outcome(spec, pb.OUTCOME_FAILED, kept, why)
        outcome = await self._rollback(spec, parked, kept, old_spec, reason, emit)
        self.journal.end(spec.name)
        return outcome

    async def create(self, spec: pb.ServiceSpec, replica: int, revision: str) -> Managed:
        """Creates and starts one replica of ``spec`` (the apply's way; repairs use it too)."""
        return await asyncio.to_thread(self.engine.create, spec, replica, revision=revision)

    async def _park(self, stale: list[Managed]) -> list[tuple[Managed, str]]:
        """Stops the old containers and frees their names; returns them with those names."""
        parked = []
        for item in stale:
            if item.running:
                await self._run(self.engine.stop, item)
            original = item.name.split(_PARKED)[0]
            if _PARKED not in item.name:
                await self._run(self.engine.rename, item.id, f"{original}{_PARKED}{item.id[:8]}")
            parked.append((item, original))
        return parked

    async def _rollback(
        self,
        spec: pb.ServiceSpec,
        parked: list[tuple[Managed, str]],
        kept: list[str],
        old_spec: pb.ServiceSpec | None,
        reason: str,
        emit: Emit,
    ) -> pb.ServiceOutcome:
        restored: list[Managed] = []
        for item, original in parked:
            try:
                await self._run(self.engine.rename, item.id, original)
            except DockerError:  # two leftovers claimed one name (after a crash): keep one
                await self._run(self.engine.remove, item.id)
                continue
            await self._run(self.engine.start, item.id)
            restored.append(item)
        # The old containers are checked against the spec that made them, when it is known.
        check_spec = pb.ServiceSpec(name=spec.name)
        if (
            old_spec is not None
            and restored
            and restored[0].config_hash == mf.config_hash(old_spec)
        ):
            check_spec = old_spec
        back = await self._check(check_spec, restored, emit)
        state = "serves again" if back.ok else f"is not healthy either ({back.detail})"
        why = f"new revision unhealthy: {reason}"
        ids = sorted([*kept, *(r.id for r in restored)])
        emit(event(pb.ApplyEvent.ROLLED_BACK, spec.name, f"{why}; previous revision {state}", ids))
        return _outcome(spec, pb.OUTCOME_ROLLED_BACK, ids, why)

    async def _check(self, spec: pb.ServiceSpec, items: list[Managed], emit: Emit) -> Probe:
        if not items:
            return Probe(True, "nothing to check")
        ids = [i.id for i in items]
        emit(event(pb.ApplyEvent.HEALTH_CHECKING, spec.name, describe(spec.healthcheck), ids))
        probe = await wait_healthy(self.engine, spec, items)
        for item in items:
            self.health[item.id] = health_word(spec, probe)
        kind = pb.ApplyEvent.HEALTHY if probe.ok else pb.ApplyEvent.UNHEALTHY
        emit(event(kind, spec.name, probe.detail, ids))
        return probe

    async def stop_remove(self, item: Managed) -> None:
        """Stops a container (its grace period allowed), removes it and forgets its health."""
        if item.running:
            await self._run(self.engine.stop, item)
        await self._run(self.engine.remove, item.id)
        self.health.pop(item.id, None)

    async def _remove_service(
        self, name: str, items: list[Managed], emit: Emit
    ) -> pb.ServiceOutcome:
        for item in items:
            await self.stop_remove(item)
        ids = [i.id for i in items]
        emit(event(pb.ApplyEvent.REMOVED, name, "removed: no longer in the manifest", ids))
        return pb.ServiceOutcome(service=name, outcome=pb.OUTCOME_REMOVED, container_ids=ids)
