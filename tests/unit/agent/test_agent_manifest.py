"""Manifest hashing and validation, and the layout of the generated gRPC code."""

from __future__ import annotations

import importlib

import pytest

from kombify.agent import manifest as mf
from kombify.agent.proto import SERVICE_NAME, pb


def spec(**kw: object) -> pb.ServiceSpec:
    base = pb.ServiceSpec(name="web", image="img:1", env={"A": "1", "B": "2"})
    for key, value in kw.items():
        setattr(base, key, value)
    return base


def checked(check: pb.HealthCheck) -> pb.ServiceSpec:
    base = spec()
    base.healthcheck.CopyFrom(check)
    return base


def test_generated_code_is_a_subpackage_and_keeps_the_wire_name() -> None:
    grpc_module = importlib.import_module("kombify._generated.kombify.agent.v1.agent_pb2_grpc")
    # protoc's import was rewritten to the real module path, not a second `kombify` package.
    assert grpc_module.kombify_dot_agent_dot_v1_dot_agent__pb2 is pb
    assert pb.DESCRIPTOR.package == "kombify.agent.v1"
    assert SERVICE_NAME == pb.DESCRIPTOR.services_by_name["Agent"].full_name
    assert pb.__name__ == "kombify._generated.kombify.agent.v1.agent_pb2"


def test_hash_ignores_map_order_replicas_healthcheck_and_default_restart() -> None:
    a = spec()
    b = pb.ServiceSpec(name="web", image="img:1", env={"B": "2", "A": "1"}, replicas=3)
    b.healthcheck.http_url = "http://127.0.0.1/"
    b.restart_policy = pb.RESTART_POLICY_UNLESS_STOPPED
    assert mf.config_hash(a) == mf.config_hash(b)


def test_hash_changes_with_what_shapes_a_container() -> None:
    base = mf.config_hash(spec())
    assert mf.config_hash(spec(image="img:2")) != base
    changed_env = spec()
    changed_env.env["A"] = "9"
    assert mf.config_hash(changed_env) != base


def test_revision_defaults_to_a_content_hash() -> None:
    one = pb.Manifest(services=[spec()])
    assert mf.manifest_revision(one) == mf.manifest_revision(pb.Manifest(services=[spec()]))
    assert mf.manifest_revision(pb.Manifest(revision="r7")) == "r7"


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([spec(), spec()], "listed twice"),
        ([spec(name="bad name")], "name must be"),
        ([spec(image="")], "image is required"),
        (
            [
                pb.ServiceSpec(
                    name="a", image="i", ports=[pb.PortMapping(container_port=80, host_port=8080)]
                ),
                pb.ServiceSpec(
                    name="b", image="i", ports=[pb.PortMapping(container_port=81, host_port=8080)]
                ),
            ],
            "taken by `a`",
        ),
        ([pb.ServiceSpec(name="a", image="i", labels={"io.kombify.x": "1"})], "reserved"),
        (
            [checked(pb.HealthCheck(http_url="http://x/", cmd="true"))],
            "one of http_url, tcp_port or cmd, not http_url and cmd",
        ),
        ([checked(pb.HealthCheck(http_url="ftp://x/"))], "http:// or https://"),
        ([checked(pb.HealthCheck(tcp_port=70000))], "tcp_port 70000"),
    ],
)
def test_validation_names_the_service_and_field(
    services: list[pb.ServiceSpec], message: str
) -> None:
    with pytest.raises(mf.ManifestInvalid, match=message):
        mf.validate(pb.Manifest(services=services))


def test_every_kind_of_health_check_is_accepted() -> None:
    for check in (
        pb.HealthCheck(http_url="https://127.0.0.1:8443/"),
        pb.HealthCheck(tcp_port=80, retries=5, start_period_ms=10_000),
        pb.HealthCheck(cmd="wg show", timeout_ms=500),
    ):
        mf.validate(pb.Manifest(services=[checked(check)]))


def test_every_healthcheck_field_of_the_spec_reaches_the_agent() -> None:
    from kombify.activities.agent import to_proto_manifest

    def check_of(healthcheck: dict[str, object]) -> pb.HealthCheck:
        service = {"name": "w", "image": "i:1", "ports": [], "healthcheck": healthcheck}
        (converted,) = to_proto_manifest({"services": [service]}, "r").services
        return converted.healthcheck

    # The example, which used to arrive as "no check at all".
    assert check_of({"cmd": "false", "retries": 1, "timeout": "1s"}) == pb.HealthCheck(
        cmd="false", retries=1, timeout_ms=1000, interval_ms=1000
    )
    assert check_of({"tcp": 80, "interval": "30s", "start_period": "1m"}) == pb.HealthCheck(
        tcp_port=80, interval_ms=30_000, start_period_ms=60_000
    )
    assert check_of({"http": "https://localhost:8443/"}).http_url == "https://localhost:8443/"
