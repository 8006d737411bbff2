"""Acting on one service of a deployed stack: restart, stop, start, exec and its logs.

Every call goes to the node agents of the nodes the service runs on (:mod:`.reach`), asked
now; the answer is what they did and saw, replica by replica. The API routes, the CLI (through
the API) and the owners' YAML workflows (as activities) all call these functions.

A service its owner stopped is held stopped by the agent: neither the agent's watch nor a heal
pass starts it again, ``kombify status`` shows it ``stopped-by-owner``, and ``start``,
``restart`` or the next apply end the hold (docs/services.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kombify.agent.times import parse_time
from kombify.errors import AgentError, ConflictError, KombifyError
from kombify.operate.reach import CONNECT_TIMEOUT, DeployedStack, StackReach
from kombify.settings import Settings

Action = Literal["restart", "stop", "start"]
ACTIONS: tuple[Action, ...] = ("restart", "stop", "start")
# What one exec may return of each stream (the rest is cut and ``truncated`` set).
MAX_EXEC_OUTPUT = 1024 * 1024
# An action waits for each container's stop grace and health check: the agent bounds it.
ACTION_TIMEOUT = 300.0


@dataclass(frozen=True)
class ReplicaOutcome:
    """One container of the service after the action (or the node that could not act).

    Attributes:
        node: The node it runs on.
        container: Its id (12 characters); "" when the node did not answer.
        replica: Its replica number on the node.
        state: Docker's state now (running, exited ...); "unknown" when the node did not answer.
        health: healthy, unhealthy, none (no check) or unknown.
        ok: Whether it ended as the action meant (running and healthy; or stopped).
        error: Why the node could not act, if it could not.
    """

    node: str
    container: str
    replica: int
    state: str
    health: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class ServiceActionResult:
    """What ``restart``, ``stop`` or ``start`` of one service did, replica by replica."""

    stack: str
    service: str
    action: str
    replicas: list[ReplicaOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every replica ended as meant, and there was at least one."""
        return bool(self.replicas) and all(r.ok for r in self.replicas)


@dataclass(frozen=True)
class ExecResult:
    """A command run in one of the service's containers.

    Attributes:
        exit_code: The command's exit code.
        stdout: What it wrote to stdout (decoded as UTF-8, errors replaced).
        stderr: What it wrote to stderr.
        node: The node of the container.
        container: The container's id (12 characters).
        truncated: Output beyond :data:`MAX_EXEC_OUTPUT` per stream was cut.
    """

    exit_code: int
    stdout: str
    stderr: str
    node: str
    container: str
    truncated: bool = False


@dataclass(frozen=True)
class LogEntry:
    """One line a container of the service wrote.

    Attributes:
        time: When (RFC 3339, UTC).
        source: ``<node>/<container id, 12>``.
        level: "info" (stdout) or "error" (stderr).
        message: The line, without its end.
    """

    time: str
    source: str
    level: str
    message: str


def _refuse_swarm(deployed: DeployedStack, service: str, doing: str) -> None:
    if deployed.is_swarm_service(service):
        raise ConflictError(
            f"service `{service}` of stack `{deployed.name}` is a Docker Swarm service: "
            f"{doing} it through kombify is not supported yet (the swarm reschedules its "
            "tasks itself; a new apply rolls it out again)"
        )


async def _deployed(
    reach: StackReach, organisation: str, stack: str, service: str, doing: str
) -> tuple[DeployedStack, list[str]]:
    deployed = await reach.locate(organisation, stack)
    nodes = deployed.nodes_of(service)  # ServiceNotFoundError names the ones there are
    _refuse_swarm(deployed, service, doing)
    return deployed, nodes


def _outcome(node: str, status: Any, action: Action, health: str | None = None) -> ReplicaOutcome:
    word = health or status.health
    if action == "stop":
        ok = status.state != "running"
    else:
        ok = status.state == "running" and word in ("healthy", "none")
    return ReplicaOutcome(
        node=node,
        container=status.container_id[:12],
        replica=int(status.replica),
        state=status.state,
        health=word,
        ok=ok,
    )


async def _act_on_node(
    reach: StackReach, deployed: DeployedStack, node: str, service: str, action: Action
) -> list[ReplicaOutcome]:
    try:
        async with asyncio.timeout(ACTION_TIMEOUT), reach.agent(deployed, node) as client:
            if action == "restart":
                reply = await client.restart_service(service)
                return [_outcome(node, c, action) for c in reply.containers]
            if action == "stop":
                reply = await client.stop_service(service)
                return [_outcome(node, c, action) for c in reply.containers]
            reply = await client.start_service(service)
            return [_outcome(node, c, action) for c in reply.containers]
    except TimeoutError:
        error = f"did not answer within {ACTION_TIMEOUT:.0f} s"
    except KombifyError as exc:
        error = exc.message
    return [ReplicaOutcome(node, "", 0, "unknown", "unknown", False, error)]


