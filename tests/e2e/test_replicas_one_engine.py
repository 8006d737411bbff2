"""Replicas behind one host port on a single Docker engine (the contract's modern-homelab case).

One engine binds a host port once: the first replica publishes it, the others run on the
node's Docker network (docs/agent.md, "Replicas and ports"). The file validates, so it must
deploy, not fail halfway through the apply.
"""

from __future__ import annotations

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import NO_HEALING

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPLICAS = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  healing: {healing}
  services:
    reverse-proxy: {{enabled: false}}
    notes:
      image: kombify-test/httpd:1
      replicas: 3
      ports: [{{container: 80, host: 8081}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
"""


async def test_three_replicas_behind_one_host_port_deploy(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()

    run = await kombify.deploy(REPLICAS.format(name=stack, healing=NO_HEALING))

    assert run["state"] == "succeeded", run
    running = await kombify.containers(stack, "box", running=True)
    assert len(running["notes"]) == 3
    page = await kombify.on_node(stack, "box", "curl -s http://127.0.0.1:8081/")
    assert "kombify-test/httpd works" in page
    assert (await kombify.destroy(stack))["state"] == "succeeded"


PINNED = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: modern-homelab
  nodes:
    - {{name: main, provider: sim, role: main}}
    - {{name: worker-a, provider: sim, role: worker}}
  healing: {{enabled: false}}
  services:
{disabled}
    notes:
      image: kombify-test/httpd:1
      node: worker-a
      replicas: 2
      ports: [{{container: 80, host: 8081}}]
"""


async def test_pinned_replicas_without_a_check_deploy(kombify: KombifyEnv) -> None:
    # The contract's modern-homelab example as written: two replicas on worker-a, no check.
    from tests.support.kombinations import kit_defaults_off

    stack = kombify.new_stack()
    source = PINNED.format(name=stack, disabled=kit_defaults_off(PINNED))

    run = await kombify.deploy(source)

    assert run["state"] == "succeeded", run
    assert len((await kombify.containers(stack, "worker-a", running=True))["notes"]) == 2
    page = await kombify.on_node(stack, "worker-a", "curl -s http://127.0.0.1:8081/")
    assert "kombify-test/httpd works" in page
    assert (await kombify.destroy(stack))["state"] == "succeeded"
