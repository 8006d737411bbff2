"""The unifier: deterministic OpenTofu JSON, manifests, secrets, cloud resources, HCL."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import hcl2
import pytest

from kombify.errors import SpecError
from kombify.specs import load_kombination
from kombify.unifier import SECRETS_FILE, to_hcl, unify, write_plan

DATA = Path(__file__).resolve().parents[2] / "data" / "spec" / "examples"
EXAMPLES = sorted(DATA.glob("*.yaml"))


def plan_for(name: str, **kwargs: Any) -> Any:
    return unify(load_kombination((DATA / f"{name}.yaml").read_text()), **kwargs)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_byte_identical_for_the_same_input(path: Path) -> None:
    first = unify(load_kombination(path.read_text()))
    second = unify(load_kombination(path.read_text()))
    assert first.files == second.files and first.fingerprint == second.fingerprint
    for content in first.files.values():
        assert b"\r" not in content


def test_local_nodes_use_only_builtin_resources() -> None:
    plan = plan_for("ha-homelab")
    main = json.loads(plan.files["main.tf.json"])
    assert set(main["resource"]) == {"terraform_data"}
    assert "required_providers" not in main["terraform"] and "provider" not in main
    node = main["resource"]["terraform_data"]["node_m3"]
    assert node["connection"]["type"] == "ssh"
    assert node["connection"]["user"] == "admin"
    # Only the bootstrap script is uploaded: services reach the node through its agent.
    assert [next(iter(p)) for p in node["provisioner"]] == ["file", "remote-exec"]
    assert node["provisioner"][1]["remote-exec"]["inline"] == [
        "sudo -n sh /tmp/kombify-bootstrap.sh; status=$?; rm -f /tmp/kombify-bootstrap.sh; "
        "exit $status"
    ]
    assert set(node["triggers_replace"]) == {"node", "bootstrap"}
    assert node["triggers_replace"]["bootstrap"].startswith("sha256:")
    variables = json.loads(plan.files["variables.tf.json"])["variable"]
    assert variables["node_m3_port"]["default"] == 2222
    assert variables["node_m1_host"]["default"] == "10.0.0.11"


def _nodes(text: str) -> dict[str, Any]:
    main = json.loads(unify(load_kombination(text)).files["main.tf.json"])
    return dict(main["resource"]["terraform_data"])


def test_triggers_change_only_for_the_node_whose_bootstrap_changed() -> None:
    text = """apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: lab}
spec:
  stackkit: modern-homelab
  nodes:
    - {name: a, provider: local, role: main, address: 10.0.0.1}
    - {name: b, provider: local, role: worker, address: 10.0.0.2}
"""
    # A host port on b opens b's firewall: b's bootstrap changes, a's does not.
    changed = (
        text
        + "  services:\n    web: {image: a/b:1, node: b, ports: [{container: 80, host: 8080}]}\n"
    )
    before, after = _nodes(text), _nodes(changed)
    assert before["node_b"]["triggers_replace"] != after["node_b"]["triggers_replace"]
    assert before["node_a"]["triggers_replace"] == after["node_a"]["triggers_replace"]


def _sim_box(
    *, image: str = "kombify-test/httpd:1", env: str = "A", port: int = 32768, key: str = ""
) -> Any:
    """A one-node stack rewritten the way a deploy reaches its simulated node."""
    k = load_kombination(f"""apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: lab}}
spec:
  stackkit: base-homelab
  nodes: [{{name: box, provider: sim, role: main}}]
  services:
    web: {{image: {image}, node: box, ports: [{{container: 80, host: 8080}}], env: {{A: {env}}}}}
