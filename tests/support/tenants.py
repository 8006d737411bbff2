"""An organisation with one of everything in it: people of each role, a stack, a deployment,
a simulation, an invitation, an API key and a session; for role and isolation tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlmodel import select

from kombify.accounts import api_keys, orgs, users
from kombify.api import sim_owners
from kombify.contracts.user_workflow import user_workflow_id_prefix
from kombify.db import deployments as runs
from kombify.db.account_tables import UserSession
from kombify.db.models import Stack
from kombify.workflows.deploy import deploy_workflow_id
from tests.support.accounts import Installation
from tests.support.openapi_walk import Operation, kombination

SIMULATION_PATHS = ("/v1/simulations", "/v1/simulation-runs")


@dataclass(frozen=True)
class Tenant:
    """What an organisation holds, by the values a path names it with."""

    slug: str
    stack: str
    simulation: str
    deployment_id: str
    invitation_id: str
    key_id: str
    member_id: str
    member_session_id: str

    def values(self) -> list[str]:
        """Every value naming one of its objects, longest first (for hiding them in text)."""
        found = [
            self.slug, self.stack, self.simulation, self.deployment_id, self.invitation_id,
            self.key_id, self.member_id, self.member_session_id,
        ]  # fmt: skip
        return sorted(found, key=len, reverse=True)

    def email(self, role: str) -> str:
        """The address of the organisation's person with ``role``."""
        return f"{role}@{self.slug}.example.org"

    def path_value(self, op: Operation, param: str) -> str:
        """This organisation's object for path parameter ``param`` of ``op``."""
        simulation = op.path.startswith(SIMULATION_PATHS)
        table = {
            "org": self.slug,
            "slug": self.slug,  # an installation admin's route naming an organisation
            "name": self.simulation if simulation else self.stack,
            "node": "box",  # the stack's node
            "revision": "1",  # the stack's first revision
            "service": "web",  # a service of the stack
            "action": "start",
            "deployment_id": self.deployment_id,
            "user_id": self.member_id,
            "invitation_id": self.invitation_id,
            "key_id": self.key_id,
            "session_id": self.member_session_id,
            "run_id": f"{user_workflow_id_prefix(self.slug)}nightly-0a1b2c3d",
            # Tools and login providers are the installation's, not an organisation's.
            "tool": "stack",
            "path": "api/health",
            "provider": "example",
        }
        assert param in table, f"{op}: add path parameter `{param}` to Tenant.path_value"
        return table[param]


def seed(inst: Installation, slug: str, roles: tuple[str, ...] = ("admin", "member")) -> Tenant:
    """Organisation ``slug`` with a person of each of ``roles`` (an admin and a member at
    least: they make its objects), and one of each object.

    Objects are made through the API where the API makes them (stack, invitation, key) and
    directly where that would need Temporal or Docker (the deployment row, the simulation's
    claim: ownership is all the tests look at).
    """
    for role in dict.fromkeys(("admin", "member", *roles)):
        inst.add_user(f"{role}@{slug}.example.org", slug, role)
    member: TestClient = inst.bearer(f"member@{slug}.example.org")
    admin: TestClient = inst.bearer(f"admin@{slug}.example.org")
    stack = f"{slug}-lab"
    made = member.post("/v1/stacks", json={"source": kombination(stack)})
    assert made.status_code == 201, made.text
    invited = admin.post(f"/v1/orgs/{slug}/invitations", json={"email": f"new@{slug}.example"})
    assert invited.status_code == 201, invited.text
    key = member.post("/v1/api-keys", json={"name": "ci", "scope": "deploy"})
    assert key.status_code == 201, key.text
    with inst.db() as db:
        org = orgs.by_slug(db, slug)
        person = users.by_email(db, f"member@{slug}.example.org")
        row = db.exec(select(Stack).where(Stack.name == stack)).one()
        assert org is not None and person is not None
        deployment = runs.create_deployment(
            db,
            stack=row,
            revision=1,
            kind="deploy",
            workflow_id=deploy_workflow_id(slug, stack),
        )
        # The engine is the machine's: a name of this run alone, in case a node is made for it.
        simulation = f"{slug}-sim-{uuid.uuid4().hex[:8]}"
        sim_owners.claim(db, org, simulation)
        session = db.exec(select(UserSession).where(UserSession.user_id == person.id)).first()
        assert session is not None
        return Tenant(
            slug=slug,
            stack=stack,
            simulation=simulation,
            deployment_id=deployment.id,
            invitation_id=invited.json()["id"],
            key_id=key.json()["id"],
            member_id=person.id,
            member_session_id=session.id,
        )


def read_key(inst: Installation, slug: str, role: str = "owner") -> str:
    """A `read` API key of the organisation's person with ``role`` (capped to a viewer)."""
    with inst.db() as db:
        org = orgs.by_slug(db, slug)
        person = users.by_email(db, f"{role}@{slug}.example.org")
        assert org is not None and person is not None
        _, text = api_keys.create(
            db, org_id=org.id, user_id=person.id, name="read-only", scope="read"
        )
        return text
