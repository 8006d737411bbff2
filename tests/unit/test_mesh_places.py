"""Where MeshVpn puts a real node, and the addresses it keeps (kombify/activities/vpn.py)."""

from __future__ import annotations

from pathlib import Path

from kombify.activities.vpn import HOME_LAN, _load_addresses, _place_real, _save_addresses
from kombify.contracts.deploy import NodeTarget

INTERFACES = {"docker0": ["172.17.0.1/16"], "eth0": ["192.168.1.10/24"]}


def _node(provider: str, host: str) -> NodeTarget:
    return NodeTarget("n", provider, "main", host, 22, "root", "/k")


def test_a_cloud_node_is_public_at_its_address() -> None:
    assert _place_real(_node("hetzner", "203.0.113.5"), {}) == ("203.0.113.5", "", "")


def test_a_home_node_is_behind_nat_on_the_lan_of_its_address() -> None:
    assert _place_real(_node("local", "192.168.1.10"), INTERFACES) == (
        "",
        "192.168.1.10",
        "192.168.1.0/24",
    )
    # A host name tells no LAN: the kombination's one home LAN.
    assert _place_real(_node("local", "nas.local"), INTERFACES) == ("", "nas.local", HOME_LAN)


def test_addresses_are_kept_per_subnet(tmp_path: Path) -> None:
    path = tmp_path / "mesh.json"
    assert _load_addresses(path, "10.66.0.0/24") == {}
    _save_addresses(path, "10.66.0.0/24", {"home": "10.66.0.1"})
    assert _load_addresses(path, "10.66.0.0/24") == {"home": "10.66.0.1"}
    assert _load_addresses(path, "10.77.0.0/24") == {}  # another subnet: all anew
    path.write_text("{not json")
    assert _load_addresses(path, "10.66.0.0/24") == {}
