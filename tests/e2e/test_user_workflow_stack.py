"""A workflow file acting on a KombiSim stack: a command on its node and in its service, a
deploy, a service restart and a rollback, each checked through what the stack serves.

Real Temporal, OpenTofu CLI, Docker, SSH and node agent on one KombiSim node; the workflow's
run goes through the API as ``kombify workflow run`` sends it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_SERVE = (
    "image: kombify-test/httpd:1\n"
    '      command: ["/bin/busybox", "sh", "-c", '
    "\"trap 'exit 0' TERM; echo {version} > /www/index.html; "
    '/bin/busybox httpd -f -p 80 -h /www & wait"]'
)

WORKFLOW = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata:
  name: roll
spec:
  inputs:
    url: {{required: true}}
  steps:
    - id: host
      run: {{stack: {stack}, node: box, command: "echo from-node; cat /etc/hostname"}}
    - id: before
      run: {{stack: {stack}, service: web, command: [/bin/busybox, cat, /www/index.html]}}
    - id: upgrade
      if: steps.before.outputs.stdout == 'v1'
      deploy: {{stack: {stack}}}
    - id: serves-v2
      http:
        url: "${{{{ inputs.url }}}}"
        expect: {{body_contains: v2}}
        wait: {{timeout: 1m, interval: 1s}}
    - id: bounce
      restart: {{stack: {stack}, service: web}}
    - id: back
      rollback: {{stack: {stack}}}
    - id: serves-v1
      http:
        url: "${{{{ inputs.url }}}}"
        expect: {{body_contains: v1}}
        wait: {{timeout: 1m, interval: 1s}}
    - id: after
      run:
        stack: {stack}
        service: web
        command: [/bin/busybox, sh, -c, "echo revision ${{{{ steps.back.outputs.revision }}}}"]
"""


def _answering(stack: str, version: str) -> str:
    return one_node(stack, notes=False, healing="{enabled: false}").replace(
        "image: kombify-test/httpd:1", _SERVE.format(version=version)
    )


async def _finished(env: KombifyEnv, run_id: str, *, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = dict(await env.call("GET", f"/v1/workflow-runs/{run_id}"))
        if run["state"] != "running":
            return run
        await asyncio.sleep(1)
    raise AssertionError(f"run {run_id} still running after {timeout}s")


async def test_a_workflow_runs_commands_deploys_restarts_and_rolls_back(
    kombify: KombifyEnv,
) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(_answering(stack, "v1"))
    assert first["state"] == "succeeded", first
    await kombify.store(_answering(stack, "v2"))  # revision 2, not deployed yet
    url = f"http://127.0.0.1:{published(stack, 'box', 8080)}/"

    started = await kombify.call(
        "POST",
        "/v1/workflow-runs",
        json={"source": WORKFLOW.format(stack=stack), "inputs": {"url": url}},
    )
    run = await _finished(kombify, started["id"])

    assert run["state"] == "succeeded", run
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["host"]["outputs"]["stdout"].splitlines()[0] == "from-node"
    assert steps["host"]["outputs"]["exit_code"] == 0
    assert steps["before"]["outputs"]["stdout"] == "v1"
    assert steps["upgrade"]["outputs"]["revision"] == 2
    assert steps["upgrade"]["outputs"]["state"] == "succeeded"
    assert steps["serves-v2"]["outputs"]["body"].strip() == "v2"
    assert steps["bounce"]["state"] == "succeeded"
    assert steps["back"]["outputs"]["revision"] == 3  # revision 1's file, stored anew
    assert steps["serves-v1"]["outputs"]["body"].strip() == "v1"
    assert steps["after"]["outputs"]["stdout"] == "revision 3"
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    assert status["deployed_revision"] == 3
