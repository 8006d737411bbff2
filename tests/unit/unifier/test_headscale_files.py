"""Headscale's config.yaml and ACL policy, generated from the kombination, checked against
schemas transcribed from Headscale 0.23.0's documented config and Tailscale's policy syntax
(tests/data/headscale/): the binaries cannot be run here, so the schema is the check."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kombify.specs import load_kombination, validate_text
from kombify.stackkits.resolver import resolve
from kombify.unifier.headscale import CONFIG_FILE, ENROLL_FILE, POLICY_FILE, headscale_files
from kombify.unifier.plan import unify
from tests.unit.specs.test_specs_rules import spec

DATA = Path(__file__).resolve().parents[2] / "data"
EXAMPLE = (DATA / "spec/examples/ha-homelab.yaml").read_text()  # the shared example
SWARM = (
    "stackkit: ha-homelab\n"
    "domain: lab.example.net\n"
    "nodes:\n"
    "  - {name: m1, provider: local, role: manager, address: 10.0.0.11}\n"
    "  - {name: m2, provider: local, role: manager, address: 10.0.0.12}\n"
    "  - {name: m3, provider: local, role: manager, address: 10.0.0.13}\n"
    "  - {name: w1, provider: local, role: worker, address: 10.0.0.21}\n"
)


def _checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("ipv4-network", raises=ValueError)
    def _network(value: object) -> bool:
        return not isinstance(value, str) or bool(ipaddress.IPv4Network(value, strict=True))

    return checker


def _schema(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((DATA / "headscale" / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=_checker())


def _files(text: str) -> dict[str, bytes]:
    return headscale_files(resolve(load_kombination(text)))


def _config(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(_files(text)[CONFIG_FILE])
    return loaded


def _policy(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_files(text)[POLICY_FILE])
    return loaded


@pytest.mark.parametrize(
    "text", [EXAMPLE, spec(SWARM + "network: {vpn: {enabled: true, provider: headscale}}\n")]
)
def test_the_generated_config_and_policy_follow_the_documented_schemas(text: str) -> None:
    _schema("config.schema.json").validate(_config(text))
    _schema("policy.schema.json").validate(_policy(text))


def test_the_schemas_refuse_what_headscale_would_not_take() -> None:
    # The checks above are only worth something if the schemas can fail.
    config = _config(EXAMPLE)
    for broken in (
        {**config, "server_url": "headscale.lab:8480"},  # no scheme: a fatal error in 0.23
        {**config, "prefix": config["prefixes"]},  # a misspelt key Headscale would ignore
        {**config, "dns": {**config["dns"], "base_domain": ""}},  # MagicDNS without a domain
        {**config, "prefixes": {"v4": "100.64.0.1/10"}},  # host bits set
        {**config, "policy": {"mode": "file"}},  # no policy path
    ):
        with pytest.raises(jsonschema.ValidationError):
            _schema("config.schema.json").validate(broken)
    policy = _policy(EXAMPLE)
    for broken_policy in (
        {**policy, "acl": policy["acls"]},
        {**policy, "acls": [{"action": "accept", "src": ["tag:manager"], "dst": ["tag:worker"]}]},
        {**policy, "tagOwners": {"manager": ["group:swarm"]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            _schema("policy.schema.json").validate(broken_policy)


def _reaches(policy: dict[str, Any], src: str, dst: str) -> bool:
    return any(
        rule["action"] == "accept"
        and src in rule["src"]
        and any(d in (f"{dst}:*", "*:*") for d in rule["dst"])
        and "proto" not in rule
        for rule in policy["acls"]
    )


def test_every_role_tag_reaches_every_other_on_every_port() -> None:
    text = spec(SWARM + "network: {vpn: {enabled: true, provider: headscale}}\n")
    policy = _policy(text)
    tags = {"tag:manager", "tag:worker"}
    assert set(policy["tagOwners"]) == tags
    for src in tags:
        for dst in tags:
            assert _reaches(policy, src, dst), (src, dst)
    # The tags are the stack's to set: owned by its group, whose one member is its user.
    assert policy["groups"] == {"group:lab": ["lab"]}
    assert all(owners == ["group:lab"] for owners in policy["tagOwners"].values())
    enroll = json.loads(_files(text)[ENROLL_FILE])
    assert enroll["nodes"] == {
        "m1": "tag:manager",
        "m2": "tag:manager",
        "m3": "tag:manager",
        "w1": "tag:worker",
    }
    assert enroll["user"] == "lab" and enroll["node"] == "m1"


def test_prefixes_are_the_subnet_else_headscales_own_range() -> None:
    default = _config(spec(SWARM + "network: {vpn: {enabled: true, provider: headscale}}\n"))
    assert default["prefixes"] == {"v4": "100.64.0.0/10", "allocation": "sequential"}
    chosen = _config(
        spec(
            SWARM + "network: {vpn: {enabled: true, provider: headscale, subnet: 100.90.0.0/24}}\n"
        )
    )
    assert chosen["prefixes"]["v4"] == "100.90.0.0/24"


@pytest.mark.parametrize("subnet", ["10.66.0.0/24", "100.128.0.0/24", "100.64.0.0/30"])
def test_a_subnet_headscale_does_not_support_is_refused_at_its_path(subnet: str) -> None:
    text = spec(
        SWARM + f"network: {{vpn: {{enabled: true, provider: headscale, subnet: {subnet}}}}}\n"
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.network.vpn.subnet"
    assert "100.64.0.0/10" in problem.message


def test_no_external_derp_and_an_embedded_relay() -> None:
    derp = _config(EXAMPLE)["derp"]
    assert derp["urls"] == [] and derp["paths"] == [] and derp["auto_update_enabled"] is False
    assert derp["server"]["enabled"] is True
    assert derp["server"]["automatically_add_embedded_derp_region"] is True


def test_server_url_dns_and_policy_path() -> None:
    config = _config(spec(SWARM + "network: {vpn: {enabled: true, provider: headscale}}\n"))
    # m1 runs the server (the kit's vpn role); the catalog publishes 8080 on 8480.
    assert config["server_url"] == "http://10.0.0.11:8480"
    assert config["listen_addr"] == "0.0.0.0:8080"
    assert config["dns"]["magic_dns"] is True
    assert config["dns"]["base_domain"] == "ts.lab.example.net"
    assert config["policy"] == {"mode": "file", "path": "/etc/headscale/policy.json"}
    assert config["database"]["type"] == "sqlite"


def test_the_server_reads_the_generated_files_from_a_host_directory() -> None:
    stack = resolve(load_kombination(EXAMPLE))
    vpn = next(s for s in stack.services if s.name == "vpn")
    assert "/etc/kombify/headscale:/etc/headscale:ro" in vpn.definition["volumes"]


def test_the_plan_carries_the_files_byte_identical_and_none_without_headscale() -> None:
    text = spec(SWARM + "network: {vpn: {enabled: true, provider: headscale}}\n")
    first, second = unify(load_kombination(text)), unify(load_kombination(text))
    for name in (CONFIG_FILE, POLICY_FILE, ENROLL_FILE):
        assert first.files[name] == second.files[name]
    assert not any(n.startswith("headscale/") for n in unify(load_kombination(spec(SWARM))).files)


@pytest.mark.parametrize(
    ("node", "url"),
    [
        ("{name: m, provider: local, role: main, address: 10.0.0.2}", "http://10.0.0.2:8480"),
        (
            "{name: m, provider: hetzner, role: main, type: cx22, location: fsn1}",
            "http://headscale.lab.example.net:8480",  # a cloud node's address comes later
        ),
    ],
)
def test_server_url_never_contains_the_base_domain(node: str, url: str) -> None:
    # Headscale 0.23 refuses to start otherwise (MagicDNS would take over the server's name);
    # a check across two keys, which the schema cannot express.
    text = spec(
        f"stackkit: base-homelab\ndomain: lab.example.net\nnodes: [{node}]\n"
        "network: {vpn: {enabled: true, provider: headscale}}\n"
    )
    config = _config(text)
    assert config["server_url"] == url
    assert config["dns"]["base_domain"] not in config["server_url"]
    _schema("config.schema.json").validate(config)
