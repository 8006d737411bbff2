"""validate_spec: the one check of a simulation's limits, whoever wrote the spec."""

from __future__ import annotations

import pytest

from kombify.errors import SpecError
from kombify.sim.engine import host_cpus, host_memory_mb, validate_spec
from kombify.sim.models import NodeSpec, SimulationSpec


def _spec(**node: object) -> SimulationSpec:
    return SimulationSpec(name="lab", nodes=[NodeSpec(name="a", **node)])  # type: ignore[arg-type]


@pytest.mark.parametrize("cpus", [float("nan"), float("inf"), -1.0, 0.0, 0.001, 1000.0])
def test_cpus_outside_what_this_machine_has_are_refused(cpus: float) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(_spec(cpus=cpus))
    assert caught.value.message == (
        f"node `a`: cpus must be a number from 0.01 to {host_cpus()} (this machine's CPUs), "
        f"got {cpus}"
    )


def test_cpus_one_above_the_machine_are_refused_and_all_of_it_accepted() -> None:
    with pytest.raises(SpecError, match="cpus must be a number"):
        validate_spec(_spec(cpus=float(host_cpus() + 1)))
    validate_spec(_spec(cpus=float(host_cpus())))
    validate_spec(_spec(cpus=0.01))


@pytest.mark.parametrize("memory_mb", [63, 100000 * 1024])
def test_memory_outside_this_machine_is_refused(memory_mb: int) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(_spec(memory_mb=memory_mb))
    assert caught.value.message == (
        f"node `a`: memory must be from 64 MiB to {host_memory_mb()} MiB (this machine's "
        f"memory), got {memory_mb} MiB"
    )
    validate_spec(_spec(memory_mb=host_memory_mb()))
