"""Organisations, invitations, sign-up modes, API keys and the activity log, as users meet them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from kombify.db.account_tables import ApiKey, OutboxMail
from kombify.db.models import utcnow
from tests.support.accounts import OWNER, PASSWORD, Installation, installation

KOMBINATION = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim}}
  services:
    web: {{image: kombify-test/httpd:1}}
"""


@pytest.fixture
def inst(tmp_path: Path, database_url: str) -> Iterator[Installation]:
    with installation(tmp_path, database_url) as made:
        yield made


@pytest.fixture
def open_inst(tmp_path: Path) -> Iterator[Installation]:
    with installation(tmp_path, f"sqlite:///{tmp_path / 'open.db'}", signup="open") as made:
        yield made


def test_an_invitation_makes_a_member_once(inst: Installation) -> None:
    owner = inst.login(OWNER)
    sent = owner.post(
        "/v1/orgs/local/invitations", json={"email": "Ana@Example.org", "role": "viewer"}
    )
    assert sent.status_code == 201, sent.text
    token = sent.json()["token"]
    with inst.db() as db:
        mail = db.exec(select(OutboxMail)).one()
    assert mail.to == "ana@example.org" and token in mail.body
    assert token not in owner.get("/v1/orgs/local/invitations").text  # shown once
    guest = inst.client()
    joined = guest.post(
        "/v1/auth/signup",
        json={"email": "ana@example.org", "password": PASSWORD, "invitation": token},
    )
    assert joined.status_code == 201, joined.text
    assert joined.json()["organisation"]["slug"] == "local"
    again = inst.client().post(
        "/v1/auth/signup",
        json={"email": "ana@example.org", "password": PASSWORD, "invitation": token},
    )
    assert again.status_code == 404  # used up
    ana = inst.login("ana@example.org")
    assert ana.get("/v1/me").json()["role"] == "viewer"
    members = owner.get("/v1/orgs/local/members").json()["data"]
    assert {(m["email"], m["role"]) for m in members} == {
        (OWNER, "owner"),
        ("ana@example.org", "viewer"),
    }


def test_sign_up_follows_the_setting(inst: Installation, open_inst: Installation) -> None:
    body = {"email": "new@example.org", "password": PASSWORD}
    closed = inst.client().post("/v1/auth/signup", json=body)
    assert closed.status_code == 403 and "invitation" in closed.json()["detail"]
    made = open_inst.client().post("/v1/auth/signup", json=body)
    assert made.status_code == 201, made.text
    slug = made.json()["organisation"]["slug"]
    assert slug.startswith("new-") and slug != "local"
    me = open_inst.login("new@example.org").get("/v1/me").json()
    assert me["role"] == "owner" and me["organisation"]["slug"] == slug
    weak = open_inst.client().post(
        "/v1/auth/signup", json={"email": "w@example.org", "password": "short"}
    )
    assert weak.status_code == 422 and "12 characters" in weak.json()["detail"]


def test_the_last_owner_stays_owner(inst: Installation) -> None:
    owner = inst.login(OWNER)
    me = owner.get("/v1/me").json()["user"]["id"]
    refused = owner.patch(f"/v1/orgs/local/members/{me}", json={"role": "admin"})
    assert refused.status_code == 409 and "last owner" in refused.json()["detail"]
    assert owner.delete(f"/v1/orgs/local/members/{me}").status_code == 409


def test_an_admin_cannot_make_owners(inst: Installation) -> None:
    inst.add_user("adm@example.org", "local", "admin")
    inst.add_user("mem@example.org", "local", "member")
    admin = inst.login("adm@example.org")
    members = {m["email"]: m["user_id"] for m in admin.get("/v1/orgs/local/members").json()["data"]}
    refused = admin.patch(
        f"/v1/orgs/local/members/{members['mem@example.org']}", json={"role": "owner"}
    )
    assert refused.status_code == 403
    ok = admin.patch(
        f"/v1/orgs/local/members/{members['mem@example.org']}", json={"role": "viewer"}
    )
    assert ok.status_code == 200 and ok.json()["role"] == "viewer"


