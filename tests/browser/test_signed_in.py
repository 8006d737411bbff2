"""Signed in through the dashboard's form: the app's main pages, axe on each, and a revoked session.

One ``kombify api`` of this module's own (its first owner is made here, which turns the admin
token off: the session-wide API of the other browser tests must keep it), with two stacks
stored, so the stacks page has rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.api_process import running_api
from tests.support.browser import REPO, WIDTHS, as_phone, axe_check, chromium_required, screenshot

BUILD = REPO / "dashboard" / "build" / "index.html"
EXAMPLE = REPO / "docs" / "examples" / "rehearsal.yaml"
OWNER = "owner@example.org"
PASSWORD = "a long enough passphrase"
# The app's main pages when signed in, and the heading each shows.
APP_PAGES = {
    "stacks": ("/stacks", "Stacks"),
    "simulations": ("/simulations", "Simulations"),
    "account": ("/account", "Account"),
    "organisation": ("/organisation", "Organisation"),
}


@dataclass(frozen=True)
class Installation:
    url: str
    stacks: list[str]


@pytest.fixture(scope="module")
def installation(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    if not BUILD.is_file():
        reason = f"the dashboard is not built ({BUILD} missing: scripts/build-dashboard.sh)"
        if chromium_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    # Every test signs in through the form: more sign-ins a minute than the default allows.
    env = {
        "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
        "KOMBIFY_RATE_LIMITS": "auth=300/60,tries=100/60",
    }
    with running_api(tmp_path_factory.mktemp("signed-in-api"), env=env) as api:
        made = httpx.post(
            f"{api.url}/v1/admin/owner",
            headers={"Authorization": f"Bearer {api.admin_token}"},
            json={"email": OWNER, "password": PASSWORD, "name": "Olga Owner"},
        )
        assert made.status_code == 201, made.text
        token = _session_token(api.url)
        names = ["garage-lab", "attic-lab"]
        for name in names:
            source = EXAMPLE.read_text().replace("name: rehearsal", f"name: {name}", 1)
            stored = httpx.post(
                f"{api.url}/v1/stacks",
                headers={"Authorization": f"Bearer {token}"},
                json={"source": source, "filename": "kombination.yaml"},
            )
            assert stored.status_code == 201, stored.text
        yield Installation(api.url, names)


def _session_token(url: str) -> str:
    response = httpx.post(f"{url}/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def sign_in(page: Page, url: str, next_path: str = "/stacks") -> None:
    """Through the form, as a person: the app page sends an anonymous visitor to /login."""
    await page.goto(f"{url}{next_path}")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Email").fill(OWNER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{url}{next_path}")


async def test_signing_in_through_the_form_lists_the_stacks(
    page: Page, installation: Installation
) -> None:
    await sign_in(page, installation.url)
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(len(installation.stacks))
    for name in installation.stacks:
        await expect(page.get_by_role("rowheader", name=name)).to_be_visible()
    await expect(page.get_by_text(OWNER)).to_be_visible()


async def test_a_wrong_password_is_refused_at_the_form(
    page: Page, installation: Installation
) -> None:
    await page.goto(f"{installation.url}/login")
    await page.get_by_label("Email").fill(OWNER)
    await page.get_by_label("Password").fill("not the password at all")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/login"))


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", list(APP_PAGES))
async def test_each_main_page_passes_axe_and_is_screenshotted(
    page: Page, installation: Installation, name: str, width: str
) -> None:
    path, heading = APP_PAGES[name]
    if width == "phone":
        await as_phone(page)
    await sign_in(page, installation.url, path)
    await expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
    await page.wait_for_load_state("networkidle")
    await axe_check(page)
    # No sideways scrolling at phone width: the page fits the viewport.
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{path} is {overflow}px wider than the {width} viewport"
    if width == "desktop":
        await screenshot(page, name)  # both widths, as test artefacts


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_the_login_page_passes_axe(
    page: Page, installation: Installation, width: str
) -> None:
    if width == "phone":
        await as_phone(page)
    await page.goto(f"{installation.url}/login")
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    await axe_check(page)
    if width == "desktop":
        await screenshot(page, "login")


async def test_a_session_revoked_elsewhere_signs_that_browser_out(
    page: Page, installation: Installation
) -> None:
    await sign_in(page, installation.url)
    await expect(page.locator("tbody tr")).to_have_count(len(installation.stacks))
    # From another session of the same person (the CLI, another browser): revoke this one.
    other = _session_token(installation.url)
    headers = {"Authorization": f"Bearer {other}"}
    sessions = httpx.get(f"{installation.url}/v1/auth/sessions", headers=headers).json()
    # The browser's sessions (the cookie one of the other tests was made by httpx).
    browser_sessions = [s for s in sessions["data"] if "Chrome" in (s["client"] or "")]
    assert browser_sessions, sessions
    for s in browser_sessions:
        revoked = httpx.delete(f"{installation.url}/v1/auth/sessions/{s['id']}", headers=headers)
        assert revoked.status_code in (200, 204), revoked.text
    # The stacks page refreshes every 5 s; its next call is refused and the tab signs out.
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fstacks&ended=1"), timeout=20_000)
    await expect(page.get_by_role("status")).to_contain_text("session ended")
    await page.goto(f"{installation.url}/account")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
