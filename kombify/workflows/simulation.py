"""RunSimulation: create a simulation, wait until every node answers SSH, keep it, tear down.

The workflow decides (order, timeouts, how long to keep the nodes); the activities in
:mod:`kombify.activities.docker` do the Docker and SSH work. Its id is ``sim/<name>`` so the
engine itself refuses to run two workflows for the same simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from kombify.activities.docker import (
        CreateSimulationInput,
        EnsureImageInput,
        NodeState,
        SimActivities,
        SimulationRef,
        WaitSshInput,
    )
    from kombify.sim.models import SimulationSpec

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["invalid-spec", "conflict", "not-found"],
)
# Activities beat every 5 s (HEARTBEAT_SECONDS): a worker killed mid-activity is noticed, and
# the activity retried on another worker, within 15 s.
_HEARTBEAT = timedelta(seconds=15)


def workflow_id(name: str) -> str:
    """The id of the RunSimulation workflow of simulation ``name``."""
    return f"sim/{name}"


@dataclass(frozen=True)
class RunSimulationInput:
    """What to run and for how long.

    Attributes:
        spec: The simulation.
        ttl_seconds: How long to keep it after every node answered SSH.
        ssh_timeout_seconds: How long nodes may take to answer SSH.
        refresh_seconds: How often node states are re-read for the ``nodes`` query.
    """

    spec: SimulationSpec
    ttl_seconds: int = 3600
    ssh_timeout_seconds: int = 180
    refresh_seconds: int = 60


@dataclass(frozen=True)
class RunSimulationResult:
    """How the run went.

    Attributes:
        name: Simulation name.
        ended_by: ``ttl`` or ``signal``.
        ssh_seconds: Seconds each node took to answer SSH after creation.
    """

    name: str
    ended_by: str
    ssh_seconds: dict[str, float] = field(default_factory=dict)


@workflow.defn(name="RunSimulation")
class RunSimulationWorkflow:
    """Create → wait for SSH on every node → keep until TTL or ``stop`` → delete."""

    def __init__(self) -> None:
        self._stop_requested = False
        self._phase = "starting"
        self._nodes: list[NodeState] = []

    @workflow.run
    async def run(self, data: RunSimulationInput) -> RunSimulationResult:
        """The whole run; the simulation is deleted even when a step fails or is cancelled."""
        name = data.spec.name
        try:
            self._phase = "image"
            await workflow.execute_activity_method(
                SimActivities.ensure_image,
                EnsureImageInput(),
                start_to_close_timeout=timedelta(minutes=20),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_RETRY,
            )
            self._phase = "creating"
            state = await workflow.execute_activity_method(
                SimActivities.create,
                CreateSimulationInput(spec=data.spec),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_RETRY,
            )
            self._nodes = list(state.nodes)
            self._phase = "waiting-ssh"
            waited = await workflow.execute_activity_method(
                SimActivities.wait_ssh,
                WaitSshInput(name=name, timeout_seconds=data.ssh_timeout_seconds),
                start_to_close_timeout=timedelta(seconds=data.ssh_timeout_seconds + 30),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            self._phase = "ready"
            ended_by = await self._keep(name, data)
            return RunSimulationResult(name=name, ended_by=ended_by, ssh_seconds=waited.seconds)
        finally:
            self._phase = "deleting"
            await workflow.execute_activity_method(
                SimActivities.delete,
                SimulationRef(name=name),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_RETRY,
            )
            self._nodes = []
            self._phase = "deleted"

    async def _keep(self, name: str, data: RunSimulationInput) -> str:
        """Wait for the stop signal or the TTL, refreshing node states now and then."""
        deadline = workflow.now() + timedelta(seconds=data.ttl_seconds)
        while not self._stop_requested:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return "ttl"
            try:
                await workflow.wait_condition(
                    lambda: self._stop_requested,
                    timeout=timedelta(seconds=min(remaining, data.refresh_seconds)),
                )
            except TimeoutError:
                state = await workflow.execute_activity_method(
                    SimActivities.describe,
                    SimulationRef(name=name),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_RETRY,
                )
                self._nodes = list(state.nodes)
        return "signal"

    @workflow.signal(name="stop")
    def stop(self) -> None:
        """End the simulation now (it is then torn down)."""
        self._stop_requested = True

    @workflow.query(name="nodes")
    def nodes(self) -> list[NodeState]:
        """Node states as last read from the engine."""
        return list(self._nodes)

    @workflow.query(name="phase")
    def phase(self) -> str:
        """``image``, ``creating``, ``waiting-ssh``, ``ready``, ``deleting`` or ``deleted``."""
        return self._phase
