"""API calls are counted per organisation, in memory, and stored by a flush; this month's usage
at GET /v1/orgs/{org}/billing/usage. Billing off: nothing is counted and the route is 409."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select

from kombify.accounts import api_keys, orgs, users
from kombify.billing.usage import API_CALLS, DEPLOY_MINUTES, HOUR, month_start
from kombify.db.billing_tables import UsageRecord
from tests.support.accounts import PASSWORD, Installation, installation

BILLING = {"stripe_api_key": "sk_test_usage", "stripe_webhook_secret": "whsec_usage"}


def _keyed_client(inst: Installation, slug: str) -> tuple[TestClient, str]:
    """A client of a new organisation ``slug`` (an API key of its owner), and the org's id."""
    with inst.db() as db:
        org = orgs.create(db, slug=slug)
        person = users.create(
            db, email=f"owner@{slug}.example.org", organisation=org, role="owner",
            password=PASSWORD, email_verified=True,
        )  # fmt: skip
        _, key = api_keys.create(db, org_id=org.id, user_id=person.id, name="ci", scope="admin")
        org_id = org.id
    return inst.client(Authorization=f"Bearer {key}"), org_id


def _calls(inst: Installation) -> dict[str, int]:
    with inst.db() as db:
        rows = db.exec(select(UsageRecord).where(UsageRecord.meter == API_CALLS))
        found: dict[str, int] = {}
        for row in rows:
            found[row.organisation_id] = found.get(row.organisation_id, 0) + row.quantity
        return found


def test_api_calls_of_two_organisations_are_counted_apart_after_a_flush(
    tmp_path: Path, database_url: str
) -> None:
    with installation(tmp_path, database_url, usage_flush_seconds=240, **BILLING) as inst:
        flusher = inst.app.state.usage_flusher
        flusher.flush()  # the first owner's creation (the admin token acts in `local`)
        before = _calls(inst)
        alpha, alpha_id = _keyed_client(inst, "alpha")
        beta, beta_id = _keyed_client(inst, "beta")
        for _ in range(3):
            assert alpha.get("/v1/stacks").status_code == 200
        assert alpha.post("/v1/stacks", json={"source": "not yaml: ["}).status_code == 422
        for _ in range(2):
            assert beta.get("/v1/orgs/beta").status_code == 200
        # Not authenticated: not counted.
        assert inst.client().get("/v1/stacks").status_code == 401
        assert inst.client(Authorization="Bearer kfk_nope").get("/v1/stacks").status_code == 401
        assert _calls(inst) == before  # counted in memory, not written per request

        assert flusher.flush() == 2
        assert _calls(inst) == {**before, alpha_id: 4, beta_id: 2}
        # The next flush adds to the stored counts.
        assert beta.get("/v1/stacks").status_code == 200
        assert flusher.flush() == 1
        assert _calls(inst) == {**before, alpha_id: 4, beta_id: 3}
        assert flusher.flush() == 0

        # This month: the stored and the not yet stored calls of the organisation alone.
        assert alpha.get("/v1/stacks").status_code == 200
        usage = alpha.get("/v1/orgs/alpha/billing/usage")
        assert usage.status_code == 200, usage.text
        assert usage.json() == {"deploy_minutes": 0, "api_calls": 5, "reported_through": None}
        # The usage call itself was counted too.
        assert alpha.get("/v1/orgs/alpha/billing/usage").json()["api_calls"] == 6
        # Another organisation's usage is not this key's to read.
        assert alpha.get("/v1/orgs/beta/billing/usage").status_code == 404

        # A reported hour of this month shows as reported, with what Stripe was told.
        start = month_start(datetime.now(UTC))
        with inst.db() as db:
            db.add(
                UsageRecord(
                    organisation_id=beta_id,
                    meter=DEPLOY_MINUTES,
                    hour=start,
                    quantity=42,
                    reported_at=datetime.now(UTC),
                )  # fmt: skip
            )
            db.commit()
        shown = beta.get("/v1/orgs/beta/billing/usage").json()
        assert shown["deploy_minutes"] == 42
        assert datetime.fromisoformat(shown["reported_through"]) == start + HOUR
        alpha.get("/v1/stacks")  # counted, not flushed: stored at shutdown
    assert _calls(inst)[alpha_id] == 4 + 4


def test_counts_are_flushed_every_few_seconds(tmp_path: Path, database_url: str) -> None:
    with installation(tmp_path, database_url, usage_flush_seconds=1, **BILLING) as inst:
        alpha, alpha_id = _keyed_client(inst, "alpha")
        assert alpha.get("/v1/stacks").status_code == 200
        deadline = time.monotonic() + 60
        while _calls(inst).get(alpha_id) != 1:
            assert time.monotonic() < deadline, "the counts were never flushed"
            time.sleep(0.1)


def test_billing_off_counts_nothing(tmp_path: Path, database_url: str) -> None:
    with installation(tmp_path, database_url) as inst:
        alpha, _ = _keyed_client(inst, "alpha")
        assert inst.app.state.usage_flusher is None
        for _ in range(3):
            assert alpha.get("/v1/stacks").status_code == 200
        refused = alpha.get("/v1/orgs/alpha/billing/usage")
        assert refused.status_code == 409
        assert refused.json()["detail"] == "billing is not configured on this installation"
    assert _calls(inst) == {}
