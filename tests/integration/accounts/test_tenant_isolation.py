"""Nothing of one organisation reaches another: every route that takes an id, walked from the
OpenAPI document, answers another organisation's id as it answers an id that exists nowhere.

Two organisations, alpha and bravo, each with a stack, a deployment, a simulation, an
invitation, an API key, members and sessions. bravo's member and admin ask for alpha's
objects on every route with a path parameter: 404, the same answer (status and words) as for
a made-up id, never 2xx, never a 403 that only an existing object gets, never 5xx. Temporal and
Docker do not answer here, so a route that reached either before checking ownership would
answer 502/503 and fail the walk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from kombify.db.account_tables import ApiKey, Invitation, Membership, UserSession
from kombify.db.models import Deployment, Stack
from kombify.sim import labels
from kombify.sim.client import docker_client
from tests.support.accounts import Installation, installation
from tests.support.openapi_walk import Operation, body_for, kombination, operations, url
from tests.support.ports import free_port
from tests.support.tenants import Tenant, seed

PROBLEM = "application/problem+json"
# Path parameters that name nothing of an organisation: the tool bridge's tool and path, and
# login providers, are the installation's (a tool is told the caller's organisation itself,
# tested with SSO). `slug` names an organisation only in installation owners' routes (an
# Enterprise price): anyone else is refused (403) whichever organisation it names.
NOT_OWNED = {"tool", "path", "provider", "slug"}
DOCKER_HOST = os.environ.get("DOCKER_HOST")


@pytest.fixture
def inst(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Installation]:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with installation(tmp_path, database_url) as made:
        yield made


@pytest.fixture
def alpha(inst: Installation) -> Tenant:
    return seed(inst, "alpha")


@pytest.fixture
def bravo(inst: Installation) -> Tenant:
    return seed(inst, "bravo")


def _ghost(tenant: Tenant) -> Tenant:
    """Ids of the same shapes that exist nowhere (the org slug stays: it is the caller's)."""
    return replace(
        tenant,
        stack="ghost-lab",
        simulation="ghost-sim",
        deployment_id=uuid.uuid4().hex,
        invitation_id=uuid.uuid4().hex,
        key_id=uuid.uuid4().hex,
        member_id=uuid.uuid4().hex,
        member_session_id=uuid.uuid4().hex,
    )


def _ask(client: TestClient, op: Operation, values: Tenant) -> Any:
    body = body_for(op, stack=values.stack, simulation=values.simulation)
    return client.request(op.method.upper(), url(op, values.path_value), json=body)


def _shape(response: Any, values: Tenant) -> tuple[int, str]:
    """Status and detail with the asked-for values blotted out (they differ by design)."""
    detail = response.json().get("detail", "") if response.content else ""
    for value in values.values():
        detail = detail.replace(value, "<id>")
    return response.status_code, detail


def _cases(op: Operation, alpha: Tenant, bravo: Tenant) -> Iterator[tuple[str, Tenant, Tenant]]:
    """(label, alpha's values, a ghost's values) for one operation.

    First every parameter is alpha's (its organisation in the path too); then, for routes
    under /v1/orgs/{org}/ with another id, bravo's own organisation with alpha's ids.
    """
    yield "alpha's org and ids", alpha, _ghost(alpha)
    if "org" in op.path_params and len(op.path_params) > 1:
        inside = replace(alpha, slug=bravo.slug)
        yield "bravo's org, alpha's ids", inside, _ghost(inside)


def test_every_route_with_an_id_answers_another_orgs_id_as_a_missing_one(
    inst: Installation, alpha: Tenant, bravo: Tenant
) -> None:
    document = inst.client().get("/openapi.json").json()
    callers = {role: inst.bearer(bravo.email(role)) for role in ("member", "admin")}
    walked = 0

    for op in operations(document):
        if not set(op.path_params) - NOT_OWNED:
            continue
        walked += 1
        for label, values, ghost in _cases(op, alpha, bravo):
            for role, client in callers.items():
                where = f"{op} as bravo's {role}, {label}"
                asked = _ask(client, op, values)
                made_up = _ask(client, op, ghost)
                assert asked.headers["content-type"] == PROBLEM, f"{where}: {asked.text}"
                assert _shape(asked, values) == _shape(made_up, ghost), where
                # A member may be refused a route for admins (403) before anything is looked
                # up: the same for a made-up id, so it tells nothing.
                allowed = {404, 403} if role == "member" else {404}
                assert asked.status_code in allowed, f"{where}: {asked.text}"

    assert walked >= 25
    _alpha_is_untouched(inst, alpha)


def test_every_route_with_an_id_refuses_a_malformed_one_before_any_backend(
    inst: Installation, bravo: Tenant
) -> None:
    document = inst.client().get("/openapi.json").json()
    member = inst.bearer(bravo.email("member"))

    for op in operations(document):
        if not op.path_params:
            continue
        body = body_for(op, stack=bravo.stack, simulation=bravo.simulation)
        # A value no parameter accepts (not a DNS label, not 32 hex digits).
        response = member.request(op.method.upper(), url(op, lambda *_: "Not_Valid"), json=body)
        # 422, or 404 where the organisation in the path is looked up first: never the 502/503
        # of a route that dialled Docker or Temporal before looking at its parameters.
        assert response.status_code in (404, 422), f"{op}: {response.text}"
        if response.status_code == 422:  # naming the parameter at fault
            assert response.json()["errors"][0]["path"] in op.path_params, response.text


def _alpha_is_untouched(inst: Installation, alpha: Tenant) -> None:
    with inst.db() as db:
        assert db.exec(select(Stack).where(Stack.name == alpha.stack)).one()
        assert db.get(Deployment, alpha.deployment_id) is not None
        invitation = db.get(Invitation, alpha.invitation_id)
        assert invitation is not None and invitation.revoked_at is None
        key = db.get(ApiKey, alpha.key_id)
        assert key is not None and key.revoked_at is None
        session = db.get(UserSession, alpha.member_session_id)
        assert session is not None and session.revoked_at is None
        roles = db.exec(select(Membership.role).where(Membership.user_id == alpha.member_id))
        assert list(roles) == ["member"]
    member = inst.bearer(alpha.email("member"))
    assert member.get(f"/v1/stacks/{alpha.stack}").status_code == 200


def _taken(response: Any, alpha: Tenant, name: str) -> None:
    assert response.status_code == 409, response.text
    detail: str = response.json()["detail"]
    assert name in detail and "taken" in detail
    # Nothing of who owns it: neither the organisation nor its people.
    rest = detail.replace(name, "")
    assert alpha.slug not in rest and "example.org" not in rest and alpha.member_id not in rest


def test_another_orgs_stack_name_is_taken_without_saying_whose(
    inst: Installation, alpha: Tenant, bravo: Tenant
) -> None:
    member = inst.bearer(bravo.email("member"))

    _taken(member.post("/v1/stacks", json={"source": kombination(alpha.stack)}), alpha, alpha.stack)
    # A stack's simulation is named after it: alpha's simulation name is no stack name for bravo.
    taken = member.post("/v1/stacks", json={"source": kombination(alpha.simulation)})
    _taken(taken, alpha, alpha.simulation)


@pytest.mark.parametrize("route", ["/v1/simulations", "/v1/simulation-runs"])
def test_another_orgs_simulation_name_is_taken_before_docker_or_temporal_is_asked(
    inst: Installation, alpha: Tenant, bravo: Tenant, route: str
) -> None:
    member = inst.bearer(bravo.email("member"))

    for name in (alpha.simulation, alpha.stack):
        _taken(member.post(route, json={"name": name, "nodes": 1}), alpha, name)


def test_lists_show_nothing_of_another_org(
    inst: Installation, alpha: Tenant, bravo: Tenant
) -> None:
    member = inst.bearer(bravo.email("member"))

    stacks = member.get("/v1/stacks").json()
    assert [s["name"] for s in stacks["data"]] == [bravo.stack] and stacks["count"] == 1
    # RFC 3339 (with its offset) on SQLite too, as the document declares.
    assert datetime.fromisoformat(stacks["data"][0]["created_at"]).tzinfo is not None
    assert member.get(f"/v1/stacks/{bravo.stack}/deployments").json()[0]["id"] == (
        bravo.deployment_id
    )
    keys = inst.bearer(bravo.email("admin")).get("/v1/api-keys").json()["data"]
    assert [k["id"] for k in keys] == [bravo.key_id]
    invitations = inst.bearer(bravo.email("admin")).get(f"/v1/orgs/{bravo.slug}/invitations")
    assert [i["id"] for i in invitations.json()["data"]] == [bravo.invitation_id]
    members = member.get(f"/v1/orgs/{bravo.slug}/members").json()["data"]
    assert alpha.member_id not in {m["user_id"] for m in members}
    everything = str(member.get("/v1/me").json()) + str(member.get("/v1/orgs").json())
    assert alpha.slug not in everything


def test_simulation_list_shows_only_the_orgs_own(
    inst: Installation,
    alpha: Tenant,
    bravo: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    test_images: str,
) -> None:
    # The real engine this time: one (never started) node container per organisation's
    # simulation, labelled as KombiSim labels its nodes.
    if DOCKER_HOST is None:
        monkeypatch.delenv("DOCKER_HOST")
    else:
        monkeypatch.setenv("DOCKER_HOST", DOCKER_HOST)
    client = docker_client()
    made = []
    try:
        for tenant in (alpha, bravo):
            made.append(
                client.containers.create(
                    test_images,
                    name=labels.container_name(tenant.simulation, "n1"),
                    labels={
                        labels.MANAGED: "true",
                        labels.SIMULATION: tenant.simulation,
                        labels.NODE: "n1",
                        labels.GROUP: "lan",
                    },
                )
            )
        for tenant, other in ((alpha, bravo), (bravo, alpha)):
            listed = inst.bearer(tenant.email("member")).get("/v1/simulations")
            assert listed.status_code == 200, listed.text
            # Simulations nobody claimed (other tests' on this engine) are the default
            # organisation's: each sees exactly its own.
            assert {s["name"] for s in listed.json()["data"]} == {tenant.simulation}
            assert other.simulation not in listed.text
    finally:
        for container in made:
            container.remove(force=True)
        client.close()
