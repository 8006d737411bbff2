"""The WireGuard mesh's addresses, peers, endpoints and keepalives (kombify/unifier/mesh.py)."""

from __future__ import annotations

import pytest

from kombify.unifier.mesh import (
    KEEPALIVE_S,
    MeshNode,
    allocate,
    lan_of,
    plan_mesh,
    unreachable_pairs,
)

SUBNET = "10.66.0.0/24"
HOME1 = MeshNode("home1", "K" * 43 + "=", lan_address="192.168.1.10", lan="192.168.1.0/24")
HOME2 = MeshNode("home2", "L" * 43 + "=", lan_address="192.168.1.11", lan="192.168.1.0/24")
CLOUD = MeshNode("edge", "M" * 43 + "=", public_address="203.0.113.5")
CLOUD2 = MeshNode("edge2", "N" * 43 + "=", public_address="198.51.100.7")


def test_new_nodes_get_the_lowest_free_addresses_in_order() -> None:
    assert allocate(SUBNET, ["a", "b", "c"], {}) == {
        "a": "10.66.0.1",
        "b": "10.66.0.2",
        "c": "10.66.0.3",
    }


def test_addresses_stay_with_their_nodes_and_a_freed_one_is_given_again() -> None:
    first = allocate(SUBNET, ["a", "b", "c"], {})
    # b leaves, d comes: a and c keep theirs, d takes b's old (now lowest free) address.
    second = allocate(SUBNET, ["a", "c", "d"], first)
    assert second == {"a": "10.66.0.1", "c": "10.66.0.3", "d": "10.66.0.2"}
    # A node written earlier in the file does not move the others.
    assert allocate(SUBNET, ["d", "a", "c"], second) == second


def test_a_new_subnet_gives_every_node_an_address_of_it() -> None:
    old = allocate(SUBNET, ["a", "b"], {})
    assert allocate("10.77.0.0/24", ["a", "b"], old) == {"a": "10.77.0.1", "b": "10.77.0.2"}


def test_a_full_subnet_is_refused_naming_the_node() -> None:
    with pytest.raises(ValueError, match="no free address for `o`"):
        allocate("10.66.0.0/28", [chr(ord("a") + i) for i in range(15)], {})


def test_every_pair_is_peered_exactly_once_with_its_address() -> None:
    nodes = [HOME1, HOME2, CLOUD, CLOUD2]
    addresses = allocate(SUBNET, [n.name for n in nodes], {})
    plans = plan_mesh(SUBNET, nodes, addresses)
    assert [p.address for p in plans] == [f"10.66.0.{i}/24" for i in (1, 2, 3, 4)]
    for plan in plans:
        names = [peer.name for peer in plan.peers]
        assert sorted(names) == sorted(n.name for n in nodes if n.name != plan.name)
        for peer in plan.peers:
            assert peer.allowed_ips == [f"{addresses[peer.name]}/32"]
    edges = {frozenset((plan.name, peer.name)) for plan in plans for peer in plan.peers}
    assert len(edges) == 4 * 3 // 2


def test_public_nodes_are_endpoints_and_nat_nodes_keep_the_tunnel_open() -> None:
    nodes = [HOME1, CLOUD, CLOUD2]
    plans = {
        p.name: p
        for p in plan_mesh(SUBNET, nodes, allocate(SUBNET, ["home1", "edge", "edge2"], {}))
    }
    home = {peer.name: peer for peer in plans["home1"].peers}
    assert home["edge"].endpoint == "203.0.113.5:51820"
    assert home["edge"].persistent_keepalive == KEEPALIVE_S == 25
    edge = {peer.name: peer for peer in plans["edge"].peers}
    # Behind NAT: nobody can dial it, it dials out.
    assert edge["home1"].endpoint == "" and edge["home1"].persistent_keepalive == 0
    # Two public nodes dial each other, no keepalive needed.
    assert edge["edge2"].endpoint == "198.51.100.7:51820"
    assert edge["edge2"].persistent_keepalive == 0


def test_two_home_nodes_on_one_lan_use_their_lan_addresses() -> None:
    nodes = [HOME1, HOME2, CLOUD]
    plans = {
        p.name: p
        for p in plan_mesh(SUBNET, nodes, allocate(SUBNET, ["home1", "home2", "edge"], {}))
    }
    peer = next(p for p in plans["home1"].peers if p.name == "home2")
    assert (peer.endpoint, peer.persistent_keepalive) == ("192.168.1.11:51820", 0)
    assert unreachable_pairs(nodes) == []


def test_home_nodes_of_two_lans_have_no_direct_path() -> None:
    other = MeshNode("cabin", "O" * 43 + "=", lan_address="192.168.7.2", lan="192.168.7.0/24")
    nodes = [HOME1, other, CLOUD]
    plans = {
        p.name: p
        for p in plan_mesh(SUBNET, nodes, allocate(SUBNET, ["home1", "cabin", "edge"], {}))
    }
    peer = next(p for p in plans["home1"].peers if p.name == "cabin")
    assert peer.endpoint == ""
    assert unreachable_pairs(nodes) == [("home1", "cabin")]


def test_lan_of_finds_the_interface_network_holding_the_address() -> None:
    interfaces = {"docker0": ["172.17.0.1/16"], "eth0": ["192.168.1.10/24"]}
    assert lan_of("192.168.1.10", interfaces) == "192.168.1.0/24"
    assert lan_of("nas.local", interfaces) == ""
    assert lan_of("10.0.0.9", interfaces) == ""
