"""The dashboard's public landing page at /, in Chromium: the first page on the harness.

It needs the dashboard built (scripts/bootstrap.sh runs scripts/build-dashboard.sh when
Node.js is there). Without a build these tests skip on a developer's machine and fail under
CI=true or KOMBIFY_TESTS_NEED_DOCKER=1, as a missing Chromium does.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.support.api_process import ApiProcess
from tests.support.browser import (
    REPO,
    WIDTHS,
    as_phone,
    axe_check,
    chromium_required,
    is_loopback,
    png_size,
    screenshot,
)

BUILD = REPO / "dashboard" / "build" / "index.html"


@pytest.fixture
def landing(kombify_api: ApiProcess) -> str:
    """The landing page's URL, once the dashboard is built."""
    if not BUILD.is_file():
        reason = f"the dashboard is not built ({BUILD} missing: scripts/build-dashboard.sh)"
        if chromium_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return f"{kombify_api.url}/"


async def open_landing(page: Page, url: str) -> None:
    await page.goto(url)
    await page.get_by_role("heading", level=1).wait_for()


async def test_the_landing_page_renders_from_loopback_only(
    page: Page, page_requests: list[str], landing: str
) -> None:
    await open_landing(page, landing)
    assert await page.get_by_role("main").count() == 1
    assert any(url.endswith(".js") for url in page_requests)  # the app's own scripts
    await page.wait_for_load_state("networkidle")
    assert [url for url in page_requests if not is_loopback(url)] == []


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_the_landing_page_passes_axe(page: Page, landing: str, width: str) -> None:
    if width == "phone":
        await as_phone(page)
    await open_landing(page, landing)
    await axe_check(page)


async def test_landing_screenshots(page: Page, landing: str) -> None:
    await open_landing(page, landing)
    for path, size in zip(await screenshot(page, "landing"), WIDTHS.values(), strict=True):
        assert png_size(path.read_bytes()) == (size["width"], size["height"])
