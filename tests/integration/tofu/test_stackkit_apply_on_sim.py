"""`stackkit plan` and `stackkit apply` as a user runs them, against a simulated node.

The kombination names the node as a user would name a box at home: `provider: local` with an
address and a key. Here that address is a KombiSim node's sshd published on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kombify import sim
from kombify.cli.stackkit import app
from kombify.sim.models import SshEndpoint
from kombify.sim.ssh import run as ssh_run

pytestmark = pytest.mark.docker
ENV = {"NO_COLOR": "1", "COLUMNS": "120"}


@pytest.fixture
async def node() -> AsyncIterator[SshEndpoint]:
    if not await asyncio.to_thread(sim.engine_available):
        pytest.skip("no Docker engine answers")
    name = f"ks-{secrets.token_hex(3)}"
    await asyncio.to_thread(sim.ensure_image)
    info = await asyncio.to_thread(sim.create_simulation, name, ["nas"])
    try:
        endpoint = info.nodes[0].ssh
        assert endpoint is not None
        yield endpoint
    finally:
        await asyncio.to_thread(sim.delete_simulation, name)


def _kombination(tmp_path: Path, ssh: SshEndpoint) -> Path:
    path = tmp_path / "home.yaml"
    path.write_text(
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: home}\nspec:\n"
        "  stackkit: base-homelab\n  nodes:\n"
        f"    - name: nas\n      provider: local\n      address: {ssh.host}:{ssh.port}\n"
        f"      ssh: {{user: {ssh.user}, identityFile: {ssh.identity_file}}}\n"
    )
    return path


async def test_plan_then_apply_bootstraps_the_node_and_reapply_changes_nothing(
    tmp_path: Path, node: SshEndpoint
) -> None:
    file = _kombination(tmp_path, node)
    workdir = tmp_path / "work"

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, str(file), "-w", str(workdir)], env=ENV)
        return result.exit_code, result.stdout

    code, out = await asyncio.to_thread(cli, "plan")
    assert code == 0, out
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out
    assert "node nas: create\n" in out  # per node, what changes

    code, out = await asyncio.to_thread(cli, "apply", "--yes", "--json")
    assert code == 0, out
    assert json.loads(out)["plan"]["add"] == 1
    # The bootstrap ran (its admin user exists); services are left to the agent.
    assert (await ssh_run(node, "id -un kombify")).strip() == "kombify"
    # ... and was not left behind in the node's /tmp.
    assert (await ssh_run(node, "ls /tmp/kombify-bootstrap.sh 2>&1; true")).strip().endswith(
        "No such file or directory"
    )

    code, out = await asyncio.to_thread(cli, "plan")
    assert code == 0 and "Plan: 0 to add, 0 to change, 0 to destroy." in out, out
    assert "node nas: no change\n" in out
    assert "services: changed through the node agent in the rollout step" in out
