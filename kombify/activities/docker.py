"""Temporal activities doing KombiSim's Docker work (image, create, wait for SSH, delete).

Each is idempotent, because a retry after a worker crash must not make anything twice: the
engine methods they call find what exists by name and label before creating. Long ones
heartbeat so a dead worker is noticed within the heartbeat timeout, not the start-to-close.
User mistakes (a bad spec, a name clash) become non-retryable ``ApplicationError``s typed
with the kombify error code, so the API can map them to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.errors import ConflictError, KombifyError, NotFoundError, SpecError
from kombify.sim.engine import SimEngine
from kombify.sim.models import SimulationInfo, SimulationSpec
from kombify.sim.ssh import wait_all

_T = TypeVar("_T")
HEARTBEAT_SECONDS = 5.0
_USER_ERRORS = (SpecError, ConflictError, NotFoundError)


@dataclass(frozen=True)
class EnsureImageInput:
    """Nothing yet; fields can be added without breaking histories."""

    requested_by: str = "workflow"


@dataclass(frozen=True)
class EnsureImageResult:
    """The node image tag that exists now."""

    image: str


@dataclass(frozen=True)
class CreateSimulationInput:
    """Which simulation to create (the whole spec, since there is no stored copy to refer to)."""

    spec: SimulationSpec


@dataclass(frozen=True)
class SimulationRef:
    """A simulation by name."""

    name: str


@dataclass(frozen=True)
class NodeState:
    """One node as the engine reported it (no secrets: the key path, never the key).

    Attributes:
        name: Node name.
        group: Group.
        type: ``local`` or ``vps``.
        state: Docker container state.
        host: SSH host (loopback), empty while not running.
        port: Published SSH port, 0 while not running.
        user: Login user.
        identity_file: Path of the simulation's private key on the worker's machine.
    """

    name: str
    group: str
    type: str
    state: str
    host: str = ""
    port: int = 0
    user: str = ""
    identity_file: str = ""


@dataclass(frozen=True)
class SimulationState:
    """A simulation's nodes as the engine reported them."""

    name: str
    nodes: list[NodeState] = field(default_factory=list)


@dataclass(frozen=True)
class WaitSshInput:
    """Wait until every running node of ``name`` completes an SSH handshake."""

    name: str
    timeout_seconds: float = 120.0


@dataclass(frozen=True)
class WaitSshResult:
    """Seconds each node took to answer, by node name."""

    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteSimulationResult:
    """Whether there was anything to delete."""

    removed: bool


def state_of(info: SimulationInfo) -> SimulationState:
    """The activity-boundary view of a :class:`SimulationInfo`."""
    return SimulationState(
        name=info.name,
        nodes=[
            NodeState(
                name=node.name,
                group=node.spec.group,
                type=node.spec.type,
                state=node.state,
                host=node.ssh.host if node.ssh else "",
                port=node.ssh.port if node.ssh else 0,
                user=node.spec.user,
                identity_file=node.ssh.identity_file if node.ssh else "",
            )
            for node in info.nodes
        ],
    )


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _application_error(exc: KombifyError) -> ApplicationError:
    return ApplicationError(
        exc.message, type=exc.code, non_retryable=isinstance(exc, _USER_ERRORS)
    )


class SimActivities:
    """KombiSim activities bound to one Docker client.

    Args:
        client: A ``docker.DockerClient`` (tests hand in their own), or a function that makes
            one: then the engine is first contacted by the first activity that needs it, so a
            worker starts (and runs deploys of real nodes) on a machine without Docker.
        image: Node image to use instead of building/finding the default one.
    """

    def __init__(self, client: Any | Callable[[], Any], *, image: str | None = None) -> None:
        self._client = client
        self._image = image
        self._engine: SimEngine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> SimEngine:
        """The engine, with its client made on first use."""
        with self._lock:
            if self._engine is None:
                client = self._client() if callable(self._client) else self._client
                self._engine = SimEngine(client, image=self._image)
            return self._engine

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run blocking engine work in a thread, heartbeating, mapping kombify errors."""
        try:
            async with _heartbeating():
                return await asyncio.to_thread(function, *args)
        except KombifyError as exc:
            raise _application_error(exc) from exc

    @activity.defn(name="SimEnsureImage")
    async def ensure_image(self, _: EnsureImageInput) -> EnsureImageResult:
        """Build the node image if missing (about a minute the first time)."""
        return EnsureImageResult(image=await self._run(self.engine.ensure_image))

    @activity.defn(name="SimCreate")
    async def create(self, data: CreateSimulationInput) -> SimulationState:
        """Create (or finish creating) and start every node of the spec."""
        info = await self._run(self.engine.create, data.spec)
        return state_of(info)

    @activity.defn(name="SimDescribe")
    async def describe(self, ref: SimulationRef) -> SimulationState:
        """The nodes' states as the engine reports them now (empty when none exist)."""
        info = await self._run(self.engine.find, ref.name)
        return state_of(info) if info else SimulationState(name=ref.name)

    @activity.defn(name="SimWaitSsh")
    async def wait_ssh(self, data: WaitSshInput) -> WaitSshResult:
        """Wait until every running node completes an SSH handshake on its loopback port."""
        info = await self._run(self.engine.info, data.name)
        nodes = [node for node in info.nodes if node.ssh is not None]
        try:
            async with _heartbeating():
                seconds = await wait_all(
                    [node.ssh for node in nodes if node.ssh], timeout=data.timeout_seconds
                )
        except KombifyError as exc:
            raise _application_error(exc) from exc
        return WaitSshResult(seconds={n.name: s for n, s in zip(nodes, seconds, strict=True)})

    @activity.defn(name="SimStop")
    async def stop(self, ref: SimulationRef) -> SimulationState:
        """Stop every node (idempotent)."""
        return state_of(await self._run(self.engine.stop, ref.name))

    @activity.defn(name="SimStart")
    async def start(self, ref: SimulationRef) -> SimulationState:
        """Start every node (idempotent)."""
        return state_of(await self._run(self.engine.start, ref.name))

    @activity.defn(name="SimDelete")
    async def delete(self, ref: SimulationRef) -> DeleteSimulationResult:
        """Remove every container, network, volume and key of the simulation (idempotent)."""
        return DeleteSimulationResult(removed=await self._run(self.engine.delete, ref.name))

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for a worker's ``activities=``."""
        return [
            self.ensure_image,
            self.create,
            self.describe,
            self.wait_ssh,
            self.stop,
            self.start,
            self.delete,
        ]
