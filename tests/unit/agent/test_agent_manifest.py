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
        (
            [
                pb.ServiceSpec(
                    name="a",
                    image="i",
                    replicas=2,
                    ports=[pb.PortMapping(container_port=80, host_port=8080)],
                )
            ],
            "cannot share host port",
        ),
        ([pb.ServiceSpec(name="a", image="i", labels={"io.kombify.x": "1"})], "reserved"),
    ],
)
def test_validation_names_the_service_and_field(
    services: list[pb.ServiceSpec], message: str
) -> None:
    with pytest.raises(mf.ManifestInvalid, match=message):
        mf.validate(pb.Manifest(services=services))
