"""The Agent gRPC service: one method per RPC of agent.proto, on top of the Docker engine.

Each method gets a grpclib stream: it reads the request(s) from it and sends the reply (or
the replies, for streaming RPCs) to it. A ``GRPCError`` raised anywhere ends the call with
that status and message.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from grpclib.const import Status

import kombify
from kombify.agent import drift, routes
from kombify.agent import manifest as mf
from kombify.agent.auth import ClientPolicy, abort
from kombify.agent.converge import Converger
from kombify.agent.engine import Engine, Managed
from kombify.agent.exec import run_exec
from kombify.agent.files import AtomicFile, FileRefused
from kombify.agent.health import health_word, probe_once, wait_healthy
from kombify.agent.monitor import HealthMonitor
from kombify.agent.proto import agent_base, pb
from kombify.agent.repair import Repairer
from kombify.agent.state import Holds, ManifestStore
from kombify.agent.swarm_rpc import SwarmRpcs
from kombify.agent.times import parse_time
from kombify.agent.watch import DEFAULT_KEEPALIVE_S, ChangeLock, Changes, problems, watch
from kombify.errors import DockerError

_SENTINEL = None
log = logging.getLogger("kombify.agent")
# How often a start-up recovery asks an engine that does not answer yet (a booting node
# starts its dockerd beside the agent): quickly at first, then every few seconds.
_RECOVER_FIRST_WAIT = 0.5
_RECOVER_MAX_WAIT = 5.0


class AgentService(SwarmRpcs, agent_base()):  # type: ignore[misc]
    """Implements ``kombify.agent.v1.Agent``.

    Args:
        engine: The node's Docker engine (scoped to this node's containers).
        store: The manifest store in the agent's state directory.
        policy: Who may call.
        files_root: The directory tree PutFile may write into.
    """

    def __init__(
        self, *, engine: Engine, store: ManifestStore, policy: ClientPolicy, files_root: Path
    ) -> None:
        self.engine = engine
        self.store = store
        self.policy = policy
        self.files_root = files_root
        self.health: dict[str, str] = {}
        # Services their owner stopped: not problems, not repaired (docs/services.md).
        self.holds = Holds(store.dir)
        self.converger = Converger(engine, store, self.health)
        # One change at a time: applies, restarts and repairs of one node never interleave;
        # its release tells the watchers (and the health monitor) to look again.
        self.lock = ChangeLock()
        self.changes = Changes(engine)
        self.lock.on_release(self.changes.poke)
        self.monitor = HealthMonitor(engine, store, self.health, self.lock, self.changes)
        self.repairer = Repairer(engine, self.converger, self.health)
        # Converges running on their own, so that a dropped caller cannot cut one short.
        self.background: set[asyncio.Task[None]] = set()

    async def recover(self) -> None:
        """Undoes the replacements an earlier run of the agent left unfinished.

        Runs at start-up, holding the lock between attempts only, so an apply that comes
        first finds the journal and settles it itself. Waits for the engine as long as it
        takes: a rebooting node starts its engine beside the agent.
        """
        wait = _RECOVER_FIRST_WAIT
        while self.converger.journal.entries():
            async with self.lock:
                try:
                    count = await self.converger.recover(
                        lambda e: log.info("recovery: %s: %s", e.service, e.message)
                    )
                except DockerError as exc:
                    log.info("recovery waits for the engine: %s", exc.message)
                else:
                    if count:
                        log.info("recovery: %d interrupted replacement(s) undone", count)
                    return
            await asyncio.sleep(wait)
            wait = min(wait * 2, _RECOVER_MAX_WAIT)

    async def _engine(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except DockerError as exc:
            abort(Status.UNAVAILABLE, exc.message)

    async def _request(self, stream: Any) -> Any:
        """The single request of a unary-request RPC, once the caller is known to be allowed."""
        self.policy.check(stream)
        return await stream.recv_message()

    async def _picture(self) -> tuple[str, list[pb.Problem]]:
        current = self.store.current()
        if current is None:
            return "", []
        items: list[Managed] = await asyncio.to_thread(self.engine.containers)
        held = self.holds.services()
        found = problems(self.engine, current, items, self.monitor.unhealthy)
        return current.revision, [p for p in found if p.service not in held]

    def _spec(self, service: str) -> pb.ServiceSpec:
        for spec in (self.store.current() or pb.Manifest()).services:
            if spec.name == service:
                return spec
        return pb.ServiceSpec(name=service)

    def _status(self, item: Managed, health: str | None = None) -> pb.ContainerStatus:
        return pb.ContainerStatus(
            service=item.service,
            replica=item.replica,
            container_id=item.id,
            name=item.name,
            state=item.state,
            health=health or self.health.get(item.id, "unknown"),
            image=item.image,
            config_hash=item.config_hash,
            since=item.since,
        )

    async def Health(self, stream: Any) -> None:  # noqa: N802
        """Agent and engine liveness."""
        await self._request(stream)
        current = self.store.current()
        reply = pb.HealthResponse(
            node_identity=self.engine.node,
            agent_version=kombify.__version__,
            manifest_revision=current.revision if current else "",
        )
        try:
            reply.docker_version = await asyncio.to_thread(self.engine.version)
            reply.docker_ok = True
        except DockerError as exc:
            reply.message = exc.message
        await stream.send_message(reply)

    async def ApplyServices(self, stream: Any) -> None:  # noqa: N802
        """Converges the node; the work goes on if the caller disconnects midway."""
        request: pb.ApplyServicesRequest = await self._request(stream)
        try:
            mf.validate(request.manifest)
        except mf.ManifestInvalid as exc:
            abort(Status.INVALID_ARGUMENT, str(exc))
        events: asyncio.Queue[pb.ApplyEvent | None] = asyncio.Queue()

        async def run() -> None:
            async with self.lock:
                try:
                    # An apply is the owner's word on what runs: their stops end with it.
                    self.holds.clear()
                    await self.converger.apply(request.manifest, events.put_nowait)
                finally:
                    events.put_nowait(_SENTINEL)

        # A task of its own, so a cancelled RPC cannot leave a service half replaced.
        task = asyncio.create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        while (item := await events.get()) is not _SENTINEL:
            await stream.send_message(item)
        try:
            await task
        except DockerError as exc:
            abort(Status.UNAVAILABLE, exc.message)

    async def ListServices(self, stream: Any) -> None:  # noqa: N802
        """Every managed container with state and (last known or probed) health."""
        request: pb.ListServicesRequest = await self._request(stream)
        items: list[Managed] = await self._engine(self.engine.containers)
        current = self.store.current()
        reply = pb.ListServicesResponse(
            manifest_revision=current.revision if current else "",
            stopped_by_owner=sorted(self.holds.services()),
        )
        for item in items:
            health = None
            if request.probe_health:
                spec = self._spec(item.service)
                probe = await asyncio.to_thread(probe_once, self.engine, spec, item)
                health = health_word(spec, probe)
                self.health[item.id] = health
            reply.containers.append(self._status(item, health))
        await stream.send_message(reply)

    async def RestartService(self, stream: Any) -> None:  # noqa: N802
        """Restarts one service's containers and waits for their health check."""
        request: pb.RestartServiceRequest = await self._request(stream)
        async with self.lock:
            items: list[Managed] = await self._engine(self.engine.containers, request.service)
            if not items:
                abort(Status.NOT_FOUND, f"no service `{request.service}`")
            for item in items:
                await self._engine(self.engine.restart, item)
            self.holds.release(request.service)
            spec = self._spec(request.service)
            fresh = [await self._engine(self.engine.get, i.id) for i in items]
            probe = await wait_healthy(self.engine, spec, fresh)
            word = health_word(spec, probe)
            for item in fresh:
                self.health[item.id] = word
        await stream.send_message(
            pb.RestartServiceResponse(containers=[self._status(i) for i in fresh])
        )

    async def _service_items(self, service: str) -> list[Managed]:
        items: list[Managed] = await self._engine(self.engine.containers, service)
        if not items:
            abort(Status.NOT_FOUND, f"no service `{service}`")
        return items

    async def StopService(self, stream: Any) -> None:  # noqa: N802
        """Stops one service's containers and holds it stopped (its owner asked)."""
        request: pb.StopServiceRequest = await self._request(stream)
        async with self.lock:
            items = await self._service_items(request.service)
            # Held first: a watcher woken by the first stopped container already knows why.
            self.holds.hold(request.service)
            for item in items:
                if item.running or item.state in ("restarting", "paused"):
                    await self._engine(self.engine.stop, item)
            fresh = [await self._engine(self.engine.get, i.id) for i in items]
        await stream.send_message(
            pb.StopServiceResponse(containers=[self._status(i, "unknown") for i in fresh])
        )

    async def StartService(self, stream: Any) -> None:  # noqa: N802
        """Starts one service's stopped containers, clears the hold, waits for health."""
        request: pb.StartServiceRequest = await self._request(stream)
        async with self.lock:
            items = await self._service_items(request.service)
            for item in items:
                if not item.running:
                    await self._engine(self.engine.start, item.id)
            self.holds.release(request.service)
            spec = self._spec(request.service)
            fresh = [await self._engine(self.engine.get, i.id) for i in items]
            probe = await wait_healthy(self.engine, spec, fresh)
            word = health_word(spec, probe)
            for item in fresh:
                self.health[item.id] = word
        await stream.send_message(
            pb.StartServiceResponse(
                containers=[self._status(i) for i in fresh], healthy=probe.ok, detail=probe.detail
            )
        )

    async def Exec(self, stream: Any) -> None:  # noqa: N802
        """Runs a command in one of a service's containers (kombify.agent.exec)."""
        self.policy.check(stream)
        await run_exec(self.engine, stream)

    async def WatchServices(self, stream: Any) -> None:  # noqa: N802
        """Problems against the manifest in effect: now, on every change, and as keep-alives."""
        request: pb.WatchServicesRequest = await self._request(stream)

        async def picture() -> tuple[str, list[pb.Problem]]:
            try:
                return await self._picture()
            except DockerError as exc:
                abort(Status.UNAVAILABLE, exc.message)

        await watch(
            lock=self.lock,
            changes=self.changes,
            picture=picture,
            send=stream.send_message,
            keepalive=float(request.keepalive_seconds or DEFAULT_KEEPALIVE_S),
        )

    async def RepairService(self, stream: Any) -> None:  # noqa: N802
        """Brings one service back to its spec (AUTO: the least that mends it; or RECREATE)."""
        request: pb.RepairServiceRequest = await self._request(stream)
        async with self.lock:
            current = self.store.current()
            if current is None:
                abort(
                    Status.FAILED_PRECONDITION,
                    "no manifest is in effect on this node yet: apply one before repairing",
                )
            spec = next((s for s in current.services if s.name == request.service), None)
            if spec is None:
                known = ", ".join(f"`{s.name}`" for s in current.services) or "none"
                abort(
                    Status.NOT_FOUND,
                    f"no service `{request.service}` in the manifest in effect "
                    f"(revision {current.revision}; services: {known})",
                )
            if request.service in self.holds.services():
                abort(
                    Status.FAILED_PRECONDITION,
                    f"service `{request.service}` was stopped by its owner: it is left stopped "
                    "until `kombify service start` or the next apply",
                )
            try:
                done = await self.repairer.repair(
                    spec,
                    current.revision,
                    recreate=request.action == pb.REPAIR_ACTION_RECREATE,
                    unhealthy=self.monitor.unhealthy,
                )
            except DockerError as exc:
                abort(Status.UNAVAILABLE, exc.message)
        await stream.send_message(
            pb.RepairServiceResponse(
                actions=done.actions,
                healthy=done.probe.ok,
                detail=done.probe.detail,
                log_tail=done.log_tail,
                containers=[self._status(i) for i in done.containers],
            )
        )

    async def InspectDrift(self, stream: Any) -> None:  # noqa: N802
        """What runs beside or against the manifest in effect; changes nothing."""
        await self._request(stream)
        # Under the lock: an apply's parked containers are not drift, they are a change.
        async with self.lock:
            current = self.store.current() or pb.Manifest()
            found: list[pb.Drift] = await self._engine(drift.inspect, self.engine, current)
        await stream.send_message(pb.DriftReport(manifest_revision=current.revision, drifts=found))

    async def ApplyRoutes(self, stream: Any) -> None:  # noqa: N802
        """Loads the reverse proxy's config on this node (kombify.agent.routes)."""
        self.policy.check(stream)
        await routes.apply_routes(self.engine, stream)

    async def StreamLogs(self, stream: Any) -> None:  # noqa: N802
        """Log lines of a service's containers, stdout and stderr apart, each with its time;
        with follow, until the caller cancels."""
        request: pb.StreamLogsRequest = await self._request(stream)
        items: list[Managed] = await self._engine(self.engine.containers, request.service)
        if not items:
            abort(Status.NOT_FOUND, f"no service `{request.service}`")
        since = None
        if request.since:
            try:
                since = parse_time(request.since)
            except ValueError:
                abort(Status.INVALID_ARGUMENT, f"since: not an RFC 3339 time: {request.since!r}")
        streams = [
            await self._engine(
                lambda cid=item.id: self.engine.log_frames(
                    cid, follow=request.follow, tail=request.tail, since=since
                ),
            )
            for item in items
        ]
        lines: asyncio.Queue[pb.LogLine | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for item, log_stream in zip(items, streams, strict=True):
            # Own threads, not the default pool: a followed log holds its thread for as long
            # as the caller listens, and must not starve the engine calls of other RPCs.
            threading.Thread(
                target=_pump,
                args=(log_stream, item, lines, loop),
                name=f"logs-{item.name}",
                daemon=True,
            ).start()
        try:
            remaining = len(items)
            while remaining:
                line = await lines.get()
                if line is None:
                    remaining -= 1
                    continue
                await stream.send_message(line)
        finally:
            for log_stream in streams:
                log_stream.close()

    async def PutFile(self, stream: Any) -> None:  # noqa: N802
        """Writes a file atomically: it appears whole, with its mode, or not at all."""
        self.policy.check(stream)
        try:
            written = await self._receive_file(stream)
        except FileRefused as exc:
            abort(Status.PERMISSION_DENIED, str(exc))
        except OSError as exc:
            abort(Status.INTERNAL, f"writing the file: {exc}")
        if written is None:
            abort(Status.INVALID_ARGUMENT, "no file chunks sent")
        await stream.send_message(
            pb.PutFileResponse(path=str(written.path), size=written.size, sha256=written.sha256)
        )

    async def _receive_file(self, chunks: AsyncIterator[pb.FileChunk]) -> AtomicFile | None:
        target: AtomicFile | None = None
        try:
            async for chunk in chunks:
                if target is None:
                    target = AtomicFile(self.files_root, chunk.path, chunk.mode)
                target.write(chunk.data)
            if target is not None:
                target.commit()
            return target
        except BaseException:
            if target is not None:
                target.abort()
            raise

    async def LoadImage(self, stream: Any) -> None:  # noqa: N802
        """Loads a streamed ``docker save`` tarball into the node's engine."""
        self.policy.check(stream)
        self.store.dir.mkdir(parents=True, exist_ok=True)
        # Spooled to disk: image tarballs can be far larger than the agent's memory.
        with tempfile.TemporaryFile(dir=self.store.dir, prefix=".image-") as spool:
            async for chunk in stream:
                spool.write(chunk.data)
            spool.seek(0)
            images: list[str] = await self._engine(self.engine.load_image, spool)
        await stream.send_message(pb.LoadImageResponse(images=images))


def _log_line(item: Managed, name: str, raw: bytes) -> pb.LogLine:
    text = raw.decode(errors="replace")
    stamp, _, rest = text.partition(" ")
    return pb.LogLine(
        service=item.service, container_id=item.id, line=rest, stream=name, time=stamp
    )


def _pump(stream: Any, item: Managed, lines: asyncio.Queue[pb.LogLine | None], loop: Any) -> None:
    """Reads one container's log frames (blocking); hands whole lines to the event loop."""

    def put(line: pb.LogLine | None) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, line)

    pending = {"stdout": b"", "stderr": b""}
    try:
        for name, chunk in stream:
            pending[name] += chunk
            *whole, pending[name] = pending[name].split(b"\n")
            for raw in whole:
                put(_log_line(item, name, raw))
        for name, rest in pending.items():
            if rest:
                put(_log_line(item, name, rest))
    except Exception:  # the stream is closed under us when the caller goes away
        pass
    finally:
        try:
            put(None)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            pass
