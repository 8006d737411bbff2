"""Every kind of health check the spec accepts, honoured by the agent against a real engine.

http, https (self-signed), tcp and cmd each pass and fail; a failing cmd check rolls back to
the previous revision; timeout, retries and start period shape when a service is unhealthy;
ListServices reports health from the same probe for every kind.
"""

from __future__ import annotations

import time

import docker
import pytest

from kombify.agent.proto import pb
from kombify.sim.image import ensure_caddy_image
from tests.support.agent import RunningAgent
from tests.support.ports import free_port

pytestmark = pytest.mark.docker

SERVE = 'mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'
# Caddy with a certificate from its own internal CA: self-signed as far as the agent knows.
HTTPS = (
    'printf "{\\n admin off\\n skip_install_trust\\n default_sni localhost\\n}\\n'
    'localhost:8443, 127.0.0.1:8443 {\\n tls internal\\n respond secure\\n}\\n" > /tmp/Caddyfile'
    " && exec caddy run --config /tmp/Caddyfile --adapter caddyfile"
)


def service(image: str, check: pb.HealthCheck, *, greeting: str = "hi") -> pb.ServiceSpec:
    """A busybox httpd on container port 8080, not published, with ``check``."""
    return pb.ServiceSpec(
        name="svc",
        image=image,
        command=["/bin/sh", "-c", SERVE],
        env={"GREETING": greeting},
        healthcheck=check,
        stop_grace_seconds=1,
    )


async def apply_one(agent: RunningAgent, spec: pb.ServiceSpec, revision: str) -> pb.ApplyResult:
    async with agent.client() as client:
        return await client.apply(pb.Manifest(revision=revision, services=[spec]))


CASES = {
    "http": (
        pb.HealthCheck(http_url="http://127.0.0.1:8080/"),
        pb.HealthCheck(http_url="http://127.0.0.1:8080/missing"),
    ),
    "tcp": (pb.HealthCheck(tcp_port=8080), pb.HealthCheck(tcp_port=9999)),
    "cmd": (
        pb.HealthCheck(cmd='test "$(cat /www/index.html)" = hi'),
        pb.HealthCheck(cmd="echo not ready; exit 3"),
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_each_kind_passes_and_fails(agent: RunningAgent, test_image: str, kind: str) -> None:
    good, bad = CASES[kind]
    for check in (good, bad):
        check.interval_ms, check.retries = 200, 2

    passed = await apply_one(agent, service(test_image, good), "r1")
    assert passed.ok, passed
    async with agent.client() as client:
        listed = await client.list_services(probe_health=True)
    assert [(c.state, c.health) for c in listed.containers] == [("running", "healthy")]

    failed = await apply_one(agent, service(test_image, bad, greeting="v2"), "r2")
    (outcome,) = failed.services
    assert outcome.outcome == pb.OUTCOME_ROLLED_BACK, outcome
    assert "unhealthy after 2 failed probe(s)" in outcome.reason
    expected = {"http": "missing", "tcp": "9999", "cmd": "exit 3"}[kind]
    assert expected in outcome.reason

    # The same probe answers ListServices: the rolled-back revision's own check passes, and
    # the bad check reports unhealthy for a container that runs.
    async with agent.client() as client:
        listed = await client.list_services(probe_health=True)
        assert [(c.state, c.health) for c in listed.containers] == [("running", "healthy")]
    bad_on_old = service(test_image, bad)  # same config hash as r1: the container stays
    again = await apply_one(agent, bad_on_old, "r3")
    assert [o.outcome for o in again.services] == [pb.OUTCOME_UNCHANGED]
    async with agent.client() as client:
        listed = await client.list_services(probe_health=True)
    assert [(c.state, c.health) for c in listed.containers] == [("running", "unhealthy")]


async def test_failing_cmd_rolls_back_to_the_previous_revision(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    first = await apply_one(agent, service(test_image, pb.HealthCheck(cmd="true")), "good")
    assert first.ok
    # The example: `healthcheck: {cmd: "false", retries: 1, timeout: 1s}`.
    check = pb.HealthCheck(cmd="false", retries=1, timeout_ms=1000)
    bad = await apply_one(agent, service(test_image, check, greeting="new"), "bad")
    assert not bad.ok
    (outcome,) = bad.services
    assert outcome.outcome == pb.OUTCOME_ROLLED_BACK
    assert "unhealthy after 1 failed probe(s): `false`" in outcome.reason
    assert list(outcome.container_ids) == list(first.services[0].container_ids)
    container = docker_client.containers.get(outcome.container_ids[0])
    assert container.status == "running"
    assert container.exec_run(["cat", "/www/index.html"]).output.decode().strip() == "hi"


async def test_cmd_longer_than_its_timeout_fails(agent: RunningAgent, test_image: str) -> None:
    check = pb.HealthCheck(cmd="sleep 5", timeout_ms=500, interval_ms=200, retries=2)
    started = time.monotonic()
    result = await apply_one(agent, service(test_image, check), "slow")
    took = time.monotonic() - started
    (outcome,) = result.services
    assert outcome.outcome == pb.OUTCOME_FAILED  # a new service: nothing to roll back to
    assert "still running after the 0.5 s timeout" in outcome.reason
    assert took < 5, f"the timeout was not enforced: {took:.1f} s"


async def test_retries_and_start_period_give_a_slow_starter_time(
    agent: RunningAgent, test_image: str
) -> None:
    # Serves only after 2 s. One probe every 200 ms with 2 retries gives up long before that;
    # a 3 s start period lets it come up.
    slow = f"sleep 2; {SERVE}"
    check = pb.HealthCheck(http_url="http://127.0.0.1:8080/", interval_ms=200, retries=2)
    spec = service(test_image, check)
    spec.command[:] = ["/bin/sh", "-c", slow]
    impatient = await apply_one(agent, spec, "r1")
    assert [o.outcome for o in impatient.services] == [pb.OUTCOME_FAILED]

    spec.healthcheck.start_period_ms = 3000
    patient = await apply_one(agent, spec, "r2")
    assert patient.ok, patient
    assert [o.outcome for o in patient.services] == [pb.OUTCOME_CREATED]


async def test_https_with_a_self_signed_certificate_passes(
    agent: RunningAgent, docker_client: docker.DockerClient
) -> None:
    image = ensure_caddy_image(docker_client)
    port = free_port()
    spec = pb.ServiceSpec(
        name="secure",
        image=image,
        command=["/bin/sh", "-c", HTTPS],
        ports=[pb.PortMapping(container_port=8443, host_port=port, host_ip="127.0.0.1")],
        healthcheck=pb.HealthCheck(
            http_url="https://localhost:8443/", interval_ms=300, start_period_ms=10_000
        ),
        stop_grace_seconds=1,
    )
    result = await apply_one(agent, spec, "tls")
    assert result.ok, result
    async with agent.client() as client:
        listed = await client.list_services(probe_health=True)
    assert [c.health for c in listed.containers] == ["healthy"]


async def test_tcp_ignores_a_published_port_nobody_listens_behind(
    agent: RunningAgent, test_image: str
) -> None:
    # Docker's userland proxy accepts connections to a published port whether or not the
    # container listens: the check must look inside the container.
    check = pb.HealthCheck(tcp_port=9999, interval_ms=200, retries=2)
    spec = service(test_image, check)
    spec.ports.append(
        pb.PortMapping(container_port=9999, host_port=free_port(), host_ip="127.0.0.1")
    )
    result = await apply_one(agent, spec, "proxy")
    assert [o.outcome for o in result.services] == [pb.OUTCOME_FAILED]
    assert "tcp 127.0.0.1:9999" in result.services[0].reason