""")
    node = k.spec.nodes[0]
    ssh = node.ssh.model_copy(update={"port": 22, "host_key": key or None})
    node = node.model_copy(update={"address": f"127.0.0.1:{port}", "ssh": ssh})
    return k.model_copy(update={"spec": k.spec.model_copy(update={"nodes": [node]})})


def test_service_changes_leave_the_opentofu_configuration_alone() -> None:
    before = unify(_sim_box())
    for changed in (_sim_box(image="kombify-test/httpd:2"), _sim_box(env="B")):
        after = unify(changed)
        assert after.manifests != before.manifests  # the agent gets the change ...
        for name in ("main.tf.json", "variables.tf.json", "bootstrap/box.sh"):
            assert after.files[name] == before.files[name]  # ... OpenTofu does not


def test_the_connection_address_and_host_key_are_not_triggers() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    before = unify(_sim_box())
    moved = unify(_sim_box(port=40001, key=key))
    resource = json.loads(moved.files["main.tf.json"])["resource"]["terraform_data"]["node_box"]
    assert resource["connection"]["host_key"] == key  # the pin is connection detail ...
    old = json.loads(before.files["main.tf.json"])["resource"]["terraform_data"]["node_box"]
    assert resource["triggers_replace"] == old["triggers_replace"]  # ... and no trigger
    # Nor through a variable: OpenTofu would see the new port in the evaluated value.
    assert not any("${" in v for v in resource["triggers_replace"].values())
    variables = json.loads(moved.files["variables.tf.json"])["variable"]
    assert variables["node_box_port"]["default"] == 40001


def test_cloud_nodes_are_re_bootstrapped_on_a_new_server() -> None:
    nodes = _nodes((DATA / "modern-homelab.yaml").read_text())
    assert (
        nodes["node_worker_b"]["triggers_replace"]["machine"] == "${aws_instance.node_worker_b.id}"
    )
    assert "machine" not in nodes["node_main"]["triggers_replace"]


def test_manifests_list_what_runs_on_each_node() -> None:
    plan = plan_for("modern-homelab")
    worker = json.loads(plan.files["manifests/worker-a.json"])
    assert worker["kind"] == "NodeManifest" and worker["node"]["role"] == "worker"
    assert [s["name"] for s in worker["services"]] == ["notes"]
    assert worker["services"][0]["replicas"] == 2
    main = plan.manifests["main"]
    assert {s["name"] for s in main["services"]} == {"reverse-proxy", "dashboard"}


def test_secrets_are_never_inlined_and_written_0600(tmp_path: Path) -> None:
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nTOPSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
    plan = plan_for(
        "cloud-hybrid", secrets_ref={"ssh_private_key": secret, "hcloud_token": "tok-123"}
    )
    assert plan.sensitive == ("hcloud_token", "ssh_private_key")
    for content in plan.files.values():
        assert b"TOPSECRET" not in content and b"tok-123" not in content
    variables = json.loads(plan.files["variables.tf.json"])["variable"]
    assert variables["ssh_private_key"]["sensitive"] is True
    assert variables["hcloud_token"]["sensitive"] is True
    (tmp_path / SECRETS_FILE).write_text("{}")
    (tmp_path / SECRETS_FILE).chmod(0o644)  # an old, too-open file gets tightened
    written = write_plan(plan, tmp_path)
    secrets_path = tmp_path / SECRETS_FILE
    assert secrets_path in written
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    assert json.loads(secrets_path.read_text())["hcloud_token"] == "tok-123"
    with pytest.raises(SpecError):
        plan_for("base-homelab", secrets_ref={"nope": "x"})


def test_identity_file_is_referenced_not_read() -> None:
    text = (
        (DATA / "base-homelab.yaml")
        .read_text()
        .replace(
            "address: 192.168.1.10",
            "address: 192.168.1.10\n      ssh: {identityFile: ~/.ssh/id_lab}",
        )
    )
    plan = unify(load_kombination(text))
    main = json.loads(plan.files["main.tf.json"])
    conn = main["resource"]["terraform_data"]["node_nas"]["connection"]
    assert conn["private_key"] == "${file(pathexpand(var.node_nas_identity_file))}"
    assert plan.sensitive == ()


def test_hetzner_structure() -> None:
    main = json.loads(plan_for("cloud-hybrid").files["main.tf.json"])
    assert main["terraform"]["required_providers"]["hcloud"]["source"] == "hetznercloud/hcloud"
    server = main["resource"]["hcloud_server"]["node_edge"]
    assert (server["server_type"], server["location"], server["image"]) == (
        "cx22",
        "fsn1",
        "debian-12",
    )
    assert server["ssh_keys"] == ["${hcloud_ssh_key.kombify.id}"]
    rules = main["resource"]["hcloud_firewall"]["node_edge"]["rule"]
    assert {"tcp:22", "udp:51820", "tcp:443"} <= {f"{r['protocol']}:{r['port']}" for r in rules}
    conn = main["resource"]["terraform_data"]["node_edge"]["connection"]
    assert conn["host"] == "${hcloud_server.node_edge.ipv4_address}"


def test_aws_structure() -> None:
    main = json.loads(plan_for("modern-homelab").files["main.tf.json"])
    assert main["terraform"]["required_providers"]["aws"]["source"] == "hashicorp/aws"
    assert main["provider"]["aws"] == [{"alias": "eu_central_1", "region": "eu-central-1"}]
    res = main["resource"]
    for kind in (
        "aws_vpc",
        "aws_subnet",
        "aws_internet_gateway",
        "aws_route_table",
        "aws_route_table_association",
        "aws_security_group",
        "aws_key_pair",
        "aws_instance",
    ):
        assert kind in res, kind
    instance = res["aws_instance"]["node_worker_b"]
    assert instance["instance_type"] == "t3.small"
    assert instance["ami"] == "${data.aws_ami.kombify_eu_central_1.id}"
    assert main["data"]["aws_ami"]["kombify_eu_central_1"]["owners"] == ["136693071363"]
    conn = res["terraform_data"]["node_worker_b"]["connection"]
    assert (conn["host"], conn["user"]) == ("${aws_instance.node_worker_b.public_ip}", "admin")


def test_azure_structure() -> None:
    text = (
        (DATA / "cloud-hybrid.yaml")
        .read_text()
        .replace(
            "provider: hetzner, role: edge, type: cx22, location: fsn1",
            "provider: azure, role: edge",
        )
    )
    main = json.loads(unify(load_kombination(text)).files["main.tf.json"])
    assert main["provider"]["azurerm"][0]["features"] == {}
    res = main["resource"]
    vm = res["azurerm_linux_virtual_machine"]["node_edge"]
    assert vm["size"] == "Standard_B2s" and vm["admin_username"] == "kombify"
    assert vm["source_image_reference"][0]["publisher"] == "Debian"
    assert vm["network_interface_ids"] == ["${azurerm_network_interface.node_edge.id}"]
    for kind in (
        "azurerm_resource_group",
        "azurerm_virtual_network",
        "azurerm_subnet",
        "azurerm_public_ip",
        "azurerm_network_interface",
        "azurerm_network_security_group",
        "azurerm_network_interface_security_group_association",
    ):
        assert kind in res, kind


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


def _norm_hcl(value: Any, key: str = "") -> Any:
    """python-hcl2's shape (blocks as lists, quoted strings) -> Terraform JSON's shape."""
    if isinstance(value, dict):
        return {
            _unquote(k): _norm_hcl(v, _unquote(k)) for k, v in value.items() if k != "__is_block__"
        }
    if isinstance(value, list):
        items = [_norm_hcl(v) for v in value]
        if key == "provisioner":
            return items
        if value and all(isinstance(v, dict) and "__is_block__" not in v for v in value):
            merged: dict[str, Any] = {}  # labelled blocks: resource "t" "n" {...} merge by label
            for item in items:
                for label, body in item.items():
                    merged.setdefault(label, {}).update(body) if isinstance(body, dict) else None
            return merged
        return items[0] if len(items) == 1 and isinstance(items[0], dict) and key else items
    return _unquote(value)


def _norm_json(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _norm_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_norm_json(v) for v in value]
        if key != "provisioner" and len(items) == 1 and isinstance(items[0], dict):
            return items[0]
        return items
    return value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_hcl_says_the_same_as_json(path: Path) -> None:
    plan = unify(load_kombination(path.read_text()))
    for name in ("main", "variables", "outputs"):
        parsed = hcl2.loads(to_hcl(plan.config[name]))
        assert _norm_hcl(parsed) == _norm_json(plan.config[name]), name


def test_write_plan_removes_other_format_and_stale_nodes(tmp_path: Path) -> None:
    write_plan(plan_for("modern-homelab"), tmp_path)
    assert (tmp_path / "bootstrap" / "worker-b.sh").exists()
    text = (DATA / "modern-homelab.yaml").read_text()
    smaller = text.replace(
        "    - {name: worker-b, provider: aws, role: worker,"
        " type: t3.small, location: eu-central-1}\n",
        "",
    )
    write_plan(unify(load_kombination(smaller)), tmp_path, fmt="hcl")
    assert not (tmp_path / "bootstrap" / "worker-b.sh").exists()
    assert (tmp_path / "main.tf").exists() and not (tmp_path / "main.tf.json").exists()
