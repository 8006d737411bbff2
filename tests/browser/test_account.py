"""The first-run wizard and the account pages, in Chromium against a real kombify.

Each test has an installation of its own (a fresh KOMBIFY_HOME and database, the session's
real Temporal), since the wizard's first step can be taken once per installation. Like the
landing tests they need the dashboard built, and skip without it (fail under CI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page, Request, expect

from tests.support.api_process import ApiProcess, running_api
from tests.support.browser import (
    REPO,
    as_desktop,
    as_phone,
    axe_check,
    chromium_required,
    fresh_context,
    screenshot,
)

BUILD = REPO / "dashboard" / "build" / "index.html"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the test's own


@pytest.fixture
def fresh_api(temporal_address: str, tmp_path: Path) -> Iterator[ApiProcess]:
    """A new installation: no owner yet, its admin token in its home."""
    if not BUILD.is_file():
        reason = f"the dashboard is not built ({BUILD} missing: scripts/build-dashboard.sh)"
        if chromium_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    env = {"KOMBIFY_TEMPORAL_ADDRESS": temporal_address}
    with running_api(tmp_path / "home", env=env) as api:
        yield api


async def _checked(page: Page, name: str) -> None:
    """axe at both widths, and screenshots of the step."""
    await as_phone(page)
    await axe_check(page)
    await as_desktop(page)
    await axe_check(page)
    await screenshot(page, name)


async def test_the_wizard_takes_a_fresh_installation_to_a_rehearsal(
    page: Page, fresh_api: ApiProcess
) -> None:
    deploys: list[Request] = []

    def deploy_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/deployments"):
            deploys.append(request)

    page.on("request", deploy_request)
    # Signing in leads a fresh installation to its setup.
    await page.goto(f"{fresh_api.url}/login")
    await page.wait_for_url("**/setup")
    await page.get_by_label("Admin token").wait_for()
    await _checked(page, "setup-owner")

    await page.get_by_label("Admin token").fill(fresh_api.admin_token)
    await page.get_by_label("Your email").fill("owner@example.org")
    await page.get_by_label("Password", exact=False).first.fill(PASSWORD)
    await page.get_by_label("The password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create the owner and sign in").click()

    # A second factor, offered at once: the seed as text, a code of it, recovery codes once.
    await page.get_by_role("heading", name="Protect the owner account").wait_for()
    await page.get_by_role("button", name="Set up a second factor").click()
    uri = await page.locator("code.uri").inner_text()
    await _checked(page, "setup-mfa")
    await page.get_by_label("The 6-digit code the app shows now").fill(
        pyotp.TOTP(pyotp.parse_uri(uri).secret).now()
    )
    await page.get_by_role("button", name="Turn on").click()
    codes = await page.locator(".secret code").inner_text()
    assert len(codes.split()) == 10
    await page.get_by_role("button", name="I stored them").click()
    await page.get_by_role("button", name="Continue", exact=True).click()

    await page.get_by_label("Organisation name").fill("Olga's homelab")
    await page.get_by_role("button", name="Save and continue").click()
    await page.get_by_role("heading", name="Single sign-on (optional)").wait_for()
    await _checked(page, "setup-oidc")
    await page.get_by_role("button", name="Continue").click()

    # The kombination: the API's problems appear at their fields as one types.
    await page.get_by_text("The kombination is valid.").wait_for()
    await page.locator("#n0-provider").select_option("local")
    address_error = page.locator("#n0-address-e")
    await address_error.filter(has_text="required for provider local").wait_for()
    assert await page.locator("#n0-address").get_attribute("aria-invalid") == "true"
    await page.locator("#n0-provider").select_option("sim")
    await page.get_by_label("Stack name").fill("First Lab")
    await page.locator("#k-name-e").filter(has_text="DNS label").wait_for()
    await page.get_by_label("Stack name").fill("firstlab")
    await page.get_by_text("The kombination is valid.").wait_for()
    await _checked(page, "setup-kombination")

    await page.get_by_role("button", name="Rehearse on KombiSim").click()
    await page.wait_for_url("**/stacks/firstlab")

    assert len(deploys) == 1
    sent: dict[str, Any] = deploys[0].post_data_json
    assert sent["simulate"] is True and "name: firstlab" in sent["source"]
    answer = await deploys[0].response()
    assert answer is not None and answer.status == 202
    # The installation is set up: its organisation named, an owner with a second factor.
    body = await (await page.request.get(f"{fresh_api.url}/v1/me")).json()
    assert body["organisation"]["name"] == "Olga's homelab"
    assert body["user"]["mfa_enabled"] is True
    assert httpx.get(f"{fresh_api.url}/v1/setup").json() == {"setup_needed": False}


async def _sign_in(page: Page, api: ApiProcess) -> None:
    await page.goto(f"{api.url}/login")
    await page.get_by_label("Email").fill("owner@example.org")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/stacks$"))


async def test_revoking_a_session_signs_that_browser_out(
    browser: Browser, fresh_api: ApiProcess
) -> None:
    made = httpx.post(
        f"{fresh_api.url}/v1/admin/owner",
        json={"email": "owner@example.org", "password": PASSWORD},
        headers={"Authorization": f"Bearer {fresh_api.admin_token}"},
    )
    assert made.status_code == 201, made.text
    async with fresh_context(browser) as laptop, fresh_context(browser) as phone:
        here = await laptop.new_page()
        there = await phone.new_page()
        await _sign_in(here, fresh_api)
        await _sign_in(there, fresh_api)
        await there.goto(f"{fresh_api.url}/account")
        await there.get_by_role("heading", name="Sessions").wait_for()

        await here.goto(f"{fresh_api.url}/account")
        rows = here.locator("#sessions ~ .table-wrap tbody tr")
        await rows.filter(has_text="this browser").wait_for()
        assert await rows.count() == 2
        await _checked(here, "account")
        await (
            rows.filter(has_not_text="this browser")
            .get_by_role("button", name=re.compile("^Revoke the session of"))
            .click()
        )
        await here.get_by_role("status").filter(has_text="Signed out").wait_for()
        await expect(rows).to_have_count(1)

        # The other browser's next request is refused: it is back at the sign-in page.
        assert (await there.request.get(f"{fresh_api.url}/v1/me")).status == 401
        await there.reload()
        await there.wait_for_url(re.compile(r"/login\?next=%2Faccount$"))
        # This browser is still signed in.
        assert (await here.request.get(f"{fresh_api.url}/v1/me")).status == 200


async def test_the_organisation_page_invites_and_manages_a_member(
    page: Page, fresh_api: ApiProcess
) -> None:
    url = fresh_api.url
    made = httpx.post(
        f"{url}/v1/admin/owner",
        json={"email": "owner@example.org", "password": PASSWORD},
        headers={"Authorization": f"Bearer {fresh_api.admin_token}"},
    )
    assert made.status_code == 201, made.text
    await _sign_in(page, fresh_api)
    await page.goto(f"{url}/organisation")
    await page.get_by_role("heading", name="Members").wait_for()

    await page.get_by_label("Email").fill("bob@example.org")
    await page.get_by_label("Role", exact=True).select_option("member")
    await page.get_by_role("button", name="Invite").click()
    token = await page.locator(".secret code").inner_text()
    invitations = page.locator("#invitations ~ .table-wrap tbody tr")
    await invitations.filter(has_text="bob@example.org").filter(has_text="open").wait_for()
    await _checked(page, "organisation")

    # Bob signs up with the token shown once; the page then lists him and changes his role.
    joined = httpx.post(
        f"{url}/v1/auth/signup",
        json={"email": "bob@example.org", "password": PASSWORD, "invitation": token},
    )
    assert joined.status_code == 201, joined.text
    bob_id = joined.json()["user"]["id"]
    await page.reload()
    await page.get_by_label("Role of bob@example.org").select_option("viewer")
    await page.get_by_role("status").filter(has_text="bob@example.org is now viewer").wait_for()
    members = await (await page.request.get(f"{url}/v1/orgs/local/members")).json()
    assert {m["user_id"]: m["role"] for m in members["data"]}[bob_id] == "viewer"

    await page.get_by_role("button", name="Remove bob@example.org").click()
    await page.get_by_role("button", name="Remove bob@example.org").click()  # the confirmation
    await page.get_by_role("status").filter(has_text="bob@example.org was removed").wait_for()
    members = await (await page.request.get(f"{url}/v1/orgs/local/members")).json()
    assert [m["email"] for m in members["data"]] == ["owner@example.org"]
