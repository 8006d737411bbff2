"""The health monitor: probes running service containers at their check's interval.

Docker never restarts a container because a health check fails, and the agent's checks are
its own (not Docker's HEALTHCHECK), so this is what notices a container turning unhealthy.
Docker's semantics: failures within the start period do not count, ``retries`` failures in
a row make a container unhealthy, one success makes it healthy. Verdicts go into the
servicer's health map (what ListServices reports) and wake the watchers when they change.

Cheap by design: one probe per container per interval, at most :data:`PARALLEL_PROBES` at
once, never two of one container at a time, none while a change holds the node's lock (and
a probe that overlapped a change is forgotten).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kombify.agent.engine import Engine, Managed
from kombify.agent.health import check_kind, policy, probe_once
from kombify.agent.proto import pb
from kombify.agent.state import ManifestStore
from kombify.agent.watch import ChangeLock, Changes
from kombify.errors import DockerError

PARALLEL_PROBES = 4
# The container list is read again on every engine event and lock release, and this often
# regardless (an event stream that reconnects may have missed something).
REFRESH_S = 10.0
_STARTED_AT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?")


@dataclass
class _Track:
    """What the monitor knows of one run of one container (a restart starts a new one)."""

    item: Managed
    spec: pb.ServiceSpec
    started: float  # monotonic time of the container's start
    due: float  # monotonic time of the next probe
    word: str = "unknown"
    detail: str = ""
    failures: int = 0
    busy: bool = False


def _age(started_at: str) -> float:
    """Seconds since Docker's StartedAt (0 when it cannot be read)."""
    match = _STARTED_AT.match(started_at)
    if not match:
        return 0.0
    fraction = (match.group(2) or ".0")[:7]  # Docker gives nanoseconds; Python takes micro
    when = datetime.fromisoformat(match.group(1) + fraction).replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


class HealthMonitor:
    """Probes the manifest's health-checked, running containers while the agent runs.

    Args:
        engine: The node's engine.
        store: The manifest store (the manifest in effect says what to probe and how).
        health: The servicer's health map (container id -> word), updated here.
        lock: The node's change lock.
        changes: Woken when a verdict changes; wakes the monitor when containers change.
    """

    def __init__(
        self,
        engine: Engine,
        store: ManifestStore,
        health: dict[str, str],
        lock: ChangeLock,
        changes: Changes,
    ) -> None:
        self.engine = engine
        self.store = store
        self.health = health
        self.lock = lock
        self.changes = changes
        self._tracks: dict[str, _Track] = {}
        self._slots = asyncio.Semaphore(PARALLEL_PROBES)
        self._probes: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._probed = asyncio.Event()
        self.probes_run = 0  # how many probes ran (tests check the monitor stays cheap)

    def unhealthy(self, item: Managed) -> str | None:
        """The failed probe's answer if the monitor holds ``item`` (this run of it) unhealthy."""
        track = self._tracks.get(item.id)
        if track is None or track.item.since != item.since or track.word != "unhealthy":
            return None
        return track.detail

    async def run(self) -> None:
        """Monitors until cancelled."""
        with self.changes.listen() as wake:
            self._wake = wake
            try:
                await self._loop(wake)
            finally:
                for task in self._probes:
                    task.cancel()

    async def _loop(self, wake: asyncio.Event) -> None:
        refresh_at = 0.0
        while True:
            now = time.monotonic()
            if wake.is_set() or now >= refresh_at:
                wake.clear()
                if not self.lock.locked():  # else the release wakes us again
                    try:
                        await self._refresh(wake)
                    except DockerError:
                        pass  # the engine is away; the event thread wakes us when it is back
                refresh_at = time.monotonic() + REFRESH_S
            pending: list[float] = []
            if not self.lock.locked():  # else the release wakes us: no probe until then
                self._launch_due()
                pending = [t.due for t in self._tracks.values() if not t.busy]
            pause = min([refresh_at, *pending]) - time.monotonic()
            # Woken by a change (look again) or by a finished probe (its next one is due).
            waiters = [asyncio.ensure_future(e.wait()) for e in (wake, self._probed)]
            await asyncio.wait(
                waiters, timeout=max(0.05, pause), return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            self._probed.clear()

    async def _refresh(self, wake: asyncio.Event) -> None:
        manifest = self.store.current() or pb.Manifest()
        checked = {s.name: s for s in manifest.services if check_kind(s.healthcheck)}
        items = await asyncio.to_thread(self.engine.containers) if checked else []
        now = time.monotonic()
        alive: set[str] = set()
        for item in items:
            spec = checked.get(item.service)
            if spec is None or not item.running:
                continue
            alive.add(item.id)
            track = self._tracks.get(item.id)
            if track is not None and track.item.since == item.since:
                track.spec = spec
                continue
            started = now - _age(item.since)
            # A container this monitor never saw keeps the verdict of the check that let it
            # in (the rollout gate, a repair): Docker's status, too, outlives a monitor.
            known = self.health.get(item.id, "unknown") if track is None else "unknown"
            self._tracks[item.id] = _Track(
                item=item,
                spec=spec,
                started=started,
                due=max(now, started + policy(spec.healthcheck).interval),
                word=known if known in ("healthy", "unhealthy") else "unknown",
                detail="unhealthy when last checked" if known == "unhealthy" else "",
            )
            if track is not None and track.word == "unhealthy":
                self.changes.poke(skip=wake)  # restarted: not known unhealthy any more
        for gone in set(self._tracks) - alive:
            del self._tracks[gone]

    def _launch_due(self) -> None:
        now = time.monotonic()
        for track in self._tracks.values():
            if not track.busy and track.due <= now:
                track.busy = True
                task = asyncio.create_task(self._probe(track, self.lock.generation))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, track: _Track, generation: int) -> None:
        rules = policy(track.spec.healthcheck)
        try:
            async with self._slots:
                self.probes_run += 1
                result = await asyncio.to_thread(probe_once, self.engine, track.spec, track.item)
        finally:
            track.busy = False
            track.due = time.monotonic() + rules.interval
            self._probed.set()
        if self.lock.locked() or self.lock.generation != generation:
            return  # a change ran meanwhile: the probe may have seen it half done
        if self._tracks.get(track.item.id) is not track or result.final:
            return  # gone, restarted or stopped: the picture says so without a verdict
        if result.ok:
            track.failures = 0
            self._verdict(track, "healthy", result.detail)
            return
        start_period = track.spec.healthcheck.start_period_ms / 1000
        if time.monotonic() - track.started < start_period:
            return  # within the start period failures do not count (Docker's rule)
        track.failures += 1
        if track.failures >= rules.retries:
            self._verdict(track, "unhealthy", result.detail)

    def _verdict(self, track: _Track, word: str, detail: str) -> None:
        self.health[track.item.id] = word
        if word == track.word:
            return
        was_unhealthy = track.word == "unhealthy"
        track.word, track.detail = word, detail
        if was_unhealthy or word == "unhealthy":
            self.changes.poke(skip=self._wake)
