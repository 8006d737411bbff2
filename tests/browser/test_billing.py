"""The billing pages: the public pricing page and the organisation's billing page.

The pricing page is checked against ``GET /v1/plans`` (never a hard-coded list): every plan,
its price and its stack limit in words, at desktop and phone width, axe clean. The billing page
is checked on an installation with billing off (self-hosted: it says so and offers nothing to
buy) and, when the Stripe stand-in is there (tests/support/stripe_standin/), with billing on:
Free with its usage, and Upgrade leading to the stand-in's Checkout page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlmodel import Session, create_engine, select

from kombify.db.billing_tables import OrgBilling
from kombify.db.models import Organisation
from tests.support.api_process import ApiProcess, running_api
from tests.support.browser import (
    REPO,
    WIDTHS,
    as_phone,
    axe_check,
    chromium_required,
    fresh_context,
    screenshot,
)
from tests.support.stripe_standin import StripeStandin, running_stripe_standin

BUILD = REPO / "dashboard" / "build" / "index.html"
EXAMPLE = REPO / "docs" / "examples" / "rehearsal.yaml"
OWNER = "owner@example.org"
PASSWORD = "a long enough passphrase"
PHONE_360 = {"width": 360, "height": 740}


def _need_build() -> None:
    if not BUILD.is_file():
        reason = f"the dashboard is not built ({BUILD} missing: scripts/build-dashboard.sh)"
        if chromium_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _make_owner(api: ApiProcess) -> None:
    made = httpx.post(
        f"{api.url}/v1/admin/owner",
        headers={"Authorization": f"Bearer {api.admin_token}"},
        json={"email": OWNER, "password": PASSWORD, "name": "Olga Owner"},
    )
    assert made.status_code == 201, made.text


@pytest.fixture(scope="module")
def self_hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """An installation without a Stripe key: billing off."""
    _need_build()
    env = {"KOMBIFY_RATE_LIMITS": "auth=300/60,tries=100/60"}
    with running_api(tmp_path_factory.mktemp("billing-off-api"), env=env) as api:
        _make_owner(api)
        yield api


@pytest.fixture
async def en_page(browser: Browser, page_requests: list[str]) -> AsyncIterator[Page]:
    """A page in a fresh context with the en-US locale (so prices read `$29 / month`)."""
    async with fresh_context(browser, page_requests, locale="en-US") as context:
        yield await context.new_page()


async def sign_in(page: Page, url: str, next_path: str) -> None:
    await page.goto(f"{url}{next_path}")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Email").fill(OWNER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{url}{next_path}")


def owner_headers(url: str) -> dict[str, str]:
    """A bearer session of the owner, for reading and storing through the API."""
    response = httpx.post(f"{url}/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def expected_price(plan: dict[str, Any]) -> str:
    """The price as an en-US reader sees it, from the API's cents."""
    cents = plan["monthly_cents"]
    if cents is None:
        return "custom"
    amount = f"${cents // 100:,}" if cents % 100 == 0 else f"${cents / 100:,.2f}"
    return amount if cents == 0 else f"{amount} / month"


def expected_stacks(plan: dict[str, Any]) -> str:
    limit = plan["entitlements"]["stacks"]
    if limit is None:
        return "unlimited stacks"
    return f"{limit} stack" if limit == 1 else f"{limit} stacks"


