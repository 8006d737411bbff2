"""The Vpn gRPC service of the agent: the node's WireGuard key and mesh interface.

Served beside the Agent service on the same mTLS server (see :mod:`kombify.agent.server`);
the work is done by :mod:`kombify.agent.wireguard`. No private key is in any reply or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from grpclib.const import Status

from kombify.agent.auth import ClientPolicy, abort
from kombify.agent.proto import pb, vpn_base
from kombify.agent.wireguard import Peer, Tunnel, VpnFailed, VpnRefused, WireGuard

log = logging.getLogger("kombify.agent")
# How often the agent looks whether a tunnel it applied is still there: wireguard-go ends
# with its interface (killed, crashed, OOM), and the node's mesh must come back by itself.
WATCH_INTERVAL_S = 5.0


class VpnService(vpn_base()):  # type: ignore[misc]
    """Implements ``kombify.agent.v1.Vpn``.

    Args:
        wireguard: The node's WireGuard.
        policy: Who may call (the same as for the Agent service).
    """

    def __init__(self, *, wireguard: WireGuard, policy: ClientPolicy) -> None:
        self.wireguard = wireguard
        self.policy = policy
        # One change of an interface at a time: a watch's restore never races an apply.
        self.lock = asyncio.Lock()

    async def watch(self) -> None:
        """Bring saved tunnels back whenever their interface is gone, for as long as it runs."""
        while True:
            async with self.lock:
                try:
                    brought = await asyncio.to_thread(self.wireguard.restore)
                except (VpnFailed, VpnRefused, OSError) as exc:
                    log.warning("vpn: restoring the mesh failed: %s", exc)
                else:
                    for name in brought:
                        log.info("vpn: interface %s brought back up", name)
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def VpnKey(self, stream: Any) -> None:  # noqa: N802
        self.policy.check(stream)
        request = await stream.recv_message()
        try:
            key = await asyncio.to_thread(self.wireguard.public_key, request.interface)
            found = await asyncio.to_thread(self.wireguard.addresses)
        except VpnRefused as exc:
            abort(Status.INVALID_ARGUMENT, str(exc))
        except VpnFailed as exc:
            abort(Status.FAILED_PRECONDITION, str(exc))
        await stream.send_message(
            pb.VpnKeyResponse(
                public_key=key,
                interfaces=[
                    pb.InterfaceAddresses(name=name, addresses=addresses)
                    for name, addresses in sorted(found.items())
                ],
            )
        )

    async def ApplyVpn(self, stream: Any) -> None:  # noqa: N802
        self.policy.check(stream)
        request = await stream.recv_message()
        async with self.lock:
            try:
                if request.down:
                    changed = await asyncio.to_thread(self.wireguard.down, request.interface)
                    reply = pb.ApplyVpnResponse(changed=changed)
                else:
                    tunnel = tunnel_of(request)
                    changed, implementation = await asyncio.to_thread(self.wireguard.apply, tunnel)
                    reply = pb.ApplyVpnResponse(
                        changed=changed, implementation=implementation, peers=len(tunnel.peers)
                    )
            except VpnRefused as exc:
                abort(Status.INVALID_ARGUMENT, str(exc))
            except VpnFailed as exc:
                abort(Status.FAILED_PRECONDITION, str(exc))
        if reply.changed:
            log.info(
                "vpn: %s %s (%d peer(s))",
                request.interface,
                "removed" if request.down else f"applied with {reply.implementation}",
                reply.peers,
            )
        await stream.send_message(reply)


def tunnel_of(request: Any) -> Tunnel:
    """The :class:`Tunnel` an ``ApplyVpnRequest`` asks for."""
    return Tunnel(
        interface=request.interface,
        address=request.address,
        listen_port=int(request.listen_port),
        peers=[
            Peer(
                public_key=p.public_key,
                allowed_ips=list(p.allowed_ips),
                endpoint=p.endpoint,
                persistent_keepalive=int(p.persistent_keepalive),
            )
            for p in request.peers
        ],
    )


async def stop_watch(task: asyncio.Task[None]) -> None:
    """Cancel a :meth:`VpnService.watch` task and wait for it."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
