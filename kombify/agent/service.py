"""The Agent gRPC service: one method per RPC of agent.proto, on top of the Docker engine."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

import kombify
from kombify.agent import manifest as mf
from kombify.agent.auth import ClientPolicy, abort
from kombify.agent.converge import Converger
from kombify.agent.engine import Engine, Managed
from kombify.agent.files import AtomicFile, FileRefused
from kombify.agent.health import health_word, probe_once, wait_healthy
from kombify.agent.proto import pb
from kombify.agent.state import ManifestStore
from kombify.errors import DockerError

_SENTINEL = None


class AgentService:
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
        self.converger = Converger(engine, store, self.health)
        # One change at a time: applies and restarts of one node never interleave.
        self.lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    async def _engine(self, context: Any, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except DockerError as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, exc.message)

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
        )

    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:  # noqa: N802
        """Agent and engine liveness."""
        del request
        await self.policy.check(context)
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
        return reply

    async def ApplyServices(  # noqa: N802
        self, request: pb.ApplyServicesRequest, context: Any
    ) -> AsyncIterator[pb.ApplyEvent]:
        """Converges the node; the work goes on if the caller disconnects midway."""
        await self.policy.check(context)
        try:
            mf.validate(request.manifest)
        except mf.ManifestInvalid as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        events: asyncio.Queue[pb.ApplyEvent | None] = asyncio.Queue()

        async def run() -> None:
            async with self.lock:
                try:
                    await self.converger.apply(request.manifest, events.put_nowait)
                finally:
                    events.put_nowait(_SENTINEL)

        # A task of its own, so a cancelled RPC cannot leave a service half replaced.
        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        while (item := await events.get()) is not _SENTINEL:
            yield item
        try:
            await task
        except DockerError as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, exc.message)

    async def ListServices(  # noqa: N802
        self, request: pb.ListServicesRequest, context: Any
    ) -> pb.ListServicesResponse:
        """Every managed container with state and (last known or probed) health."""
        await self.policy.check(context)
        items: list[Managed] = await self._engine(context, self.engine.containers)
        current = self.store.current()
        reply = pb.ListServicesResponse(manifest_revision=current.revision if current else "")
        for item in items:
            health = None
            if request.probe_health:
                spec = self._spec(item.service)
                probe = await asyncio.to_thread(probe_once, self.engine, spec, item)
                health = health_word(spec, probe)
                self.health[item.id] = health
            reply.containers.append(self._status(item, health))
        return reply

    async def RestartService(  # noqa: N802
        self, request: pb.RestartServiceRequest, context: Any
    ) -> pb.RestartServiceResponse:
        """Restarts one service's containers and waits for their health check."""
        await self.policy.check(context)
        async with self.lock:
            items: list[Managed] = await self._engine(
                context, self.engine.containers, request.service
            )
            if not items:
                await abort(context, grpc.StatusCode.NOT_FOUND, f"no service `{request.service}`")
            for item in items:
                await self._engine(context, self.engine.restart, item)
            spec = self._spec(request.service)
            fresh = [await self._engine(context, self.engine.get, i.id) for i in items]
            probe = await wait_healthy(self.engine, spec, fresh)
            word = health_word(spec, probe)
            for item in fresh:
                self.health[item.id] = word
            return pb.RestartServiceResponse(containers=[self._status(i) for i in fresh])

    async def StreamLogs(  # noqa: N802
        self, request: pb.StreamLogsRequest, context: Any
    ) -> AsyncIterator[pb.LogLine]:
        """Log lines of a service's containers; with follow, until the caller cancels."""
        await self.policy.check(context)
        items: list[Managed] = await self._engine(context, self.engine.containers, request.service)
        if not items:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no service `{request.service}`")
        streams = [
            await self._engine(
                context,
                lambda cid=item.id: self.engine.log_stream(
                    cid, follow=request.follow, tail=request.tail
                ),
            )
            for item in items
        ]
        lines: asyncio.Queue[pb.LogLine | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for item, stream in zip(items, streams, strict=True):
            # Own threads, not the default pool: a followed log holds its thread for as long
            # as the caller listens, and must not starve the engine calls of other RPCs.
            threading.Thread(
                target=_pump,
                args=(stream, item, lines, loop),
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
                yield line
        finally:
            for stream in streams:
                stream.close()

    async def PutFile(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.FileChunk], context: Any
    ) -> pb.PutFileResponse:
        """Writes a file atomically: it appears whole, with its mode, or not at all."""
        await self.policy.check(context)
        try:
            written = await self._receive_file(request_iterator)
        except FileRefused as exc:
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except OSError as exc:
            await abort(context, grpc.StatusCode.INTERNAL, f"writing the file: {exc}")
        if written is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "no file chunks sent")
        return pb.PutFileResponse(path=str(written.path), size=written.size, sha256=written.sha256)

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

    async def LoadImage(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ImageChunk], context: Any
    ) -> pb.LoadImageResponse:
        """Loads a streamed ``docker save`` tarball into the node's engine."""
        await self.policy.check(context)
        self.store.dir.mkdir(parents=True, exist_ok=True)
        # Spooled to disk: image tarballs can be far larger than the agent's memory.
        with tempfile.TemporaryFile(dir=self.store.dir, prefix=".image-") as spool:
            async for chunk in request_iterator:
                spool.write(chunk.data)
            spool.seek(0)
            images: list[str] = await self._engine(context, self.engine.load_image, spool)
        return pb.LoadImageResponse(images=images)


def _pump(stream: Any, item: Managed, lines: asyncio.Queue[pb.LogLine | None], loop: Any) -> None:
    """Reads one container's log stream (blocking) and hands whole lines to the event loop."""

    def put(line: pb.LogLine | None) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, line)

    pending = b""
    try:
        for chunk in stream:
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for raw in whole:
                text = raw.decode(errors="replace")
                put(pb.LogLine(service=item.service, container_id=item.id, line=text))
        if pending:
            text = pending.decode(errors="replace")
            put(pb.LogLine(service=item.service, container_id=item.id, line=text))
    except Exception:  # the stream is closed under us when the caller goes away
        pass
    finally:
        try:
            put(None)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            pass
