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
{healing}  services:
    reverse-proxy: {{enabled: false}}
{services}
"""

# For tests that make faults on purpose and look at what kombify reports: healing would mend
# them first (tests/e2e/test_heal.py is where healing itself is tested).
NO_HEALING = "{enabled: false}"

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
    name: str,
    *,
    greeting: str = "hello",
    health: str = "http://localhost:80/",
    notes: bool = True,
    healing: str | None = None,
) -> str:
    """A one-node ``provider: sim`` stack: ``web`` (with GREETING and a health check), ``notes``.

    ``healing``: the ``spec.healing`` mapping in flow style (``{enabled: false}``); the kit's
    default (on, every 5m, restart) when None. Tests that make faults on purpose to watch what
    kombify reports switch it off, or healing mends the fault before they look.
    """
    services = WEB.format(greeting=greeting, health=health) + (NOTES if notes else "")
    return ONE_NODE.format(
        name=name,
        services=services.rstrip("\n"),
        healing=f"  healing: {healing}\n" if healing else "",
    )


def kit_defaults_off(template: str) -> str:
    """``spec.services`` lines switching off a kit's own services (they pull from Docker Hub,
    out of reach here), for a kombination ``template`` with ``{name}`` and ``{disabled}``."""
    from kombify.specs import load_kombination
    from kombify.stackkits.resolver import resolve

    probe = load_kombination(template.format(name="probe", disabled=""))
    defaults = [s.name for s in resolve(probe).services if s.origin != "custom"]
    return "\n".join(f"    {name}: {{enabled: false}}" for name in defaults)
