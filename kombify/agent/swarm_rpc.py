"""The Swarm RPCs of the Agent service (a mixin of :class:`~kombify.agent.service.AgentService`).

Swarm membership and a stack's Swarm services go through the node's own engine; they never
touch the node's manifest, so they take a lock of their own, not the node's change lock (a
node's containers and the swarm's tasks are separate worlds: see docs/swarm.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grpclib.const import Status

from kombify.agent import swarm, swarm_services
from kombify.agent import swarm_spec as ss
from kombify.agent.auth import abort
from kombify.agent.engine import Engine
from kombify.agent.proto import pb
from kombify.errors import DockerError

log = logging.getLogger("kombify.agent")
_STATUS = {
    "FAILED_PRECONDITION": Status.FAILED_PRECONDITION,
    "NOT_FOUND": Status.NOT_FOUND,
    "INVALID_ARGUMENT": Status.INVALID_ARGUMENT,
}
_SENTINEL = None


class SwarmRpcs:
    """``SwarmStatus`` … ``RemoveSwarmServices``; needs ``engine`` and ``_request``."""

    engine: Engine
    _swarm_lock: asyncio.Lock | None = None

    async def _request(self, stream: Any) -> Any:  # provided by AgentService
        raise NotImplementedError

    def _lock(self) -> asyncio.Lock:
        # Made on first use, inside the server's loop (grpclib runs every RPC on it).
        if self._swarm_lock is None:
            self._swarm_lock = asyncio.Lock()
        return self._swarm_lock

    async def _swarm(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except swarm.SwarmError as exc:
            abort(_STATUS.get(exc.status, Status.FAILED_PRECONDITION), str(exc))
        except DockerError as exc:
            abort(Status.UNAVAILABLE, exc.message)

    async def SwarmStatus(self, stream: Any) -> None:  # noqa: N802
        """The node's swarm state; on a manager the nodes and quorum too."""
        await self._request(stream)
        await stream.send_message(await self._swarm(swarm.status, self.engine))

    async def SwarmInit(self, stream: Any) -> None:  # noqa: N802
        """Starts a swarm with this node as its first manager (unless it is in one)."""
        request: pb.SwarmInitRequest = await self._request(stream)
        async with self._lock():
            reply = await self._swarm(swarm.init, self.engine, request.advertise_addr)
        log.info("swarm: %s, node %s, manager=%s", reply.state, reply.node_id, reply.is_manager)
        await stream.send_message(reply)

    async def SwarmJoinTokens(self, stream: Any) -> None:  # noqa: N802
        """The join tokens; they travel back over mTLS only and are never logged."""
        await self._request(stream)
        await stream.send_message(await self._swarm(swarm.join_tokens, self.engine))

    async def SwarmJoin(self, stream: Any) -> None:  # noqa: N802
        """Joins the swarm of a manager (unless already in one)."""
        request: pb.SwarmJoinRequest = await self._request(stream)
        if not request.remote_addr or not request.token:
            abort(Status.INVALID_ARGUMENT, "a join needs a manager's address and a token")
        async with self._lock():
            reply = await self._swarm(
                swarm.join, self.engine, request.remote_addr, request.token, request.advertise_addr
            )
        log.info("swarm: joined via %s, %s", request.remote_addr, reply.state)
        await stream.send_message(reply)

    async def SwarmLeave(self, stream: Any) -> None:  # noqa: N802
        """Leaves the swarm (unless in none)."""
        request: pb.SwarmLeaveRequest = await self._request(stream)
        async with self._lock():
            reply = await self._swarm(swarm.leave, self.engine, force=request.force)
        log.info("swarm: left, %s", reply.state)
        await stream.send_message(reply)

    async def SwarmUpdateNode(self, stream: Any) -> None:  # noqa: N802
        """Role, labels and availability of a swarm node (on a manager)."""
        request: pb.SwarmUpdateNodeRequest = await self._request(stream)
        if request.role not in ("", "manager", "worker"):
            abort(Status.INVALID_ARGUMENT, f"role `{request.role}` is not manager or worker")
        if request.availability not in ("", "active", "pause", "drain"):
            abort(Status.INVALID_ARGUMENT, f"availability `{request.availability}` is unknown")
        async with self._lock():
            reply = await self._swarm(swarm.update_node, self.engine, request)
        await stream.send_message(reply)

    async def SwarmRemoveNode(self, stream: Any) -> None:  # noqa: N802
        """Removes a node from the swarm's list (on a manager)."""
        request: pb.SwarmRemoveNodeRequest = await self._request(stream)
        async with self._lock():
            await self._swarm(swarm.remove_node, self.engine, request.node_id, force=request.force)
        await stream.send_message(pb.SwarmRemoveNodeResponse(node_id=request.node_id))

    async def ApplySwarmServices(self, stream: Any) -> None:  # noqa: N802
        """Converges a stack's Swarm services; goes on if the caller disconnects midway."""
        request: pb.ApplySwarmServicesRequest = await self._request(stream)
        try:
            ss.validate(request.manifest)
        except ss.SwarmManifestInvalid as exc:
            abort(Status.INVALID_ARGUMENT, str(exc))
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[pb.ApplyEvent | None] = asyncio.Queue()

        def emit(event: pb.ApplyEvent) -> None:  # called on the worker thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        async def run() -> pb.ApplyResult:
            async with self._lock():
                try:
                    result: pb.ApplyResult = await asyncio.to_thread(
                        swarm_services.apply, self.engine, request.manifest, emit
                    )
                    return result
                finally:
                    loop.call_soon_threadsafe(events.put_nowait, _SENTINEL)

        # A task of its own: a dropped caller must not cut a rollout's watch short.
        task = asyncio.create_task(run())
        while (item := await events.get()) is not _SENTINEL:
            await stream.send_message(item)
        try:
            result = await task
        except swarm.SwarmError as exc:
            abort(_STATUS.get(exc.status, Status.FAILED_PRECONDITION), str(exc))
        except DockerError as exc:
            abort(Status.UNAVAILABLE, exc.message)
        await stream.send_message(pb.ApplyEvent(kind=pb.ApplyEvent.DONE, result=result))

    async def ListSwarmServices(self, stream: Any) -> None:  # noqa: N802
        """A stack's Swarm services as they run (on a manager)."""
        request: pb.ListSwarmServicesRequest = await self._request(stream)
        services = await self._swarm(swarm_services.list_services, self.engine, request.stack)
        await stream.send_message(pb.ListSwarmServicesResponse(services=services))

    async def RemoveSwarmServices(self, stream: Any) -> None:  # noqa: N802
        """Removes a stack's Swarm services, and its overlay network when asked."""
        request: pb.RemoveSwarmServicesRequest = await self._request(stream)
        network = ss.OVERLAY_NETWORK if request.remove_network else ""
        async with self._lock():
            removed = await self._swarm(
                swarm_services.remove_services, self.engine, request.stack, network=network
            )
        await stream.send_message(pb.RemoveSwarmServicesResponse(removed=removed))