async def act_on_service(
    settings: Settings,
    organisation: str,
    stack: str,
    service: str,
    action: Action,
    *,
    reach: StackReach | None = None,
) -> ServiceActionResult:
    """Restart, stop or start one service of a deployed stack on every node it runs on.

    ``stop`` holds the service stopped (no healing starts it); ``start`` and ``restart`` end
    the hold.

    Args:
        settings: The installation's settings.
        organisation: The organisation's slug.
        stack: The stack's name.
        service: The service's name in the stack.
        action: "restart", "stop" or "start".
        reach: Reuse this :class:`StackReach` (a worker's, with its agent activities).

    Returns:
        Each replica's state after the action; a node that could not act is one entry with
        its error.

    Raises:
        NotFoundError: No such stack, or (ServiceNotFoundError) no such service in it.
        ConflictError: The stack is not deployed, or the service is a Swarm service.
    """
    if action not in ACTIONS:
        raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}")
    reach = reach or StackReach(settings)
    deployed, nodes = await _deployed(reach, organisation, stack, service, action)
    found = await asyncio.gather(
        *(_act_on_node(reach, deployed, node, service, action) for node in nodes)
    )
    return ServiceActionResult(
        stack=stack,
        service=service,
        action=action,
        replicas=[r for per_node in found for r in per_node],
    )


async def _replicas(
    reach: StackReach, deployed: DeployedStack, nodes: list[str], service: str
) -> list[tuple[str, Any]]:
    """The running containers of ``service``: (node, status), ordered by node then replica."""

    async def ask(node: str) -> list[tuple[str, Any]]:
        async with asyncio.timeout(CONNECT_TIMEOUT), reach.agent(deployed, node) as client:
            listed = await client.list_services()
        return [
            (node, c) for c in listed.containers if c.service == service and c.state == "running"
        ]

    found: list[tuple[str, Any]] = []
    for per_node in await asyncio.gather(*(ask(node) for node in nodes)):
        found.extend(sorted(per_node, key=lambda nc: (nc[1].replica, nc[1].name)))
    return found


@dataclass
class ExecSession:
    """An exec running in a container: send stdin and resizes, read output until the end.

    Attributes:
        node: The node of the container.
        container: The container's id (12 characters).
        exit_code: Set once the command ended.
    """

    node: str
    container: str
    inputs: asyncio.Queue[Any]
    outputs: AsyncIterator[Any]
    exit_code: int | None = None

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the command's stdin."""
        from kombify.agent.proto import pb

        await self.inputs.put(pb.ExecInput(stdin=data))

    async def resize(self, rows: int, cols: int) -> None:
        """The terminal is now ``rows`` x ``cols``."""
        from kombify.agent.proto import pb

        await self.inputs.put(pb.ExecInput(resize=pb.TerminalSize(rows=rows, cols=cols)))

    async def close_stdin(self) -> None:
        """No more stdin: the command reads end-of-file."""
        from kombify.agent.proto import pb

        await self.inputs.put(pb.ExecInput(stdin_eof=True))

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """("stdout" | "stderr", chunk) as the command writes; ends when it exits."""
        async for message in self.outputs:
            if message.exited:
                self.exit_code = int(message.exit_code)
                return
            if message.stdout:
                yield "stdout", bytes(message.stdout)
            if message.stderr:
                yield "stderr", bytes(message.stderr)
        raise AgentError("the agent ended the exec without the command's exit code")


@asynccontextmanager
async def open_exec(
    settings: Settings,
    organisation: str,
    stack: str,
    service: str,
    argv: list[str],
    *,
    tty: bool = False,
    stdin: bool = False,
    rows: int = 0,
    cols: int = 0,
    env: dict[str, str] | None = None,
    replica: int | None = None,
    timeout: float | None = None,
    reach: StackReach | None = None,
) -> AsyncIterator[ExecSession]:
    """Start ``argv`` in one running container of ``service``, attached (``docker exec``).

    Args:
        replica: Which running container, counted from 0 over the service's running
            containers ordered by node, then replica; None: the first.
        timeout: The whole exec's deadline (None: none, for interactive shells).

    Raises:
        NotFoundError: No such stack, service, or replica.
        ConflictError: The stack is not deployed, no container of the service runs, or it is
            a Swarm service.
    """
    from kombify.agent.proto import pb

    if not argv:
        raise ValueError("argv: a command to run is required")
    reach = reach or StackReach(settings)
    deployed, nodes = await _deployed(reach, organisation, stack, service, "exec in")
    running = await _replicas(reach, deployed, nodes, service)
    if not running:
        raise ConflictError(f"no container of service `{service}` of stack `{stack}` is running")
    index = replica or 0
    if not 0 <= index < len(running):
        from kombify.errors import NotFoundError

        raise NotFoundError(
            f"replica: service `{service}` has {len(running)} running container(s), "
            f"numbered 0 to {len(running) - 1}; there is no replica {index}"
        )
    node, status = running[index]
    inputs: asyncio.Queue[Any] = asyncio.Queue()
    start = pb.ExecStart(
        service=service,
        container_id=status.container_id,
        argv=argv,
        tty=tty,
        size=pb.TerminalSize(rows=rows, cols=cols),
        env=env or {},
        stdin=stdin,
    )
    await inputs.put(pb.ExecInput(start=start))

    async def requests() -> AsyncIterator[Any]:
        while (item := await inputs.get()) is not None:
            yield item
            if item.stdin_eof:
                return

    async with reach.agent(deployed, node) as client:
        outputs = client.exec(requests(), timeout=timeout).__aiter__()
        try:
            first = await anext(outputs)
            yield ExecSession(
                node, (first.container_id or status.container_id)[:12], inputs, outputs
            )
        finally:
            await inputs.put(None)
            await outputs.aclose()


