"""Fixtures of the browser tests: one Chromium per session, a fresh context per test, a real API.

The browser is Debian's Chromium at /usr/bin/chromium (scripts/ensure-browser.sh installs
it). Without it these tests skip, except under CI=true or KOMBIFY_TESTS_NEED_DOCKER=1 (set by
scripts/test.sh), where a missing browser fails them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.api_process import ApiProcess, running_api
from tests.support.browser import (
    REPO,
    chromium_required,
    fresh_context,
    launched_chromium,
    missing_chromium,
)

BROWSER_FIXTURES = {"browser", "page"}

# How long an `expect(...)` waits for the page to get there. Playwright's 5 s is short on two
# cores shared with a whole test run (a reload and a fetch then take seconds); the assertions
# stay the same, only the patience grows.
expect.set_options(timeout=15_000)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that drives Chromium as ``browser`` (``-m "not browser"`` leaves them)."""
    del config
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the whole session."""
    reason = missing_chromium()
    if reason is not None:
        if chromium_required():
            pytest.fail(f"{reason}; CI=true or KOMBIFY_TESTS_NEED_DOCKER=1 needs it", pytrace=False)
        pytest.skip(reason)
    async with launched_chromium() as launched:
        yield launched


@pytest.fixture
def page_requests() -> list[str]:
    """The URL of every request the test's ``page`` (and its context) made, in order."""
    return []


@pytest.fixture
async def page(browser: Browser, page_requests: list[str]) -> AsyncIterator[Page]:
    """A page in a fresh context (desktop size, nothing shared with other tests)."""
    async with fresh_context(browser, page_requests) as context:
        yield await context.new_page()


@pytest.fixture(scope="session")
def kombify_api(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """``kombify api`` as its own process on a free loopback port, on the session's Temporal."""
    env = {"KOMBIFY_TEMPORAL_ADDRESS": temporal_address}
    with running_api(tmp_path_factory.mktemp("browser-api"), env=env) as api:
        yield api


@pytest.fixture(scope="session")
def built() -> None:
    """The dashboard's build exists (scripts/build-dashboard.sh); else skip, or fail under CI."""
    index = REPO / "dashboard" / "build" / "index.html"
    if not index.is_file():
        reason = f"the dashboard is not built ({index} missing: scripts/build-dashboard.sh)"
        if chromium_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
