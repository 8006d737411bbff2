"""A unifier-generated configuration applied for real to a KombiSim node over loopback SSH.

kombination (sim-single example) -> unifier -> work directory -> init, validate, plan,
apply, re-plan (no changes), re-apply (nothing done), destroy. The node is a container whose
sshd is published on 127.0.0.1; the test machine itself is never bootstrapped.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kombify import sim
from kombify.sim.models import SshEndpoint
from kombify.sim.ssh import run as ssh_run
from kombify.specs import load_kombination
from kombify.tofu import TofuRunner
from kombify.unifier import unify, write_plan
from kombify.unifier.changes import plan_lines

pytestmark = pytest.mark.docker

KOMBINATION = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata:
  name: tofu-on-sim
spec:
  stackkit: base-homelab
  variant: debian-12
  nodes:
    - name: box
      provider: sim
      resources: {cpus: 1, memory: 512Mi}
      ssh: {user: USER}
  services:
    web:
      image: kombify-test/httpd:1
      ports: [{container: 80, host: 8080}]
"""


@pytest.fixture
async def sim_node() -> AsyncIterator[SshEndpoint]:
    """One simulated node (real sshd on 127.0.0.1), removed afterwards."""
    if not await asyncio.to_thread(sim.engine_available):
        pytest.skip("no Docker engine answers (scripts/ensure-docker.sh starts one)")
    name = f"kt-tofu-{secrets.token_hex(3)}"
    await asyncio.to_thread(sim.ensure_image)
    try:
        info = await asyncio.to_thread(sim.create_simulation, name, ["box"])
        [node] = info.nodes
        assert node.ssh is not None and node.ssh.host == "127.0.0.1"
        yield node.ssh
    finally:
        await asyncio.to_thread(sim.delete_simulation, name)


async def test_generated_config_applies_to_a_sim_node_and_converges(
    sim_node: SshEndpoint, tofu_binary: str, tmp_path: Path
) -> None:
    private_key = Path(sim_node.identity_file).read_text()
    kombination = load_kombination(KOMBINATION.replace("USER", sim_node.user))
    plan = unify(kombination, secrets_ref={"ssh_private_key": private_key})
    workdir = tmp_path / "stack"
    write_plan(plan, workdir)
    # Where this simulation's sshd is published (the config's defaults are for real nodes).
    tfvars = workdir / "sim.auto.tfvars.json"
    tfvars.write_text(json.dumps({"node_box_host": sim_node.host, "node_box_port": sim_node.port}))
    runner = TofuRunner(binary=tofu_binary, kill_grace=5.0)
    lines: list[str] = []

    await runner.init(workdir, on_line=lines.append)
    assert await runner.validate(workdir) == []
    first = await runner.plan(workdir, on_line=lines.append)
    assert (first.add, first.change, first.destroy) == (1, 0, 0)
    assert [r.address for r in first.resources] == ["terraform_data.node_box"]

    applied = await runner.apply(workdir, on_line=lines.append)
    assert applied.added == 1
    assert applied.outputs["node_box"]["port"] == sim_node.port
    output = "\n".join(lines)
    assert "kombify: docker-engine" in output  # the bootstrap ran on the node, streamed back
    assert "BEGIN OPENSSH PRIVATE KEY" not in output and private_key not in output
    assert not any(line.lstrip().startswith("{") for line in lines)  # messages, not raw JSON
    # Services reach the node through its agent only: the bootstrap leaves no manifest copy.
    left = await ssh_run(
        sim_node, "ls /etc/kombify/manifest.json /tmp/kombify-manifest.json 2>&1 || true"
    )
    assert left.count("No such file") == 2, left

    again = await runner.plan(workdir)
    assert not again.has_changes

    # A changed service and a moved SSH port (a restarted simulated node) replace nothing.
    changed = KOMBINATION.replace("USER", sim_node.user).replace("httpd:1", "httpd:2")
    changed += "      env: {GREETING: hello}\n"
    write_plan(
        unify(load_kombination(changed), secrets_ref={"ssh_private_key": private_key}), workdir
    )
    tfvars.write_text(
        json.dumps({"node_box_host": sim_node.host, "node_box_port": sim_node.port + 1})
    )
    moved = await runner.plan(workdir)
    assert (moved.add, moved.change, moved.destroy) == (0, 0, 0), moved.resources
    assert plan_lines(moved, ["box"])[0] == "node box: no change"
    # A changed bootstrap does replace the node, and the plan says why.
    main = json.loads((workdir / "main.tf.json").read_text())
    main["resource"]["terraform_data"]["node_box"]["triggers_replace"]["bootstrap"] = "sha256:0"
    (workdir / "main.tf.json").write_text(json.dumps(main))
    rebootstrap = await runner.plan(workdir)
    assert [r.replaced_by for r in rebootstrap.resources] == [["triggers_replace.bootstrap"]]
    assert (
        plan_lines(rebootstrap, ["box"])[0] == "node box: re-bootstrap (bootstrap script changed)"
    )
    write_plan(plan, workdir)
    tfvars.write_text(json.dumps({"node_box_host": sim_node.host, "node_box_port": sim_node.port}))
    await runner.plan(workdir)  # a fresh saved plan for the re-apply below
    reapplied = await runner.apply(workdir)
    assert (reapplied.added, reapplied.changed, reapplied.destroyed) == (0, 0, 0)

    await runner.destroy(workdir)
    after = await runner.plan(workdir)
    assert after.add == 1  # nothing left in state
