"""The StackKit library as data and the resolver's layering."""

from __future__ import annotations

import itertools

import pytest

from kombify.cli.stackkit import scaffold
from kombify.specs import load_kombination, validate_text
from kombify.stackkits import KIT_NAMES, load_library, merge, resolve
from kombify.stackkits.resolver import layer_settings

ROLES = {"main", "worker", "manager", "edge"}


def test_library_has_all_kits_complete() -> None:
    lib = load_library()
    assert set(lib.kits) == set(KIT_NAMES)
    for kit in lib.kits.values():
        assert kit.platform in lib.platforms
        assert set(kit.variants) == {"debian-12", "ubuntu-24.04"}
        assert set(kit.roles) <= ROLES and kit.default_role in kit.roles
        uses = {s.use for s in kit.services.values()}
        assert uses <= set(lib.catalog)
        # A real catalog: a reverse proxy, a dashboard and monitoring in every kit.
        assert {"reverse-proxy", "dashboard"} <= set(kit.services)
        assert uses & {"uptime-kuma", "prometheus"}
    for service in lib.catalog.values():
        assert ":" in service.image and not service.image.endswith(":latest")
        assert service.healthcheck is not None


def test_merge_order_later_wins_maps_merge_lists_replace_null_removes() -> None:
    assert merge(
        {"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2]}, "b": None}, {"a": {"z": 3}}
    ) == {"a": {"x": 1, "y": [2], "z": 3}}


def test_layers_core_platform_kit_variant() -> None:
    debian = layer_settings("ha-homelab", "debian-12")
    ubuntu = layer_settings("ha-homelab", "ubuntu-24.04")
    assert debian["admin_user"] == "kombify"  # core
    assert debian["reserved_memory"] == "384Mi"  # swarm platform overrides core's 256Mi
    assert debian["firewall"]["allow_tcp"] == [2377, 7946]
    assert debian["packages"]["docker"] == "docker.io docker-compose"
    assert ubuntu["packages"]["docker"] == "docker.io docker-compose-v2"
    assert layer_settings("base-homelab", "debian-12")["reserved_memory"] == "256Mi"


def _scaffolded(kit: str, count: int) -> str:
    return scaffold(kit, "lab", "sim", count, [])


@pytest.mark.parametrize(
    ("kit", "variant"), list(itertools.product(KIT_NAMES, ["debian-12", "ubuntu-24.04"]))
)
def test_every_kit_and_variant_resolves_with_default_services(kit: str, variant: str) -> None:
    text = _scaffolded(kit, 4).replace(f"stackkit: {kit}", f"stackkit: {kit}\n  variant: {variant}")
    assert validate_text(text) == []  # defaults never clash with each other
    stack = resolve(load_kombination(text))
    for rnode in stack.nodes:
        assert rnode.bootstrap.startswith("#!/bin/sh\n")
        assert "{{" not in rnode.bootstrap
        assert "/etc/kombify/manifest.json" in rnode.bootstrap
    assert all(s.nodes for s in stack.services)


def test_variant_changes_os_specific_commands() -> None:
    base = "stackkit: base-homelab\n  nodes: [{name: n, provider: local, address: 10.0.0.1}]\n"
    head = "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\nspec:\n  "
    debian = resolve(load_kombination(head + base)).nodes[0].bootstrap
    ubuntu = resolve(load_kombination(head + "variant: ubuntu-24.04\n  " + base)).nodes[0].bootstrap
    assert "nft -f" in debian and "ufw" not in debian
    assert "ufw --force enable" in ubuntu and "nft -f" not in ubuntu
    assert "tcp dport { 22, 80, 443 } accept" in debian  # ssh + the reverse proxy's ports


def test_sim_nodes_skip_host_level_steps() -> None:
    stack = resolve(load_kombination(_scaffolded("base-homelab", 1)))
    script = stack.nodes[0].bootstrap
    assert "kombify: docker-engine" in script
    assert "kombify: firewall" not in script and "kombify: ssh-hardening" not in script


def test_user_overrides_a_catalog_service_last() -> None:
    text = _scaffolded("base-homelab", 1).replace(
        "dashboard: {}",
        "dashboard: {image: 'ghcr.io/gethomepage/homepage:v0.9.10', env: {TZ: UTC}}",
    )
    stack = resolve(load_kombination(text))
    dashboard = next(s for s in stack.services if s.name == "dashboard")
    assert dashboard.definition["image"] == "ghcr.io/gethomepage/homepage:v0.9.10"
    assert dashboard.definition["env"] == {"TZ": "UTC"}
    assert dashboard.definition["ports"] == [{"container": 3000, "host": 3000, "protocol": "tcp"}]


def test_placement_global_and_spread() -> None:
    text = _scaffolded("ha-homelab", 5)
    text = text.replace(
        "dashboard: {}", "dashboard: {}\n    a: {image: 'x:1'}\n    b: {image: 'x:1'}"
    )
    stack = resolve(load_kombination(text))
    by_name = {s.name: s.nodes for s in stack.services}
    assert by_name["node-metrics"] == (
        "manager-1",
        "manager-2",
        "manager-3",
        "worker-1",
        "worker-2",
    )
    assert by_name["reverse-proxy"] == ("manager-1", "manager-2", "manager-3")
    assert (by_name["a"], by_name["b"]) == (("worker-1",), ("worker-2",))


def test_disabling_a_default_service() -> None:
    text = _scaffolded("base-homelab", 1).replace(
        "dashboard: {}", "reverse-proxy: {enabled: false}"
    )
    assert "reverse-proxy" not in {s.name for s in resolve(load_kombination(text)).services}
