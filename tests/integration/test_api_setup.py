"""The first-run wizard's routes: the anonymous "setup needed?" answer, the StackKit list and
validating a kombination without storing it (docs/dashboard.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.signed_in import PASSWORD, Lab, running_lab


@pytest.fixture
def lab(database_url: str, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(database_url, tmp_path / "home") as found:
        yield found


def _anonymous(lab: Lab) -> dict[str, object]:
    lab.client.cookies.clear()
    response = lab.client.get("/v1/setup")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_setup_is_needed_until_the_admin_token_makes_the_first_owner(lab: Lab) -> None:
    assert _anonymous(lab) == {"setup_needed": True}

    admin = {"Authorization": f"Bearer {lab.client.app.state.admin_token}"}  # type: ignore[attr-defined]
    made = lab.client.post(
        "/v1/admin/owner", json={"email": "owner@lab.test", "password": PASSWORD}, headers=admin
    )
    assert made.status_code == 201, made.text

    # Nothing but yes/no, to anyone; and the token that made the owner is refused from now on.
    assert _anonymous(lab) == {"setup_needed": False}
    assert lab.client.get("/v1/me", headers=admin).status_code == 401


def test_an_owner_made_otherwise_also_ends_setup(lab: Lab) -> None:
    # Open sign-up (or a test seeding the database) can make an owner without the admin token;
    # the admin token can then make none (409), so the wizard has nothing left to offer.
    lab.user("ada@lab.test", lab.org("lab"), role="owner")

    assert _anonymous(lab) == {"setup_needed": False}


def test_a_member_lists_the_stackkits_with_their_rules_and_services(lab: Lab) -> None:
    headers = lab.sign_in(lab.user("ada@lab.test", lab.org("lab")))

    body = lab.client.get("/v1/stackkits", headers=headers).json()

    kits = {k["name"]: k for k in body["data"]}
    assert body["count"] == len(kits) == 4
    base = kits["base-homelab"]
    assert base["nodes"] == {"min": 1, "max": 1}
    assert [r["name"] for r in base["roles"]] == ["main"]
    services = {s["name"]: s for s in base["services"]}
    assert services["reverse-proxy"]["default"] is True
    assert services["reverse-proxy"]["use"] == "caddy"
    assert services["dashboard"]["default"] is False and services["dashboard"]["description"]
    assert kits["cloud-hybrid"]["requires_vpn"] is True
    assert kits["ha-homelab"]["role_counts"]["manager"] == {"min": 3, "max": None, "odd": True}
    assert lab.client.get("/v1/stackkits").status_code == 401  # not for anonymous callers


def test_validate_answers_each_problem_at_its_path_and_stores_nothing(lab: Lab) -> None:
    headers = lab.sign_in(lab.user("ada@lab.test", lab.org("lab")))
    source = (
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\n"
        "spec:\n  stackkit: base-homelab\n  nodes:\n    - {name: box, provider: sim}\n"
    )

    valid = lab.client.post("/v1/kombinations/validate", json={"source": source}, headers=headers)

    assert valid.status_code == 200, valid.text
    assert valid.json() == {"valid": True, "errors": []}

    broken = (
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\n"
        "spec:\n  stackkit: base-homelab\n  nodes:\n    - {name: box, provider: local}\n"
        "    - {name: box, provider: sim}\n"
    )
    answer = lab.client.post("/v1/kombinations/validate", json={"source": broken}, headers=headers)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is False
    paths = {e["path"] for e in body["errors"]}
    assert "spec.nodes[0].address" in paths  # a local node needs its address
    assert "spec.nodes[1].name" in paths  # duplicate name
    assert all(isinstance(e["line"], int) and e["message"] for e in body["errors"])
    assert lab.client.get("/v1/stacks", headers=headers).json()["count"] == 0
    # Asking changes nothing, so the activity log has no entry for it.
    actions = [
        e["action"] for e in lab.client.get("/v1/me/activity", headers=headers).json()["data"]
    ]
    assert not [a for a in actions if "validate" in a]
