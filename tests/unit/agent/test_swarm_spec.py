"""A stack's Swarm services as Engine API specs: what the swarm is asked to run, exactly."""

from __future__ import annotations

import pytest

from kombify.activities.swarm import swarm_proto_manifest
from kombify.agent import swarm_spec as ss
from kombify.agent.proto import pb

_S = 1_000_000_000


def _manifest(**service: object) -> pb.SwarmManifest:
    spec = pb.ServiceSpec(
        name="web",
        image="kombify-test/httpd:1",
        replicas=3,
        env={"B": "2", "A": "1"},
        ports=[pb.PortMapping(container_port=80, host_port=8080)],
        healthcheck=pb.HealthCheck(http_url="http://localhost:80/", interval_ms=1000, retries=2),
    )
    return pb.SwarmManifest(
        stack="lab",
        revision="r1",
        network="kombify-overlay",
        publish_mode="host",
        services=[pb.SwarmServiceSpec(spec=spec, **service)],  # type: ignore[arg-type]
    )


def test_replicas_spread_over_nodes_within_the_spec_s_constraints() -> None:
    manifest = _manifest(constraints=["node.labels.io.kombify.role==worker"])

    body = ss.service_spec(manifest.services[0], manifest)

    assert body["Name"] == "lab_web"
    assert body["Mode"] == {"Replicated": {"Replicas": 3}}
    assert body["TaskTemplate"]["Placement"] == {
        "Constraints": ["node.labels.io.kombify.role==worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}],
    }
    # Reachable by its own name on the attachable overlay network.
    assert body["TaskTemplate"]["Networks"] == [{"Target": "kombify-overlay", "Aliases": ["web"]}]
    assert body["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1", "B=2"]


def test_global_services_run_once_per_eligible_node() -> None:
    manifest = _manifest(mode="global")

    body = ss.service_spec(manifest.services[0], manifest)

    assert body["Mode"] == {"Global": {}}
    assert "Preferences" not in body["TaskTemplate"]["Placement"]


def test_updates_roll_back_by_themselves_when_a_new_task_fails() -> None:
    manifest = _manifest()

    body = ss.service_spec(manifest.services[0], manifest)

    update = body["UpdateConfig"]
    assert (update["FailureAction"], update["Parallelism"], update["Order"]) == (
        "rollback",
        1,
        "stop-first",  # a host-mode port is held by the old task until it stops
    )
    # The monitor window covers the check's own verdict: 1 s grace + 2 x (1 s + 2 s timeout).
    assert update["Monitor"] == 7 * _S
    assert body["RollbackConfig"]["FailureAction"] == "pause"


def test_ports_are_published_in_the_mode_the_control_plane_chose() -> None:
    manifest = _manifest()
    assert ss.service_spec(manifest.services[0], manifest)["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}
    ]
    manifest.publish_mode = "ingress"
    ports = ss.service_spec(manifest.services[0], manifest)["EndpointSpec"]["Ports"]
    assert ports[0]["PublishMode"] == "ingress"


@pytest.mark.parametrize(
    ("check", "test"),
    [
        (
            pb.HealthCheck(http_url="http://localhost:80/"),
            "if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null "
            "http://localhost:80/; else curl -fsSk -o /dev/null http://localhost:80/; fi",
        ),
        (
            pb.HealthCheck(http_url="https://127.0.0.1:8443/ok"),
            "if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null "
            "--no-check-certificate https://127.0.0.1:8443/ok; "
            "else curl -fsSk -o /dev/null https://127.0.0.1:8443/ok; fi",
        ),
        (
            pb.HealthCheck(tcp_port=5432),
            "nc -z -w 2 127.0.0.1 5432 2>/dev/null || nc -w 2 127.0.0.1 5432 </dev/null "
            "2>/dev/null || bash -c '</dev/tcp/127.0.0.1/5432'",
        ),
        (pb.HealthCheck(cmd="test -f /tmp/ready"), "test -f /tmp/ready"),
    ],
    ids=["http", "https", "tcp", "cmd"],
)
def test_every_kind_of_check_becomes_the_container_s_healthcheck(
    check: pb.HealthCheck, test: str
) -> None:
    check.interval_ms, check.retries, check.start_period_ms = 2000, 4, 5000

    assert ss.healthcheck(check) == {
        "Test": ["CMD-SHELL", test],
        "Interval": 2 * _S,
        "Timeout": 2 * _S,  # the agent's default probe timeout
        "Retries": 4,
        "StartPeriod": 5 * _S,
    }


def test_no_check_means_no_healthcheck_and_the_shortest_monitor() -> None:
    assert ss.healthcheck(pb.HealthCheck()) is None
    assert ss.monitor_ns(pb.HealthCheck()) == 5 * _S


def test_a_scale_changes_the_service_but_not_its_tasks() -> None:
    manifest = _manifest()
    before = ss.service_spec(manifest.services[0], manifest)
    manifest.services[0].spec.replicas = 5
    after = ss.service_spec(manifest.services[0], manifest)

    assert before["Labels"][ss.L_HASH] != after["Labels"][ss.L_HASH]
    task_hash = before["TaskTemplate"]["ContainerSpec"]["Labels"][ss.L_HASH]
    assert task_hash == after["TaskTemplate"]["ContainerSpec"]["Labels"][ss.L_HASH]


def test_what_the_swarm_cannot_run_is_refused_naming_the_field() -> None:
    with pytest.raises(ss.SwarmManifestInvalid, match="mode `both`"):
        ss.validate(_manifest(mode="both"))
    bad = _manifest()
    bad.publish_mode = "mesh"
    with pytest.raises(ss.SwarmManifestInvalid, match="publish_mode `mesh`"):
        ss.validate(bad)
    bad = _manifest()
    bad.services[0].spec.healthcheck.tcp_port = 80
    with pytest.raises(ss.SwarmManifestInvalid, match="one of http_url, tcp_port or cmd"):
        ss.validate(bad)


def test_the_unifier_s_swarm_manifest_reaches_the_agent_whole() -> None:
    data = {
        "stack": "lab",
        "network": "kombify-overlay",
        "services": [
            {
                "name": "web",
                "image": "kombify-test/httpd:1",
                "command": [],
                "ports": [{"container": 80, "host": 8080, "protocol": "tcp"}],
                "volumes": ["data:/data"],
                "env": {"A": "1"},
                "replicas": 3,
                "healthcheck": {"http": "http://localhost:80/", "interval": "1s"},
                "mode": "replicated",
                "constraints": ["node.labels.io.kombify.node==w1"],
                "nodes": ["w1"],
            }
        ],
    }

    manifest = swarm_proto_manifest(data, revision="r9", publish_mode="host")

    (service,) = manifest.services
    assert (manifest.stack, manifest.revision, manifest.publish_mode) == ("lab", "r9", "host")
    assert list(service.constraints) == ["node.labels.io.kombify.node==w1"]
    assert (service.spec.replicas, service.spec.healthcheck.http_url) == (
        3,
        "http://localhost:80/",
    )
    assert service.spec.volumes[0].source == "data"


def test_more_replicas_than_nodes_for_a_host_port_are_refused_naming_the_field() -> None:
    from temporalio.exceptions import ApplicationError

    from kombify.activities.swarm import refuse_unplaceable

    service = {"name": "web", "ports": [{"container": 80, "host": 8080}], "nodes": ["a", "b"]}
    refuse_unplaceable({"services": [{**service, "replicas": 2}]})
    refuse_unplaceable({"services": [{**service, "replicas": 3, "ports": []}]})
    with pytest.raises(ApplicationError, match=r"spec.services.web.replicas: 3 replicas") as err:
        refuse_unplaceable({"services": [{**service, "replicas": 3}]})
    assert err.value.non_retryable
