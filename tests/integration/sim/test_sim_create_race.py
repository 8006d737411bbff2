"""One simulation created by several makers at once (a deploy's retry on another worker while
its first attempt still runs) ends up as one: one network, one container per node, one key."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kombify.sim import labels
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationSpec
from tests.integration.sim.conftest import unique_name
from tests.support.concurrency import at_once

pytestmark = pytest.mark.docker


def test_a_simulation_made_at_once_by_several_is_made_once(
    engine: SimEngine, docker: Any, kombify_home: Path
) -> None:
    name = unique_name("krace")
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="box")])
    network = labels.lan_network(name)
    try:
        made = at_once(4, partial(engine.create, spec, start=False))

        # The engine does not refuse a second network of one name: nodes could not join it.
        assert len([n for n in docker.api.networks() if n["Name"] == network]) == 1
        assert len({info.nodes[0].container_id for info in made}) == 1
        engine.start(name)  # the node joins its network
    finally:
        engine.delete(name)
        for leftover in [n for n in docker.api.networks() if n["Name"] == network]:
            docker.api.remove_network(leftover["Id"])
