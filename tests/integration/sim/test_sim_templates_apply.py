"""Every built-in template applies, every node answers SSH, and delete leaves nothing."""

from __future__ import annotations

import pytest

from kombify.sim import labels
from kombify.sim.engine import SimEngine
from kombify.sim.models import SimulationSpec
from kombify.sim.ssh import run, wait_all
from kombify.sim.templates import list_templates
from tests.integration.sim.conftest import unique_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BUILTINS = sorted(t.name for t in list_templates() if t.source == "builtin")


def test_six_builtin_templates() -> None:
    assert len(BUILTINS) == 6


@pytest.mark.parametrize("template", BUILTINS)
async def test_template_applies_and_tears_down(engine: SimEngine, template: str) -> None:
    spec = next(t.spec for t in list_templates() if t.name == template)
    name = unique_name("kt-tpl")
    try:
        info = engine.create(SimulationSpec(name=name, nodes=spec.nodes))
        assert [n.name for n in info.nodes] == [n.name for n in spec.nodes]
        await wait_all([n.ssh for n in info.nodes if n.ssh], timeout=120)
        for node in info.nodes:
            assert node.ssh is not None
            assert (await run(node.ssh, "hostname")).strip() == node.name
            attrs = engine.api.inspect_container(node.container_id)
            networks = set(attrs["NetworkSettings"]["Networks"])
            # With a VPS there is a stand-in for the internet that every node is on.
            online = (
                {labels.internet_network(name)}
                if any(n.type == "vps" for n in spec.nodes)
                else set()
            )
            if node.spec.type == "vps":
                # A VPS sits on its own network: not on the simulation's LAN.
                assert networks == {labels.vps_network(name, node.name)} | online
            else:
                assert networks == {labels.lan_network(name)} | online
            assert set(node.ports) == set(node.spec.ports)
    finally:
        engine.delete(name)
    assert engine.leftovers(name) == {"containers": [], "networks": [], "volumes": []}