def test_an_api_key_is_shown_once_scoped_and_revocable(inst: Installation) -> None:
    owner = inst.login(OWNER)
    made = owner.post("/v1/api-keys", json={"name": "backup script", "scope": "read"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith("kfk_")
    listed = owner.get("/v1/api-keys").json()["data"]
    assert [k["name"] for k in listed] == ["backup script"] and key not in str(listed)
    with inst.db() as db:
        row = db.exec(select(ApiKey)).one()
    # The secret is everything after `kfk_<prefix>_` (it may hold `_` itself).
    secret = key.split("_", 2)[2]
    assert secret not in row.secret_hash  # stored as a digest only
    script = inst.client(Authorization=f"Bearer {key}")
    assert script.get("/v1/stacks").status_code == 200
    write = script.post("/v1/stacks", json={"source": KOMBINATION.format(name="lab")})
    assert write.status_code == 403 and "scope" in write.json()["detail"]
    assert script.get("/v1/me").json()["via"] == "api-key"
    assert owner.delete(f"/v1/api-keys/{made.json()['id']}").status_code == 204
    gone = script.get("/v1/stacks")
    assert gone.status_code == 401 and "revoked" in gone.json()["detail"]


def test_an_expired_key_is_refused_and_keys_cannot_make_keys(inst: Installation) -> None:
    owner = inst.login(OWNER)
    key = owner.post("/v1/api-keys", json={"name": "ci", "scope": "deploy"}).json()["key"]
    script = inst.client(Authorization=f"Bearer {key}")
    assert script.post("/v1/api-keys", json={"name": "x", "scope": "read"}).status_code == 403
    with inst.db() as db:
        row = db.exec(select(ApiKey)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        db.commit()
    assert script.get("/v1/stacks").status_code == 401


def test_an_admin_key_needs_a_recent_sign_in(inst: Installation) -> None:
    owner = inst.login(OWNER)
    from kombify.db.account_tables import UserSession

    with inst.db() as db:
        for row in db.exec(select(UserSession)).all():
            row.reauthenticated_at = utcnow() - timedelta(hours=1)
            db.add(row)
        db.commit()
    refused = owner.post("/v1/api-keys", json={"name": "ops", "scope": "admin"})
    assert refused.status_code == 403 and "reauth" in refused.json()["detail"]
    assert owner.post("/v1/auth/reauth", json={"password": PASSWORD}).status_code == 204
    assert owner.post("/v1/api-keys", json={"name": "ops", "scope": "admin"}).status_code == 201


def test_a_member_of_another_organisation_sees_nothing_of_this_one(inst: Installation) -> None:
    owner = inst.login(OWNER)
    assert (
        owner.post("/v1/stacks", json={"source": KOMBINATION.format(name="lab")}).status_code == 201
    )
    inst.add_user("bob@example.org", "other", "owner")
    bob = inst.login("bob@example.org")
    assert bob.get("/v1/stacks").json()["data"] == []
    assert bob.get("/v1/stacks/lab").status_code == 404
    assert bob.get("/v1/orgs/local/members").status_code == 404
    taken = bob.post("/v1/stacks", json={"source": KOMBINATION.format(name="lab")})
    assert taken.status_code == 409 and OWNER not in taken.text and "local" not in taken.text
    asked = bob.get("/v1/stacks", headers={"X-Kombify-Org": "local"})
    assert asked.status_code == 404


def test_a_user_in_two_organisations_picks_one_per_request(inst: Installation) -> None:
    inst.add_user("bob@example.org", "other", "owner")
    inst.add_user("bob@example.org", "local", "viewer")
    bob = inst.login("bob@example.org")
    assert bob.get("/v1/me").json()["organisation"]["slug"] == "other"
    here = bob.get("/v1/me", headers={"X-Kombify-Org": "local"}).json()
    assert here["organisation"]["slug"] == "local" and here["role"] == "viewer"
    refused = bob.post(
        "/v1/stacks",
        json={"source": KOMBINATION.format(name="lab")},
        headers={"X-Kombify-Org": "local"},
    )
    assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
    assert {o["slug"] for o in bob.get("/v1/orgs").json()["data"]} == {"local", "other"}


def test_changes_are_in_the_organisations_activity_log(inst: Installation) -> None:
    owner = inst.login(OWNER)
    owner.post("/v1/stacks", json={"source": KOMBINATION.format(name="lab")})
    owner.delete("/v1/stacks/lab")
    log = owner.get("/v1/orgs/local/activity").json()["data"]
    actions = [(e["action"], e["object_id"], e["outcome"]) for e in log]
    assert ("DELETE /v1/stacks/{name}", "lab", "ok") in actions
    assert ("POST /v1/stacks", "", "ok") in actions
    entry = next(e for e in log if e["action"] == "DELETE /v1/stacks/{name}")
    assert entry["actor"] == OWNER and entry["via"] == "session" and entry["address"]
    inst.add_user("v@example.org", "local", "viewer")
    assert inst.login("v@example.org").get("/v1/orgs/local/activity").status_code == 403


def test_anyone_may_leave_but_the_last_owner(inst: Installation) -> None:
    inst.add_user("v@example.org", "local", "viewer")
    viewer = inst.login("v@example.org")
    assert viewer.post("/v1/orgs/local/leave").status_code == 204
    assert viewer.get("/v1/stacks", headers={"X-Kombify-Org": "local"}).status_code == 404
    owner = inst.login(OWNER)
    refused = owner.post("/v1/orgs/local/leave")
    assert refused.status_code == 409 and "last owner" in refused.json()["detail"]
