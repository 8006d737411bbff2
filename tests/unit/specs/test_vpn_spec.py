"""``spec.network.vpn``: the WireGuard mesh is the default, its subnet is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.specs import load_kombination, validate_text
from kombify.stackkits.resolver import resolve
from tests.unit.specs.test_specs_rules import spec

HYBRID = (
    "stackkit: cloud-hybrid\n"
    "nodes:\n"
    "  - {name: home, provider: local, role: main, address: 192.168.1.2}\n"
    "  - {name: edge, provider: hetzner, role: edge, type: cx22, location: fsn1}\n"
)


def test_wireguard_is_the_default_provider_with_a_private_24() -> None:
    k = load_kombination(spec(HYBRID + "network: {vpn: {enabled: true}}\n"))
    assert k.spec.network.vpn.provider == "wireguard"
    assert k.spec.network.vpn.subnet == "10.66.0.0/24"


@pytest.mark.parametrize("subnet", ["10.99.0.0/24", "192.168.77.0/24", "100.64.0.0/24"])
def test_a_private_subnet_is_accepted(subnet: str) -> None:
    assert (
        validate_text(spec(HYBRID + f"network: {{vpn: {{enabled: true, subnet: {subnet}}}}}\n"))
        == []
    )


@pytest.mark.parametrize(
    ("subnet", "words"),
    [
        ("8.8.8.0/24", "not a private range"),
        ("10.66.0.1/24", "host bits set"),
        ("10.66.0.0/30", "from /16 to /28"),
        ("10.0.0.0/8", "from /16 to /28"),
        ("lots", "expected a private IPv4 network like 10.66.0.0/24"),
    ],
)
def test_a_bad_subnet_is_refused_at_its_path(subnet: str, words: str) -> None:
    [problem] = validate_text(
        spec(HYBRID + f"network: {{vpn: {{enabled: true, subnet: '{subnet}'}}}}\n")
    )
    assert problem.path == "spec.network.vpn.subnet"
    assert words in problem.message


def test_the_mesh_plans_no_wireguard_container_and_opens_its_port() -> None:
    k = load_kombination(spec(HYBRID + "network: {vpn: {enabled: true}}\n"))
    stack = resolve(k)
    assert "vpn" not in [s.name for s in stack.services]
    for node in stack.nodes:
        assert "51820" in node.settings["firewall"]["udp_list"]


def test_headscale_stays_a_container_where_the_kit_does_not_need_the_vpn() -> None:
    # tests/data/spec/examples/ha-homelab.yaml (the shared example) asks for it this way.
    text = (Path(__file__).resolve().parents[2] / "data/spec/examples/ha-homelab.yaml").read_text()
    assert "provider: headscale" in text
    vpn = next(s for s in resolve(load_kombination(text)).services if s.name == "vpn")
    assert vpn.use == "headscale" and vpn.nodes == ("m1",)


def test_a_vpn_service_beside_the_mesh_is_refused() -> None:
    text = spec(HYBRID + "network: {vpn: {enabled: true}}\nservices: {vpn: {image: 'x:1'}}\n")
    [problem] = validate_text(text)
    assert problem.path == "spec.services.vpn"
    assert "mesh kombify builds on every node" in problem.message


def test_a_subnet_with_headscale_must_be_in_its_range_not_ignored() -> None:
    # It becomes Headscale's prefixes.v4 (tests/unit/unifier/test_headscale_files.py).
    text = spec(
        "stackkit: base-homelab\nnodes: [{name: nas, provider: local, address: 10.0.0.2}]\n"
        "network: {vpn: {enabled: true, provider: headscale, subnet: 10.66.0.0/24}}\n"
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.network.vpn.subnet"
    assert "headscale hands out addresses of 100.64.0.0/10" in problem.message
    assert validate_text(text.replace("10.66.0.0/24", "100.66.0.0/24")) == []


def test_headscale_without_its_server_is_refused_not_ignored() -> None:
    text = spec(
        "stackkit: base-homelab\nnodes: [{name: nas, provider: local, address: 10.0.0.2}]\n"
        "network: {vpn: {enabled: true, provider: headscale}}\n"
        "services: {vpn: {enabled: false}}\n"
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.services.vpn.enabled"
    assert "the vpn service is the Headscale server kombify enrolls the nodes in" in problem.message