def plans_of(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/plans")
    assert answer.status_code == 200, answer.text
    plans: dict[str, Any] = answer.json()
    assert plans["data"], plans
    return plans


async def no_sideways_scroll(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"


# ---- /pricing (public) -------------------------------------------------------------------


async def test_the_pricing_page_shows_every_plan_of_the_api(
    en_page: Page, self_hosted: ApiProcess
) -> None:
    page = en_page
    plans = plans_of(self_hosted.url)["data"]
    await page.goto(f"{self_hosted.url}/pricing")
    await expect(page.get_by_role("heading", level=1, name="Pricing")).to_be_visible()
    table = page.get_by_role("table", name="The plans compared")
    await expect(table).to_be_visible()
    # One column per plan, in the API's order, headed by its name.
    headers = table.locator("thead th")
    await expect(headers).to_have_count(len(plans))
    for i, plan in enumerate(plans):
        await expect(headers.nth(i)).to_contain_text(plan["name"])
    price_row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Price"))
    await expect(price_row.locator("td")).to_have_text([expected_price(p) for p in plans])
    stacks_row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Stacks"))
    await expect(stacks_row.locator("td")).to_have_text([expected_stacks(p) for p in plans])
    # Nothing to buy on the page itself: signing in leads on.
    await expect(page.get_by_role("button", name=re.compile("Upgrade"))).to_have_count(0)


async def test_the_pricing_page_is_linked_from_the_landing_and_login_pages(
    page: Page, self_hosted: ApiProcess
) -> None:
    for start in ("/", "/login"):
        await page.goto(f"{self_hosted.url}{start}")
        await page.get_by_role("link", name=re.compile("pricing", re.I)).first.click()
        await expect(page).to_have_url(f"{self_hosted.url}/pricing")
        await expect(page.get_by_role("heading", level=1, name="Pricing")).to_be_visible()


@pytest.mark.parametrize("width", [*WIDTHS, "360"])
async def test_the_pricing_page_passes_axe_and_fits_a_phone(
    en_page: Page, self_hosted: ApiProcess, width: str
) -> None:
    page = en_page
    plans = plans_of(self_hosted.url)["data"]
    if width == "phone":
        await as_phone(page)
    elif width == "360":
        await page.set_viewport_size(PHONE_360)
    await page.goto(f"{self_hosted.url}/pricing")
    if width == "desktop":
        await expect(page.get_by_role("table", name="The plans compared")).to_be_visible()
    else:
        # At a phone's width the table gives way to one card per plan, each with its price.
        await expect(page.get_by_role("table", name="The plans compared")).to_be_hidden()
        for plan in plans:
            card = page.locator("li.card").filter(
                has=page.get_by_role("heading", level=3, name=plan["name"])
            )
            await expect(card).to_be_visible()
            await expect(card).to_contain_text(expected_price(plan))
            await expect(card).to_contain_text(expected_stacks(plan))
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await no_sideways_scroll(page)
    if width == "desktop":
        await screenshot(page, "pricing")


# ---- /billing, billing off -----------------------------------------------------------------


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_with_billing_off_the_billing_page_says_everything_is_included(
    page: Page, self_hosted: ApiProcess, width: str
) -> None:
    if width == "phone":
        await as_phone(page)
    await sign_in(page, self_hosted.url, "/billing")
    await expect(page.get_by_role("heading", level=1, name="Billing")).to_be_visible()
    await expect(
        page.get_by_text(
            "Billing is off on this self-hosted installation: every feature is included"
        )
    ).to_be_visible()
    # Every limit is unlimited, and nothing is offered to buy or manage.
    await expect(page.get_by_text("· unlimited")).to_have_count(3)
    await expect(page.get_by_role("button", name=re.compile("Upgrade"))).to_have_count(0)
    await expect(page.get_by_role("button", name="Manage billing")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Invoices")).to_have_count(0)
    # The navigation's Billing entry is a link to this page.
    if width == "desktop":
        await expect(page.get_by_role("link", name="Billing")).to_have_attribute(
            "aria-current", "page"
        )
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await no_sideways_scroll(page)
    if width == "desktop":
        await screenshot(page, "billing-off")


# ---- /billing, billing on (the Stripe stand-in) --------------------------------------------


@contextmanager
def _hosted_installation(
    temporal_address: str, home: Path
) -> Iterator[tuple[ApiProcess, StripeStandin]]:
    """An installation selling plans through the local Stripe stand-in (Pro has a price)."""
    _need_build()
    with running_stripe_standin() as standin:
        pro, _team = standin.plan_prices()
        env = {
            "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
            "KOMBIFY_RATE_LIMITS": "auth=300/60,tries=100/60",
            "KOMBIFY_STRIPE_API_KEY": standin.api_key,
            "KOMBIFY_STRIPE_WEBHOOK_SECRET": "whsec_browser_tests_only",
            "KOMBIFY_STRIPE_API_BASE": standin.base_url,
            "KOMBIFY_STRIPE_PRICE_PRO": pro,
        }
        with running_api(home, env=env) as api:
            _make_owner(api)
            yield api, standin


@pytest.fixture(scope="module")
def hosted(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, StripeStandin]]:
    """Billing on: the organisation starts on Free."""
    with _hosted_installation(temporal_address, tmp_path_factory.mktemp("billing-on-api")) as it:
        yield it


@pytest.fixture(scope="module")
def hosted_states(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, StripeStandin]]:
    """Billing on, for a test that sets the organisation's subscription state itself."""
    home = tmp_path_factory.mktemp("billing-states-api")
    with _hosted_installation(temporal_address, home) as it:
        yield it


def set_subscription(api: ApiProcess, **fields: Any) -> None:
    """Write the organisation's ``org_billing`` row as the subscription workflow would."""
    engine = create_engine(api.database_url)
    try:
        with Session(engine) as db:
            org = db.exec(select(Organisation).where(Organisation.slug == "local")).one()
            row = db.get(OrgBilling, org.id) or OrgBilling(organisation_id=org.id)
            for name, value in fields.items():
                setattr(row, name, value)
            db.add(row)
            db.commit()
    finally:
        engine.dispose()


async def test_with_billing_on_free_shows_its_usage_and_upgrade_leads_to_checkout(
    en_page: Page, hosted: tuple[ApiProcess, StripeStandin]
) -> None:
    api, standin = hosted
    page = en_page
    plans = plans_of(api.url)
    assert plans["billing"] is True
    free = next(p for p in plans["data"] if p["id"] == "free")
    await sign_in(page, api.url, "/billing")
    plan_card = page.get_by_role("region", name="Your plan", exact=True)
    await expect(plan_card).to_contain_text("Free")
    await expect(page.get_by_text("Billing is off")).to_have_count(0)
    # Usage against Free's limits, as the API counts it.
    ent = httpx.get(f"{api.url}/v1/orgs/local/entitlements", headers=owner_headers(api.url))
    assert ent.status_code == 200, ent.text
    usage, limits = ent.json()["usage"], ent.json()["entitlements"]
    assert limits["stacks"] == free["entitlements"]["stacks"]
    await expect(page.get_by_role("meter", name="Stacks")).to_have_attribute(
        "aria-valuetext", f"{usage['stacks']} of {limits['stacks']}"
    )
    await expect(page.get_by_role("meter", name="Members")).to_have_attribute(
        "aria-valuetext", f"{usage['members']} of 1"
    )
    # No subscription yet: nothing to manage in Stripe's portal.
    await expect(page.get_by_role("button", name="Manage billing")).to_have_count(0)
    # Every self-serve plan above Free can be bought; Free and Enterprise cannot.
    for plan in plans["data"]:
        button = page.get_by_role("button", name=f"Upgrade to {plan['name']}")
        await expect(button).to_have_count(1 if plan["self_serve"] else 0)
    await expect(page.get_by_role("heading", level=2, name="Invoices")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await screenshot(page, "billing-free")
    # Upgrade: the API makes a Checkout Session at the stand-in and the page goes there.
    await page.get_by_role("button", name="Upgrade to Pro").click()
    await expect(page).to_have_url(re.compile(re.escape(f"{standin.base_url}/checkout/cs_")))
    # Paying there brings the owner back to the billing page, which waits for Stripe's word.
    await page.get_by_role("button", name="Pay").click()
    await expect(page).to_have_url(re.compile(re.escape(f"{api.url}/billing?checkout=done")))
    await expect(page.get_by_role("heading", level=1, name="Billing")).to_be_visible()
    # Stripe has the paid invoice now: the table shows it as the API lists it.
    listed = httpx.get(f"{api.url}/v1/orgs/local/billing/invoices", headers=owner_headers(api.url))
    assert listed.status_code == 200, listed.text
    invoices = listed.json()["data"]
    assert invoices, "the stand-in made no invoice for the paid checkout"
    rows = page.get_by_role("table", name="Invoices, newest first").locator("tbody tr")
    await expect(rows).to_have_count(len(invoices))
    first = invoices[0]
    amount = first["amount_paid"] if first["status"] == "paid" else first["amount_due"]
    await expect(rows.first).to_contain_text(first["number"])
    await expect(rows.first).to_contain_text(
        expected_price({"monthly_cents": amount}).split(" ")[0]
    )
    await expect(rows.first.get_by_role("link", name=re.compile("^PDF"))).to_have_attribute(
        "href", first["pdf"]
    )
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await screenshot(page, "billing-after-checkout")
    # A customer now: Manage billing opens Stripe's portal (the stand-in's).
    await page.get_by_role("button", name="Manage billing").click()
    await expect(page).to_have_url(re.compile(re.escape(f"{standin.base_url}/portal/")))


async def test_a_plan_limit_anywhere_in_the_app_links_to_billing(
    page: Page, hosted: tuple[ApiProcess, StripeStandin]
) -> None:
    api, _ = hosted
    headers = owner_headers(api.url)
    ent = httpx.get(f"{api.url}/v1/orgs/local/entitlements", headers=headers).json()
    # Fill Free's stacks through the API, then ask for one more on the new-stack page.
    for i in range(ent["entitlements"]["stacks"] - ent["usage"]["stacks"]):
        source = EXAMPLE.read_text().replace("name: rehearsal", f"name: lab-{i}", 1)
        stored = httpx.post(f"{api.url}/v1/stacks", headers=headers, json={"source": source})
        assert stored.status_code == 201, stored.text
    await sign_in(page, api.url, "/new-stack")
    await page.get_by_role("button", name="Create stack").click()
    banner = page.locator(".plan-limit")
    await expect(banner).to_be_visible()
    refused = httpx.post(
        f"{api.url}/v1/stacks",
        headers=headers,
        json={"source": EXAMPLE.read_text().replace("name: rehearsal", "name: one-more", 1)},
    )
    assert refused.status_code == 402, refused.text
    # The page shows the refusal's detail; the notice names the plan that allows it, once.
    await expect(page.get_by_text(refused.json()["detail"])).to_have_count(1)
    plan = refused.json()["plan"]
    await expect(banner).to_contain_text(f"the {plan.capitalize()} plan allows this")
    await axe_check(page)
    await banner.get_by_role("link", name="See your plan and upgrade").click()
    await expect(page).to_have_url(f"{api.url}/billing")
    await expect(page.locator(".plan-limit")).to_have_count(0)


async def test_both_pages_pass_axe_in_the_dark_theme(
    browser: Browser, page_requests: list[str], hosted: tuple[ApiProcess, StripeStandin]
) -> None:
    api, _ = hosted
    async with fresh_context(browser, page_requests, color_scheme="dark") as context:
        page = await context.new_page()
        await page.goto(f"{api.url}/pricing")
        await expect(page.get_by_role("table", name="The plans compared")).to_be_visible()
        await axe_check(page)
        await sign_in(page, api.url, "/billing")
        await expect(page.get_by_role("meter", name="Stacks")).to_be_visible()
        await expect(page.get_by_role("heading", level=2, name="Plans")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await axe_check(page)
        await screenshot(page, "billing-dark")


async def test_the_billing_page_shows_each_subscription_state(
    en_page: Page, hosted_states: tuple[ApiProcess, StripeStandin]
) -> None:
    api, _ = hosted_states
    page = en_page
    headers = owner_headers(api.url)
    now = datetime.now(UTC)
    period_end = now + timedelta(days=20)
    plan_card = page.get_by_role("region", name="Your plan", exact=True)

    # Pro, a payment failed: the plan is kept until the grace period ends.
    set_subscription(
        api,
        plan="pro",
        status="past_due",
        stripe_customer_id="cus_browser",
        current_period_end=period_end,
        grace_until=now + timedelta(days=5),
    )
    await sign_in(page, api.url, "/billing")
    await expect(plan_card).to_contain_text("Pro")
    await expect(plan_card).to_contain_text("payment past due")
    await expect(plan_card).to_contain_text("kept until")
    await expect(page.get_by_role("button", name="Manage billing")).to_be_visible()
    # Above Pro only Team is for sale; Pro is "your plan".
    await expect(page.get_by_role("button", name="Upgrade to Team")).to_be_visible()
    await expect(page.get_by_role("button", name="Upgrade to Pro")).to_have_count(0)
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await screenshot(page, "billing-past-due")

    # A downgrade chosen for the period's end, then a cancellation at the period's end.
    set_subscription(api, status="active", grace_until=None, pending_plan="free")
    await page.reload()
    await expect(plan_card).to_contain_text("Moves to Free on")
    await expect(plan_card).not_to_contain_text("Renews")
    set_subscription(api, pending_plan=None, cancel_at_period_end=True)
    await page.reload()
    await expect(plan_card).to_contain_text("Cancels at the end of the period")

    # Three stacks stored on Pro, then the subscription ends: Free freezes the newest two.
    for name in ("lab-a", "lab-b", "lab-c"):
        source = EXAMPLE.read_text().replace("name: rehearsal", f"name: {name}", 1)
        stored = httpx.post(f"{api.url}/v1/stacks", headers=headers, json={"source": source})
        assert stored.status_code == 201, stored.text
    set_subscription(api, plan="free", status="canceled", cancel_at_period_end=False)
    ent = httpx.get(f"{api.url}/v1/orgs/local/entitlements", headers=headers).json()
    assert ent["frozen_stacks"], ent
    await page.reload()
    await expect(page.get_by_role("meter", name="Stacks")).to_have_attribute(
        "aria-valuetext", f"{ent['usage']['stacks']} of {ent['entitlements']['stacks']}"
    )
    await expect(page.get_by_text("(over the limit)")).to_be_visible()
    await expect(plan_card).to_contain_text("The subscription ended")
    await expect(plan_card).not_to_contain_text("Renews")
    frozen = page.get_by_role("note").filter(has=page.get_by_role("heading", name="Frozen stacks"))
    await expect(frozen.get_by_role("link")).to_have_text(ent["frozen_stacks"])
    await expect(frozen).to_contain_text("refuse new deploys")
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    await screenshot(page, "billing-frozen")
