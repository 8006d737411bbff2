"""Plans enforced through the real API: 402 refusals, frozen stacks, the entitlements route.

Billing is on (a Stripe key and webhook secret are set; no Stripe call is made for
entitlements) and each test plays a plan by writing the organisation's ``org_billing`` row,
as the ProvisionSubscription workflow would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from kombify.accounts import orgs
from kombify.billing.entitlements import frozen_stacks
from kombify.db.account_tables import Activity, Invitation
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import Stack, User
from tests.support.accounts import OWNER, PASSWORD, Installation, installation
from tests.support.openapi_walk import kombination

BILLING = {"stripe_api_key": "sk_test_x", "stripe_webhook_secret": "whsec_x"}
HA = (Path(__file__).parents[1] / "data" / "spec" / "examples" / "ha-homelab.yaml").read_text()
HA_STACKKIT_LINE = 1 + HA.splitlines().index("  stackkit: ha-homelab")


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    with installation(tmp_path, f"sqlite:///{tmp_path / 'billing.db'}", **BILLING) as made:
        yield made


@pytest.fixture
def off(tmp_path: Path) -> Iterator[Installation]:
    with installation(tmp_path, f"sqlite:///{tmp_path / 'off.db'}") as made:
        yield made


def play(inst: Installation, plan: str, *, slug: str = "local", **fields: Any) -> None:
    """Give organisation ``slug`` ``plan``, as the subscription workflow would record it."""
    org = inst.org(slug)
    with inst.db() as db:
        row = db.get(OrgBilling, org.id) or OrgBilling(organisation_id=org.id)
        row.plan = plan
        row.status = fields.pop("status", "active")
        for key, value in fields.items():
            setattr(row, key, value)
        db.add(row)
        db.commit()


def stack_names(inst: Installation) -> list[str]:
    with inst.db() as db:
        return sorted(s.name for s in db.exec(select(Stack)).all())


def test_a_free_organisations_second_stack_is_refused_naming_pro(inst: Installation) -> None:
    owner = inst.login(OWNER)
    assert owner.post("/v1/stacks", json={"source": kombination("first")}).status_code == 201
    refused = owner.post("/v1/stacks", json={"source": kombination("second")})
    assert refused.status_code == 402, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert (body["plan"], body["entitlement"], body["status"]) == ("pro", "stacks", 402)
    assert body["type"].endswith("/plan-limit")
    assert "allows 1 stack" in body["detail"] and "has 1" in body["detail"]
    assert "Pro plan allows 5 stacks" in body["detail"]
    assert stack_names(inst) == ["first"]  # nothing stored


def test_a_free_organisations_ha_homelab_is_refused_at_spec_stackkit(inst: Installation) -> None:
    owner = inst.login(OWNER)
    for path in ("/v1/stacks", "/v1/kombinations/validate"):
        refused = owner.post(path, json={"source": HA})
        assert refused.status_code == 402, (path, refused.text)
        body = refused.json()
        assert (body["plan"], body["entitlement"]) == ("pro", "stackkits")
        [error] = body["errors"]
        assert error["path"] == "spec.stackkit"
        assert error["line"] == HA_STACKKIT_LINE
        assert "ha-homelab" in error["message"] and "base-homelab" in error["message"]
    assert stack_names(inst) == []
    # A file with other problems lists the plan's among them (the editor shows them all).
    broken = HA.replace("  variant: ubuntu-24.04\n", "  variant: 7\n")
    listed = owner.post("/v1/kombinations/validate", json={"source": broken})
    assert listed.status_code == 200, listed.text
    paths = [e["path"] for e in listed.json()["errors"]]
    assert "spec.stackkit" in paths and "spec.variant" in paths
    # A revision to a premium kit is refused the same way, the stored file unchanged.
    assert owner.post("/v1/stacks", json={"source": kombination("swarm")}).status_code == 201
    revised = owner.put("/v1/stacks/swarm", json={"source": HA})
    assert revised.status_code == 402 and revised.json()["errors"][0]["path"] == "spec.stackkit"
    assert "base-homelab" in owner.get("/v1/stacks/swarm").json()["source"]


def test_pro_allows_a_second_stack_and_every_kit(inst: Installation) -> None:
    play(inst, "pro")
    owner = inst.login(OWNER)
    assert owner.post("/v1/stacks", json={"source": kombination("first")}).status_code == 201
    assert owner.post("/v1/stacks", json={"source": kombination("second")}).status_code == 201
    validated = owner.post("/v1/kombinations/validate", json={"source": HA})
    assert validated.status_code == 200 and validated.json() == {"valid": True, "errors": []}
    made = owner.post("/v1/stacks", json={"source": HA})
    assert made.status_code == 201, made.text
    assert stack_names(inst) == ["first", "second", "swarm"]
    ent = owner.get("/v1/orgs/local/entitlements").json()
    assert ent["plan"] == {"id": "pro", "name": "Pro"}
    assert (ent["usage"]["stacks"], ent["entitlements"]["stacks"]) == (3, 5)


def test_a_lapsed_grace_period_is_free_even_before_the_workflow_says_so(
    inst: Installation,
) -> None:
    from datetime import timedelta

    from kombify.db.models import utcnow

    play(inst, "pro", status="past_due", grace_until=utcnow() + timedelta(days=3))
    owner = inst.login(OWNER)
    assert owner.get("/v1/orgs/local/entitlements").json()["plan"]["id"] == "pro"
    play(inst, "pro", status="past_due", grace_until=utcnow() - timedelta(seconds=1))
    body = owner.get("/v1/orgs/local/entitlements").json()
    assert body["plan"]["id"] == "free" and body["grace_until"] is not None


def test_kombisim_basic_refuses_a_four_node_simulation(inst: Installation) -> None:
    owner = inst.login(OWNER)
    for path in ("/v1/simulations", "/v1/simulation-runs"):
        refused = owner.post(path, json={"name": "big", "nodes": 4})
        assert refused.status_code == 402, (path, refused.text)
        body = refused.json()
        assert (body["plan"], body["entitlement"]) == ("pro", "kombisim")
        assert "up to 3 nodes" in body["detail"] and "has 4" in body["detail"]
    with inst.db() as db:
        assert orgs.by_slug(db, "local") is not None
        from kombify.db.models import Simulation

        assert db.exec(select(Simulation)).all() == []  # nothing claimed


def test_invitations_need_team(inst: Installation) -> None:
    play(inst, "pro")
    owner = inst.login(OWNER)
    refused = owner.post("/v1/orgs/local/invitations", json={"email": "ana@example.org"})
    assert refused.status_code == 402, refused.text
    assert (refused.json()["plan"], refused.json()["entitlement"]) == ("team", "team")
    with inst.db() as db:
        assert db.exec(select(Invitation)).all() == []
    play(inst, "team")
    sent = owner.post("/v1/orgs/local/invitations", json={"email": "ana@example.org"})
    assert sent.status_code == 201, sent.text
    token = sent.json()["token"]
    # The organisation loses Team before the invitation is used: joining is refused, and the
    # invitation stays open for when it has Team again.
    play(inst, "pro")
    signup = {"email": "ana@example.org", "password": PASSWORD, "invitation": token}
    joined = inst.client().post("/v1/auth/signup", json=signup)
    assert joined.status_code == 402 and joined.json()["entitlement"] == "team"
    inst.add_user("bo@example.org", "elsewhere", "owner")
    bo_sent = None
    play(inst, "team")
    bo_sent = owner.post("/v1/orgs/local/invitations", json={"email": "bo@example.org"})
    assert bo_sent.status_code == 201
    play(inst, "pro")
    bo = inst.login("bo@example.org")
    accepted = bo.post("/v1/invitations/accept", json={"token": bo_sent.json()["token"]})
    assert accepted.status_code == 402 and accepted.json()["plan"] == "team"
    members = owner.get("/v1/orgs/local/members").json()["data"]
    assert [m["email"] for m in members] == [OWNER]
    with inst.db() as db:
        assert db.exec(select(User).where(User.email == "ana@example.org")).first() is None
    play(inst, "team")
    assert inst.client().post("/v1/auth/signup", json=signup).status_code == 201
    ok = bo.post("/v1/invitations/accept", json={"token": bo_sent.json()["token"]})
    assert ok.status_code == 200, ok.text
    assert len(owner.get("/v1/orgs/local/members").json()["data"]) == 3


def test_billing_off_allows_everything_and_says_self_hosted(off: Installation) -> None:
    owner = off.login(OWNER)
    assert owner.post("/v1/stacks", json={"source": kombination("first")}).status_code == 201
    assert owner.post("/v1/stacks", json={"source": kombination("second")}).status_code == 201
    assert owner.post("/v1/stacks", json={"source": HA}).status_code == 201
    assert owner.post("/v1/kombinations/validate", json={"source": HA}).json()["valid"] is True
    invited = owner.post("/v1/orgs/local/invitations", json={"email": "ana@example.org"})
    assert invited.status_code == 201
    body = owner.get("/v1/orgs/local/entitlements").json()
    assert body["billing"] is False
    assert body["plan"] == {"id": "self-hosted", "name": "Self-hosted"}
    assert body["status"] == "self-hosted"
    assert body["entitlements"] == {
        "stacks": None, "kombisim": "full", "simulations": None, "simulation_nodes": None,
        "stackkits": "premium", "team": True, "sso": True, "priority_support": True,
    }  # fmt: skip
    assert body["usage"] == {"stacks": 3, "simulations": 0, "members": 1}
    assert body["frozen_stacks"] == []
    plans = off.client().get("/v1/plans").json()
    assert plans["billing"] is False


def test_the_plans_are_public(inst: Installation) -> None:
    answer = inst.client().get("/v1/plans")  # no sign-in
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["billing"], body["currency"]) == (True, "usd")
    by_id = {p["id"]: p for p in body["data"]}
    assert list(by_id) == ["free", "pro", "team", "enterprise"]
    assert [by_id[p]["monthly_cents"] for p in by_id] == [0, 2900, 9900, None]
    assert [by_id[p]["self_serve"] for p in by_id] == [False, True, True, False]
    assert by_id["free"]["entitlements"] == {
        "stacks": 1, "kombisim": "basic", "simulations": 1, "simulation_nodes": 3,
        "stackkits": "base", "team": False, "sso": False, "priority_support": False,
    }  # fmt: skip


def test_the_entitlements_route_is_for_members(inst: Installation) -> None:
    inst.add_user("eve@example.org", "elsewhere", "owner")
    eve = inst.login("eve@example.org")
    assert eve.get("/v1/orgs/local/entitlements").status_code == 404
    mine = eve.get("/v1/orgs/elsewhere/entitlements")
    assert mine.status_code == 200 and mine.json()["plan"]["id"] == "free"
    assert inst.client().get("/v1/orgs/local/entitlements").status_code == 401


def test_an_admin_sets_an_enterprise_price_audited(inst: Installation) -> None:
    inst.add_user("eve@example.org", "elsewhere", "owner")
    owner = inst.login(OWNER)
    path = "/v1/admin/orgs/elsewhere/billing"
    done = owner.put(path, json={"enterprise_price_id": "price_1Ent"})
    assert done.status_code == 200, done.text
    assert done.json() == {"organisation": "elsewhere", "enterprise_price_id": "price_1Ent"}
    org = inst.org("elsewhere")
    with inst.db() as db:
        row = db.get(OrgBilling, org.id)
        assert row is not None and row.enterprise_price_id == "price_1Ent"
        assert row.plan == "free"  # the price alone buys nothing
        logged = db.exec(select(Activity).where(Activity.action == "org-enterprise-price")).one()
        assert (logged.organisation_id, logged.object_id, logged.actor) == (
            org.id,
            "elsewhere",
            OWNER,
        )
    bad = owner.put(path, json={"enterprise_price_id": "prod_nope"})
    assert bad.status_code == 422 and "enterprise_price_id" in bad.text
    missing = owner.put("/v1/admin/orgs/nobody/billing", json={"enterprise_price_id": "price_1"})
    assert missing.status_code == 404
    eve = inst.login("eve@example.org")
    refused = eve.put(path, json={"enterprise_price_id": "price_2"})
    assert refused.status_code == 403
    with inst.db() as db:
        row = db.get(OrgBilling, org.id)
        assert row is not None and row.enterprise_price_id == "price_1Ent"


def test_frozen_stacks_helper_orders_by_age(inst: Installation) -> None:
    play(inst, "pro")
    owner = inst.login(OWNER)
    for name in ("a-old", "b-mid", "c-new"):
        assert owner.post("/v1/stacks", json={"source": kombination(name)}).status_code == 201
    play(inst, "free")
    org = inst.org("local")
    with inst.db() as db:
        assert [s.name for s in frozen_stacks(db, org, inst.settings)] == ["b-mid", "c-new"]


@pytest.fixture
def with_temporal(tmp_path: Path, temporal_address: str, task_queue: str) -> Iterator[Installation]:
    """Billing on, and a real Temporal for the runs (no worker: a started run waits)."""
    with installation(
        tmp_path,
        f"sqlite:///{tmp_path / 'runs.db'}",
        temporal_address=temporal_address,
        task_queue=task_queue,
        **BILLING,
    ) as made:
        yield made


async def test_after_a_downgrade_the_newest_stacks_are_frozen_not_deleted(
    with_temporal: Installation,
) -> None:
    from kombify.db.models import Deployment, DeploymentCreate
    from kombify.errors import PaymentRequiredError
    from kombify.operate.start_run import start_run
    from kombify.runtime.temporal_client import connect

    inst = with_temporal
    play(inst, "pro")
    owner = inst.login(OWNER)
    for name in ("a-old", "b-mid", "c-new"):
        assert owner.post("/v1/stacks", json={"source": kombination(name)}).status_code == 201
    play(inst, "free", status="canceled")  # the subscription ended: Free, 3 stacks of 1

    ent = owner.get("/v1/orgs/local/entitlements").json()
    assert ent["plan"]["id"] == "free" and ent["frozen_stacks"] == ["b-mid", "c-new"]
    assert ent["usage"]["stacks"] == 3
    for name in ("b-mid", "c-new"):
        refused = owner.post(f"/v1/stacks/{name}/deployments", json={"auto_approve": True})
        assert refused.status_code == 402, refused.text
        body = refused.json()
        assert (body["plan"], body["entitlement"]) == ("pro", "stacks")
        assert f"stack `{name}` is frozen" in body["detail"]
        # With a new file too, and the file is not stored.
        again = owner.post(
            f"/v1/stacks/{name}/deployments",
            json={"auto_approve": True, "source": kombination(name) + "# changed\n"},
        )
        assert again.status_code == 402
        assert owner.get(f"/v1/stacks/{name}").json()["current_revision"] == 1
    # A workflow step starts runs through the same function: it is refused the same way.
    org = inst.org("local")
    client = await connect(inst.settings)
    with inst.db() as db:
        with pytest.raises(PaymentRequiredError) as raised:
            await start_run(
                session=db, org=org, client=client, settings=inst.settings, name="c-new",
                kind="deploy", options=DeploymentCreate(auto_approve=True),
            )  # fmt: skip
        assert raised.value.plan == "pro"
        assert db.exec(select(Deployment)).all() == []
    assert stack_names(inst) == ["a-old", "b-mid", "c-new"]  # nothing deleted
    # Within the limit deploys go on; destroying a frozen stack is allowed (it lowers usage).
    kept = owner.post("/v1/stacks/a-old/deployments", json={"auto_approve": True})
    assert kept.status_code == 202, kept.text
    destroyed = owner.post("/v1/stacks/c-new/destroy", json={})
    assert destroyed.status_code == 202, destroyed.text
    assert destroyed.json()["kind"] == "destroy"
    for name in ("a-old", "c-new"):
        workflow = kept if name == "a-old" else destroyed
        await client.get_workflow_handle(workflow.json()["workflow_id"]).terminate("test over")
