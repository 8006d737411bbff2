"""The plans' entitlement matrix, the cheapest plan allowing a thing, and the effective plan."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kombify.billing import entitlements
from kombify.billing.plans import PLANS, UNLIMITED, cheapest_plan, plan_by_id
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import utcnow
from kombify.settings import Settings


def test_the_matrix() -> None:
    rows = [
        (
            p.id, p.monthly_cents, p.entitlements.stacks, p.entitlements.kombisim,
            p.entitlements.simulations, p.entitlements.simulation_nodes,
            p.entitlements.stackkits, p.entitlements.team, p.entitlements.sso,
            p.entitlements.priority_support,
        )
        for p in PLANS
    ]  # fmt: skip
    assert rows == [
        ("free", 0, 1, "basic", 1, 3, "base", False, False, False),
        ("pro", 2900, 5, "full", None, None, "premium", False, False, False),
        ("team", 9900, 20, "full", None, None, "premium", True, False, True),
        ("enterprise", None, None, "full", None, None, "premium", True, True, True),
    ]
    assert UNLIMITED == plan_by_id("enterprise").entitlements


@pytest.mark.parametrize(
    ("stacks", "expected"), [(1, "free"), (2, "pro"), (5, "pro"), (6, "team"), (20, "team"),
                             (21, "enterprise"), (10_000, "enterprise")],
)  # fmt: skip
def test_the_cheapest_plan_for_a_number_of_stacks(stacks: int, expected: str) -> None:
    found = cheapest_plan(lambda e: e.stacks is None or e.stacks >= stacks)
    assert found.id == expected


def test_the_cheapest_plan_for_each_feature() -> None:
    assert cheapest_plan(lambda e: e.team).id == "team"
    assert cheapest_plan(lambda e: e.sso).id == "enterprise"
    assert cheapest_plan(lambda e: e.priority_support).id == "team"
    assert cheapest_plan(lambda e: e.kombisim == "full").id == "pro"
    assert cheapest_plan(lambda e: entitlements.stackkit_allowed(e, "ha-homelab")).id == "pro"
    assert cheapest_plan(lambda e: entitlements.stackkit_allowed(e, "base-homelab")).id == "free"


@pytest.mark.parametrize(
    ("stackkit", "free"),
    [("base-homelab", True), ("base-homelab@1.0", True), ("ha-homelab", False),
     ("modern-homelab@2", False), ("cloud-hybrid", False)],
)  # fmt: skip
def test_stackkit_levels(stackkit: str, free: bool) -> None:
    assert entitlements.stackkit_allowed(plan_by_id("free").entitlements, stackkit) is free
    assert entitlements.stackkit_allowed(plan_by_id("pro").entitlements, stackkit) is True


def test_the_line_of_spec_stackkit() -> None:
    text = (
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: x}\nspec:\n"
        "  nodes: []\n  stackkit: ha-homelab\n"
    )
    assert entitlements.stackkit_line(text) == 6
    assert entitlements.stackkit_line(None) is None
    assert entitlements.stackkit_line("spec: [") is None


def _row(**fields: object) -> OrgBilling:
    return OrgBilling(organisation_id="o", **fields)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (None, "free"),
        (_row(plan="pro", status="active"), "pro"),
        (_row(plan="team", status="trialing"), "team"),
        (_row(plan="pro", status="canceled"), "free"),
        (_row(plan="gold", status="active"), "free"),
        (_row(plan="pro", status="past_due", grace_until=utcnow() + timedelta(days=1)), "pro"),
        (_row(plan="pro", status="past_due", grace_until=utcnow() - timedelta(days=1)), "free"),
    ],
)
def test_the_plan_a_billing_row_gives(row: OrgBilling | None, expected: str) -> None:
    assert entitlements._row_plan(row).id == expected


def test_billing_off_is_self_hosted_with_everything(tmp_path: Path) -> None:
    from kombify.db.models import Organisation

    settings = Settings(home=tmp_path)
    assert not settings.billing_enabled
    # Billing off never reads the database: no session is needed.
    found = entitlements.effective_plan(None, Organisation(slug="x", name="x"), settings)  # type: ignore[arg-type]
    assert (found.billing, found.plan_id, found.status) == (False, "self-hosted", "self-hosted")
    assert found.entitlements == UNLIMITED
