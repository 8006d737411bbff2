"""ObserveVpn: ask every node of a stack what its WireGuard mesh interface looks like now.

For stack diagrams (``kombify graph``): which nodes have the interface, which peers each
lists and how long ago it last shook hands with each. Asked over each node's SSH session with
``wg show`` (the agent has no call for it); ``wg show`` subcommands that print no private key
only (``public-key``, ``latest-handshakes``), never ``dump``.
"""

from __future__ import annotations

import asyncio
import shlex

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities
from kombify.activities.deploy import user_error
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget, PrepareInput
from kombify.contracts.vpn import VpnNodeSeen, VpnQuery, VpnSeen
from kombify.errors import KombifyError, NotFoundError, SpecError
from kombify.unifier.mesh import INTERFACE

NODE_TIMEOUT = 20.0


def wg_script(interface: str) -> str:
    """The shell lines that report the interface: ``absent``, or ``now``/``key``/``peer``/
    ``addr`` lines (the node's own clock, so handshake ages need no clock agreement)."""
    i = shlex.quote(interface)
    return (
        f"if ! wg show {i} public-key >/dev/null 2>&1; then echo absent; exit 0; fi; "
        f"echo now $(date +%s); echo key $(wg show {i} public-key); "
        f"wg show {i} latest-handshakes | sed 's/^/peer /'; "
        f"ip -4 -o addr show dev {i} | awk '{{print \"addr \" $4}}'"
    )


def parse_wg(name: str, text: str) -> VpnNodeSeen:
    """A node's answer to :func:`wg_script`."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] == ["absent"]:
        return VpnNodeSeen(name, True, interface=False)
    now, key, addresses, handshakes = 0, "", [], {}
    for words in lines:
        if words[0] == "now" and len(words) == 2:
            now = int(words[1])
        elif words[0] == "key" and len(words) == 2:
            key = words[1]
        elif words[0] == "addr" and len(words) == 2:
            addresses.append(words[1])
        elif words[0] == "peer" and len(words) == 3:
            at = int(words[2])
            handshakes[words[1]] = max(now - at, 0) if at else -1
    return VpnNodeSeen(name, True, "", True, key, addresses, handshakes)


class VpnObserveActivities:
    """Live observation of a stack's WireGuard mesh, over the nodes' SSH sessions.

    Args:
        agent: The agent activities (their deploy activities load stacks and reach nodes).
    """

    def __init__(self, agent: AgentActivities) -> None:
        self.deploy = agent.deploy

    async def _node(self, target: NodeTarget) -> VpnNodeSeen:
        try:
            async with asyncio.timeout(NODE_TIMEOUT), node_session(target) as session:
                result = await session.run(wg_script(INTERFACE), check=False, sudo=True)
        except TimeoutError:
            return VpnNodeSeen(target.name, False, f"did not answer within {NODE_TIMEOUT:.0f} s")
        except KombifyError as exc:
            return VpnNodeSeen(target.name, False, exc.message)
        if result.exit_status != 0:
            tail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
            return VpnNodeSeen(target.name, False, f"`wg show` failed: {tail[0]}")
        return parse_wg(target.name, result.stdout)

    @activity.defn(name="ObserveVpn")
    async def observe(self, request: VpnQuery) -> VpnSeen:
        """Every node of the stack's deployed revision, asked at once."""
        prepare = PrepareInput(
            "", request.organisation, request.stack, request.revision, request.simulate
        )
        try:
            stack, k = await asyncio.to_thread(self.deploy._load, prepare)
            _, targets, instances = await asyncio.to_thread(
                self.deploy._targets, k, request.simulate, create=False
            )
            _, pinned, _ = await asyncio.to_thread(self.deploy._pin, stack, k, targets, instances)
        except (SpecError, NotFoundError) as exc:
            raise user_error(exc) from exc
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code) from exc
        by_name = {t.name: t for t in pinned}
        seen = await asyncio.gather(
            *(self._node(by_name[n.name]) for n in k.spec.nodes if n.name in by_name)
        )
        missing = [
            VpnNodeSeen(n.name, False, "the node is not running")
            for n in k.spec.nodes
            if n.name not in by_name
        ]
        return VpnSeen(INTERFACE, [*seen, *missing])
