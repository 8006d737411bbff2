"""Create a simulation and wait for SSH on each node as soon as that node runs.

Starting containers is the slow part of a create, and the engine finishes them one by one;
waiting for SSH only after the last one started would leave the first nodes idle. Here each
node's wait (a full handshake with key login, :func:`kombify.sim.ssh.wait_for_ssh`) begins
the moment the engine reports it running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeInfo, SimulationInfo, SimulationSpec, SshEndpoint
from kombify.sim.ssh import SshLogin, wait_for_login


async def create_and_wait(
    engine: SimEngine,
    spec: SimulationSpec,
    *,
    timeout: float = 120.0,
    converge: bool = False,
    report: Callable[[str], None] | None = None,
) -> tuple[SimulationInfo, dict[str, float]]:
    """:meth:`SimEngine.create` ``spec``, then wait until every running node answers SSH.

    ``converge`` and ``report`` are passed to :meth:`SimEngine.create`.

    Returns:
        The simulation as the engine reports it after create, each waited-for node with the
        host key its login saw, and the seconds each node took from running to a completed
        SSH login, by node name.

    Raises:
        SpecError, ConflictError, DockerError: From create (nothing is left waiting).
        SshError: A node did not answer SSH within ``timeout`` seconds of running.
    """
    loop = asyncio.get_running_loop()
    waits: dict[str, asyncio.Task[SshLogin]] = {}

    def begin(name: str, endpoint: SshEndpoint) -> None:  # on the event loop
        if name not in waits:
            waits[name] = loop.create_task(wait_for_login(endpoint, timeout=timeout))

    def started(node: NodeInfo) -> None:  # on one of the engine's threads
        if node.ssh is not None:
            loop.call_soon_threadsafe(begin, node.name, node.ssh)

    try:
        info = await asyncio.to_thread(
            engine.create, spec, on_started=started, converge=converge, report=report
        )
        # The callbacks queued by `started` ran before this line: they came first.
        for node in info.nodes:
            if node.ssh is not None:
                begin(node.name, node.ssh)
        names = list(waits)
        logins = dict(zip(names, await asyncio.gather(*(waits[n] for n in names)), strict=True))
    except BaseException:
        for task in waits.values():
            task.cancel()
        for task in waits.values():
            with contextlib.suppress(BaseException):
                await task
        raise
    nodes = [
        dataclasses.replace(n, host_key=logins[n.name].host_key) if n.name in logins else n
        for n in info.nodes
    ]
    return (
        dataclasses.replace(info, nodes=nodes),
        {name: login.seconds for name, login in logins.items()},
    )
