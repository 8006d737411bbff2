"""Which node joins the simulated internet how (kombify/sim/internet.py), without an engine."""

from __future__ import annotations

from kombify.sim import internet
from kombify.sim.models import NodeSpec, SimulationSpec

WEB = internet.Internet("kombisim-lab-internet", "172.30.0.0/16", "172.30.0.1")
HOME = NodeSpec(name="home")
VPS = NodeSpec(name="vps", type="vps")


def _attrs(networks: list[str], env: dict[str, str]) -> dict[str, object]:
    return {
        "NetworkSettings": {"Networks": {n: {} for n in networks}},
        "Config": {"Env": [f"{k}={v}" for k, v in env.items()]},
    }


def test_only_a_simulation_with_a_vps_has_an_internet() -> None:
    assert internet.wanted(SimulationSpec(name="lab", nodes=[HOME, VPS]))
    assert not internet.wanted(SimulationSpec(name="lab", nodes=[HOME]))


def test_home_nodes_boot_behind_nat_and_vps_nodes_do_not() -> None:
    assert internet.node_env(HOME, WEB) == {
        "KOMBIFY_NAT_FROM": "172.30.0.0/16",
        "KOMBIFY_NAT_GATEWAY": "172.30.0.1",
    }
    assert internet.node_env(VPS, WEB) == {}
    assert internet.node_env(HOME, None) == {}


def test_the_subnet_comes_from_the_engines_ipam() -> None:
    attrs = {
        "Name": "kombisim-lab-internet",
        "IPAM": {
            "Config": [
                {"Subnet": "fd00::/64"},
                {"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"},
            ]
        },
    }
    assert internet.from_network(attrs) == WEB


def test_a_node_off_the_internet_or_without_its_nat_rule_is_made_again() -> None:
    env = internet.node_env(HOME, WEB)
    assert internet.drift_reason(_attrs(["lan", WEB.network], env), HOME, WEB) == ""
    assert internet.drift_reason(_attrs(["lan"], env), HOME, WEB) == (
        "join the simulated internet behind NAT"
    )
    assert internet.drift_reason(_attrs(["lan", WEB.network], {}), HOME, WEB) != ""
    assert internet.drift_reason(_attrs(["own"], {}), VPS, WEB) == "join the simulated internet"
    assert internet.drift_reason(_attrs(["own", WEB.network], {}), VPS, WEB) == ""
    assert internet.drift_reason(_attrs(["lan"], {}), HOME, None) == ""
