"""The unifier on a swarm kit: one swarm manifest with every service, nodes' own ones empty."""

from __future__ import annotations

import json
from pathlib import Path

from kombify.specs import load_kombination
from kombify.unifier import unify, write_plan
from kombify.unifier.swarm import SWARM_MANIFEST_FILE, swarm_images

HA = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: lab, labels: {site: attic}}
spec:
  stackkit: ha-homelab
  nodes:
    - {name: m1, provider: local, role: manager, address: 10.0.0.11}
    - {name: m2, provider: local, role: manager, address: 10.0.0.12}
    - {name: m3, provider: local, role: manager, address: 10.0.0.13}
    - {name: w1, provider: local, role: worker, address: 10.0.0.21}
  services:
    web:
      image: kombify-test/httpd:1
      replicas: 3
      ports: [{container: 80, host: 8080}]
      healthcheck: {http: "http://localhost:80/", interval: 1s}
    pinned: {image: "kombify-test/httpd:1", node: w1}
"""


def _swarm(source: str = HA) -> dict[str, object]:
    plan = unify(load_kombination(source))
    data: dict[str, object] = json.loads(plan.files[SWARM_MANIFEST_FILE])
    assert data == plan.swarm
    return data


def _services(data: dict[str, object]) -> dict[str, dict[str, object]]:
    return {s["name"]: s for s in data["services"]}  # type: ignore[attr-defined,index]


def test_nodes_carry_no_services_and_the_swarm_manifest_has_them_all() -> None:
    plan = unify(load_kombination(HA))

    for node in ("m1", "m2", "m3", "w1"):
        assert json.loads(plan.files[f"manifests/{node}.json"])["services"] == []
    services = _services(_swarm())
    assert {"web", "pinned", "reverse-proxy", "node-metrics", "dashboard"} <= set(services)
    assert unify(load_kombination(HA)).files == plan.files  # byte-identical for the same input


def test_placement_becomes_constraints_on_kombify_s_node_labels() -> None:
    services = _services(_swarm())

    web = services["web"]
    assert (web["mode"], web["replicas"], web["constraints"]) == ("replicated", 3, [])
    assert web["nodes"] == ["m1", "m2", "m3", "w1"]  # may run anywhere: image on every node
    assert services["pinned"]["constraints"] == ["node.labels.io.kombify.node==w1"]
    assert services["pinned"]["nodes"] == ["w1"]
    # Kit placement: the reverse proxy runs on every manager, node-metrics on every node.
    proxy = services["reverse-proxy"]
    assert (proxy["mode"], proxy["constraints"]) == (
        "global",
        ["node.labels.io.kombify.role==manager"],
    )
    assert proxy["nodes"] == ["m1", "m2", "m3"]
    assert (services["node-metrics"]["mode"], services["node-metrics"]["constraints"]) == (
        "global",
        [],
    )
    assert services["dashboard"]["mode"] == "replicated"


def test_nodes_are_labelled_with_name_role_and_the_stack_s_labels() -> None:
    data = _swarm()

    assert data["network"] == "kombify-overlay"
    assert data["nodes"][3] == {  # type: ignore[index]
        "name": "w1",
        "role": "worker",
        "labels": {
            "io.kombify.node": "w1",
            "io.kombify.role": "worker",
            "io.kombify.label.site": "attic",
        },
    }


def test_a_plain_docker_kit_has_no_swarm_manifest(tmp_path: Path) -> None:
    one_node = "  nodes:\n    - {name: m1, provider: local, address: 10.0.0.11}\n"
    source = HA.split("  nodes:")[0] + one_node
    plan = unify(load_kombination(source.replace("ha-homelab", "base-homelab")))

    assert plan.swarm is None and SWARM_MANIFEST_FILE not in plan.files
    assert swarm_images(tmp_path, "m1") == set()


def test_images_to_stage_follow_where_tasks_may_run(tmp_path: Path) -> None:
    source = HA.replace(
        '    pinned: {image: "kombify-test/httpd:1", node: w1}',
        '    pinned: {image: "kombify-test/caddy:2", node: w1}',
    )
    write_plan(unify(load_kombination(source)), tmp_path)

    assert "kombify-test/caddy:2" in swarm_images(tmp_path, "w1")
    assert "kombify-test/caddy:2" not in swarm_images(tmp_path, "m1")
    assert "kombify-test/httpd:1" in swarm_images(tmp_path, "m1")
