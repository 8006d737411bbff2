"""SSH host keys are pinned on first contact and held to it: a re-keyed node is refused.

A one-node simulated stack is deployed (its key is recorded), then the node's host key is
regenerated inside its container, as a reinstalled or impersonated machine would present.
The next apply fails naming the node and both fingerprints and changes nothing on the node;
after ``nodes trust`` (the API route the CLI calls) it proceeds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from kombify.activities.deploy import simulated_target, stack_workdir
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from kombify.errors import HostKeyChangedError
from kombify.hostkeys import HostKey
from kombify.sim import SimEngine, connection_info, docker_client
from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import one_node
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_REKEY = (
    "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N '' "
    "-f /etc/ssh/ssh_host_ed25519_key && kill -HUP $(cat /run/sshd.pid)"
)
# What a deploy would change on the node: containers, agent files, and /tmp, where the
# bootstrap is uploaded and removed after it ran (both change the folder's mtime).
_SNAPSHOT = (
    "docker ps -a --no-trunc --format '{{.ID}} {{.Image}} {{.Status}}' | sed 's/Up .*/Up/'; "
    "ls -l --full-time /etc/kombify/agent /var/lib/kombify/bundles; "
    "stat -c '%n %y' /tmp"
)


def _exec(stack: str, node: str, command: str) -> str:
    client = docker_client()
    try:
        info = SimEngine(client).info(stack)
        (cid,) = [n.container_id for n in info.nodes if n.name == node]
        code, out = client.containers.get(cid).exec_run(["sh", "-c", command])
    finally:
        client.close()
    assert code == 0, out
    return str(out.decode())


def _node_key(stack: str, node: str) -> HostKey:
    return HostKey.parse(_exec(stack, node, "cat /etc/ssh/ssh_host_ed25519_key.pub"))


async def _pin(kombify: KombifyEnv, stack: str, node: str) -> dict[str, Any]:
    listing = await kombify.call("GET", f"/v1/stacks/{stack}/nodes")
    (row,) = [r for r in listing["data"] if r["node"] == node]
    return dict(row)


async def test_changed_host_key_is_refused_until_trusted(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(one_node(stack, notes=False))
    assert first["state"] == "succeeded", first
    original = _node_key(stack, "box")

    pin = await _pin(kombify, stack, "box")
    assert first["progress"]["nodes"][0]["host_key"] == original.fingerprint
    assert (pin["fingerprint"], pin["source"], pin["simulated"]) == (
        original.fingerprint, "first-use", True,
    )
    logs = await kombify.call("GET", f"/v1/deployments/{first['id']}/logs")
    assert any(
        original.fingerprint in line["message"] and "recorded" in line["message"]
        for line in logs["data"]
    ), logs
    # OpenTofu's connection carries the same pin.
    main = json.loads(
        (stack_workdir(kombify.settings, "local", stack) / "main.tf.json").read_text()
    )
    (resource,) = main["resource"]["terraform_data"].values()
    assert resource["connection"]["host_key"] == original.line

    _exec(stack, "box", _REKEY)
    rekeyed = _node_key(stack, "box")
    assert rekeyed != original
    before = _exec(stack, "box", _SNAPSHOT)

    # A changed service would be rolled out if the apply went on.
    refused = await kombify.deploy(one_node(stack, greeting="changed", notes=False))

    assert refused["state"] == "failed", refused
    error = refused["summary"]["error"]
    assert "`box`" in error
    assert original.fingerprint in error and rekeyed.fingerprint in error
    assert f"kombify nodes trust {stack} box" in error
    steps = {s["name"]: s["state"] for s in refused["progress"]["steps"]}
    assert steps["validate"] == "failed" and steps["apply"] == "pending", steps
    assert _exec(stack, "box", _SNAPSHOT) == before
    assert (await _pin(kombify, stack, "box"))["fingerprint"] == original.fingerprint

    # Every connection verifies the pin, not only PrepareDeployment's first contact.
    pinned_target = _target_with_pin(stack, original)
    with pytest.raises(HostKeyChangedError, match=re.escape(rekeyed.fingerprint)):
        async with node_session(pinned_target) as session:
            await session.run("true")

    check = await kombify.call("GET", f"/v1/stacks/{stack}/nodes/box/host-key")
    assert (check["pinned"], check["presented"]) == (original.fingerprint, rekeyed.fingerprint)
    with _api(kombify) as cli:
        listed = cli("nodes", stack)
        assert listed.returncode == 0, listed.stderr
        assert original.fingerprint in listed.stdout and "first-use" in listed.stdout

        unasked = cli("nodes", "trust", stack, "box")
        assert unasked.returncode == 2, unasked
        assert f"--fingerprint {rekeyed.fingerprint}" in unasked.stderr

        wrong = cli("nodes", "trust", stack, "box", "--fingerprint", original.fingerprint)
        assert wrong.returncode == 1, wrong
        assert "nothing was recorded" in wrong.stderr
        assert (await _pin(kombify, stack, "box"))["fingerprint"] == original.fingerprint

        trusted = cli("nodes", "trust", stack, "box", "--yes")
        assert trusted.returncode == 0, trusted.stderr
        assert f"pinned:    {original.fingerprint}" in trusted.stdout
        assert f"presented: {rekeyed.fingerprint} (ssh-ed25519)" in trusted.stdout
        assert f"now trusting {rekeyed.fingerprint}" in trusted.stdout
    pin = await _pin(kombify, stack, "box")
    assert (pin["fingerprint"], pin["source"]) == (rekeyed.fingerprint, "trusted")

    after = await kombify.deploy(one_node(stack, greeting="changed", notes=False))
    assert after["state"] == "succeeded", after
    assert after["progress"]["nodes"][0]["services"] == {"web": "updated"}
    (web,) = after["progress"]["nodes"][0]["containers"]["web"]
    assert "GREETING=changed" in _exec(stack, "box", f"docker inspect {web}")
    # A new pin is a connection setting, not a change: OpenTofu plans nothing for it.
    again = await kombify.deploy(one_node(stack, greeting="changed", notes=False))
    assert again["state"] == "succeeded", again
    assert again["progress"]["plan"] == {"add": 0, "change": 0, "destroy": 0}


@contextmanager
def _api(kombify: KombifyEnv) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``kombify api`` on a loopback port of this env's home; yields a CLI runner for it."""
    port = free_port()
    env = {
        **kombify.env, "KOMBIFY_API_PORT": str(port), "NO_COLOR": "1", "COLUMNS": "200",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "kombify", "api"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("kombify api did not start")

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "kombify", *args],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            )

        yield cli
    finally:
        server.terminate()
        server.wait(30)


def _target_with_pin(stack: str, key: HostKey) -> NodeTarget:
    endpoint = connection_info(stack)["box"]
    return dataclasses.replace(simulated_target("box", "main", endpoint), host_key=key.line)

