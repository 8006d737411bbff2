"""Kombination files the deploy tests and benchmarks/deploy.py deploy onto KombiSim."""

from __future__ import annotations

ONE_NODE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  services:
    reverse-proxy: {{enabled: false}}
{services}
"""

WEB = """\
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
      env: {{GREETING: "{greeting}"}}
      healthcheck: {{http: "{health}", interval: 1s}}
"""

NOTES = """\
    notes:
      image: kombify-test/httpd:1
      ports: [{container: 80, host: 8081}]
      healthcheck: {http: "http://localhost:80/", interval: 1s}
"""


def one_node(
    name: str, *, greeting: str = "hello", health: str = "http://localhost:80/", notes: bool = True
) -> str:
    """A one-node ``provider: sim`` stack: ``web`` (with GREETING and a health check), ``notes``."""
    services = WEB.format(greeting=greeting, health=health) + (NOTES if notes else "")
    return ONE_NODE.format(name=name, services=services.rstrip("\n"))
