"""WatchServices: what differs from the manifest in effect, reported whenever it changes.

Three things can change the picture: the engine (a container dies, is removed, restarts),
the health monitor (a container turns unhealthy or healthy again), and the agent's own
changes (apply, restart, repair). The first is followed by one thread per agent reading the
engine's event stream, shared by every listener; the others wake the listeners directly.
While a change holds the node's lock nothing is reported: containers being replaced are not
problems, and the settled picture follows as soon as the lock is released.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from kombify.agent import manifest as mf
from kombify.agent.engine import Engine, Managed
from kombify.agent.proto import pb

# A burst of engine events (a kill is "kill" then "die") settles within this quiet time, so
# one incident gives one report.
DEBOUNCE_S = 0.2
# ... and a stream of events that never pauses is still reported this often.
DEBOUNCE_MAX_S = 1.0
DEFAULT_KEEPALIVE_S = 5
# Reconnecting to an engine that stopped answering: quickly at first, then every few seconds.
_RECONNECT_FIRST_S = 0.5
_RECONNECT_MAX_S = 5.0
_STOPPED = ("exited", "dead", "created")


class ChangeLock:
    """The node's one-change-at-a-time lock, which also says when a change ends.

    ``generation`` moves at every acquire and release: a result computed while it moved (a
    probe, a picture) may have seen containers mid-change and is thrown away.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._free = asyncio.Event()
        self._free.set()
        self.generation = 0
        self._on_release: list[Callable[[], None]] = []

    def locked(self) -> bool:
        """Whether a change holds the lock now."""
        return self._lock.locked()

    def on_release(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` every time a change ends."""
        self._on_release.append(callback)

    async def wait_free(self) -> None:
        """Returns once no change holds the lock."""
        while self._lock.locked():
            await self._free.wait()

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        self.generation += 1
        self._free.clear()

    async def __aexit__(self, *exc: object) -> None:
        self.generation += 1
        self._lock.release()
        self._free.set()
        for callback in list(self._on_release):
            callback()


class Changes:
    """Wakes everyone listening when the node's containers may have changed.

    The engine's events are read by one thread per agent, started with the first listener
    and ended (its stream closed) when the last one leaves.

    Args:
        engine: The node's engine (its event stream is scoped to this node's containers).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._listeners: set[asyncio.Event] = set()
        self._guard = threading.Lock()
        self._stop: threading.Event | None = None
        self._stream: Any = None

    @property
    def listeners(self) -> int:
        """How many listen now (the health monitor and each watcher)."""
        return len(self._listeners)

    @property
    def following(self) -> bool:
        """Whether a thread follows the engine's events now."""
        return self._stop is not None

    @contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        """An event set whenever something may have changed; the caller clears it."""
        wake = asyncio.Event()
        self._listeners.add(wake)
        if self._stop is None:
            self._start(asyncio.get_running_loop())
        try:
            yield wake
        finally:
            self._listeners.discard(wake)
            if not self._listeners:
                self._end()

    def poke(self, *, skip: asyncio.Event | None = None) -> None:
        """Wakes every listener (but ``skip``, the caller's own)."""
        for wake in self._listeners:
            if wake is not skip:
                wake.set()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        stop = threading.Event()
        self._stop = stop
        threading.Thread(
            target=self._follow, args=(loop, stop), name="engine-events", daemon=True
        ).start()

    def _end(self) -> None:
        stop, self._stop = self._stop, None
        if stop is None:
            return
        stop.set()
        with self._guard:
            stream, self._stream = self._stream, None
        if stream is not None:
            with suppress(Exception):  # closing under a blocked read: any error is fine
                stream.close()

    def _follow(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """The thread: reads the engine's events and wakes the listeners on the loop."""
        wait = _RECONNECT_FIRST_S
        while not stop.is_set():
            try:
                stream = self.engine.events()
            except Exception:  # noqa: BLE001 - the engine is down (or the SDK still loading)
                stop.wait(wait)
                wait = min(wait * 2, _RECONNECT_MAX_S)
                continue
            with self._guard:
                if stop.is_set():
                    with suppress(Exception):
                        stream.close()
                    return
                self._stream = stream
            wait = _RECONNECT_FIRST_S
            try:
                # (Re)connected: what happened while nobody followed is unknown, so look.
                loop.call_soon_threadsafe(self.poke)
                for _ in stream:
                    loop.call_soon_threadsafe(self.poke)
            except RuntimeError:  # the event loop closed: nobody listens any more
                return
            except Exception:  # noqa: BLE001 - the stream was closed, or the engine went away
                pass
            with self._guard:
                if self._stream is stream:
                    self._stream = None
            with suppress(Exception):
                stream.close()


def by_replica(items: Sequence[Managed]) -> dict[int, list[Managed]]:
    """A service's containers grouped by their replica label."""
    groups: dict[int, list[Managed]] = defaultdict(list)
    for item in items:
        groups[item.replica].append(item)
    return groups


def choose(items: Sequence[Managed], canonical: str) -> Managed | None:
    """The container that stands for one replica: its canonical name first, then a running one."""
    if not items:
        return None
    return min(items, key=lambda i: (i.name != canonical, not i.running, i.name))


def serving(engine: Engine, spec: pb.ServiceSpec, items: Sequence[Managed]) -> list[Managed]:
    """The containers that stand for ``spec``'s replicas (one each, where there is one)."""
    groups = by_replica(items)
    chosen = (
        choose(groups.get(replica, []), engine.container_name(spec.name, replica))
        for replica in range(mf.replicas(spec))
    )
    return [item for item in chosen if item is not None]


def problems(
    engine: Engine,
    manifest: pb.Manifest,
    items: Sequence[Managed],
    unhealthy: Callable[[Managed], str | None],
) -> list[pb.Problem]:
    """Every way the containers differ from ``manifest`` now (the whole picture).

    Args:
        engine: The node's engine (for the canonical container names).
        manifest: The manifest in effect.
        items: The node's managed containers.
        unhealthy: The health monitor's verdict: the failed probe's answer, or None.
    """
    services: dict[str, list[Managed]] = defaultdict(list)
    for item in items:
        services[item.service].append(item)
    found: list[pb.Problem] = []
    for spec in manifest.services:
        groups = by_replica(services.get(spec.name, []))
        for replica in range(mf.replicas(spec)):
            canonical = engine.container_name(spec.name, replica)
            problem = _problem(choose(groups.get(replica, []), canonical), unhealthy)
            if problem is not None:
                problem.service, problem.replica = spec.name, replica
                found.append(problem)
    return found


def _problem(item: Managed | None, unhealthy: Callable[[Managed], str | None]) -> pb.Problem | None:
    if item is None:
        return pb.Problem(kind="missing", detail="no container")
    if item.state == "restarting":
        detail = f"exit code {item.exit_code}; Docker restarts it ({item.restart_count} so far)"
        return _seen(item, "restarting", detail)
    if item.state in _STOPPED:
        if item.state == "created":
            detail = "created but never started"
        else:
            detail = f"{item.state}, exit code {item.exit_code}"
            detail += " (killed for lack of memory)" if item.oom_killed else ""
        return _seen(item, "exited", detail)
    if item.running:
        answer = unhealthy(item)
        if answer is not None:
            return _seen(item, "unhealthy", answer)
    return None  # running and not known unhealthy; paused on purpose


def _seen(item: Managed, kind: str, detail: str) -> pb.Problem:
    return pb.Problem(
        container_id=item.id,
        kind=kind,
        detail=detail,
        since=item.since,
        restart_count=item.restart_count,
    )


def now_rfc3339() -> str:
    """The current time, UTC, RFC 3339."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Picture = Callable[[], Awaitable[tuple[str, list[pb.Problem]]]]


async def watch(
    *,
    lock: ChangeLock,
    changes: Changes,
    picture: Picture,
    send: Callable[[pb.ServiceReport], Awaitable[None]],
    keepalive: float,
) -> None:
    """Sends the picture now, again whenever it changes, and as a keep-alive while it does not.

    Runs until cancelled (the caller went away). Nothing is computed while a change holds
    the lock; keep-alives repeat the last picture then.
    """
    loop = asyncio.get_running_loop()
    with changes.listen() as wake:
        revision, last = await _settled(lock, picture)
        await send(_report(revision, last, keepalive=False))
        due = loop.time() + keepalive
        while True:
            woke = await _wait(wake, due - loop.time())
            if woke:
                await _quiet(wake)
            if lock.locked():
                if not woke:  # a long apply: the caller still hears that the node lives
                    await send(_report(revision, last, keepalive=True))
                    due = loop.time() + keepalive
                continue  # the release wakes us again
            generation = lock.generation
            seen_revision, seen = await picture()
            if lock.locked() or lock.generation != generation:
                continue  # a change began meanwhile: what was seen may be half done
            if (seen_revision, seen) != (revision, last):
                revision, last = seen_revision, seen
                await send(_report(revision, last, keepalive=False))
            elif not woke:
                await send(_report(revision, last, keepalive=True))
            else:
                continue
            due = loop.time() + keepalive


async def _settled(lock: ChangeLock, picture: Picture) -> tuple[str, list[pb.Problem]]:
    while True:
        await lock.wait_free()
        generation = lock.generation
        seen = await picture()
        if not lock.locked() and lock.generation == generation:
            return seen


async def _wait(wake: asyncio.Event, timeout: float) -> bool:
    if timeout <= 0:
        return wake.is_set()
    try:
        await asyncio.wait_for(wake.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _quiet(wake: asyncio.Event) -> None:
    """Waits until no wake-up came for :data:`DEBOUNCE_S` (at most :data:`DEBOUNCE_MAX_S`)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEBOUNCE_MAX_S
    while True:
        wake.clear()
        remaining = end - loop.time()
        if remaining <= 0 or not await _wait(wake, min(DEBOUNCE_S, remaining)):
            wake.clear()
            return


def _report(revision: str, found: list[pb.Problem], *, keepalive: bool) -> pb.ServiceReport:
    return pb.ServiceReport(
        manifest_revision=revision, problems=found, keepalive=keepalive, at=now_rfc3339()
    )