async def exec_in_service(
    settings: Settings,
    organisation: str,
    stack: str,
    service: str,
    argv: list[str],
    *,
    timeout: float,
    replica: int | None = None,
    reach: StackReach | None = None,
) -> ExecResult:
    """Run ``argv`` in one running container of ``service`` without a terminal; its output.

    Args:
        timeout: Seconds the command may run (AgentError when it runs longer).
        replica: Which running container (see :func:`open_exec`); None: the first.

    Raises:
        NotFoundError, ConflictError: As :func:`open_exec`.
        AgentError: The node or agent failed, or the command ran past ``timeout``.
    """
    out = {"stdout": bytearray(), "stderr": bytearray()}
    truncated = False
    try:
        async with (
            asyncio.timeout(timeout),
            open_exec(
                settings,
                organisation,
                stack,
                service,
                argv,
                replica=replica,
                timeout=timeout,
                reach=reach,
            ) as session,
        ):
            async for name, chunk in session.output():
                room = MAX_EXEC_OUTPUT - len(out[name])
                if len(chunk) > room:
                    truncated = True
                out[name] += chunk[: max(room, 0)]
    except TimeoutError as exc:
        raise AgentError(
            f"`{' '.join(argv)}` in service `{service}` did not end within {timeout:g} s"
        ) from exc
    assert session.exit_code is not None  # output() returns only after the exit code
    return ExecResult(
        exit_code=session.exit_code,
        stdout=out["stdout"].decode(errors="replace"),
        stderr=out["stderr"].decode(errors="replace"),
        node=session.node,
        container=session.container,
        truncated=truncated,
    )


def _entry(node: str, line: Any) -> LogEntry:
    return LogEntry(
        time=_utc(line.time),
        source=f"{node}/{line.container_id[:12]}",
        level="error" if line.stream == "stderr" else "info",
        message=line.line.rstrip("\r"),
    )


def _utc(stamp: str) -> str:
    """Docker's nanosecond timestamp as RFC 3339 with milliseconds, UTC ("" stays "")."""
    try:
        when = datetime.fromtimestamp(parse_time(stamp), UTC)
    except ValueError:
        return stamp
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def service_logs(
    settings: Settings,
    organisation: str,
    stack: str,
    service: str,
    *,
    follow: bool = False,
    tail: int = 0,
    since: datetime | None = None,
    reach: StackReach | None = None,
) -> AsyncIterator[LogEntry]:
    """Log lines of every container of ``service`` on every node, merged as they come.

    Without ``follow`` the lines already written are sent ordered by time (each
    container's ``tail`` last lines), and the iteration ends; with it, new lines follow
    until the caller stops iterating.

    Raises:
        NotFoundError, ConflictError: As :func:`act_on_service` (raised before the first line).
        AgentError: A node could not be reached.
    """
    reach = reach or StackReach(settings)
    deployed, nodes = await _deployed(reach, organisation, stack, service, "read logs of")
    since_text = since.astimezone(UTC).isoformat() if since is not None else ""
    queue: asyncio.Queue[LogEntry | BaseException | None] = asyncio.Queue()

    async def pump(node: str) -> None:
        try:
            async with reach.agent(deployed, node) as client:
                lines = client.stream_logs(service, follow=follow, tail=tail, since=since_text)
                async for line in lines:
                    await queue.put(_entry(node, line))
        except BaseException as exc:  # handed to the reader, who raises it
            await queue.put(exc)
        else:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(node)) for node in nodes]
    try:
        remaining = len(tasks)
        backlog: list[LogEntry] = []
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
                continue
            if isinstance(item, BaseException):
                if isinstance(item, asyncio.CancelledError):
                    remaining -= 1
                    continue
                raise item
            if follow:
                yield item
            else:
                backlog.append(item)
        for entry in sorted(backlog, key=lambda e: e.time):
            yield entry
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
