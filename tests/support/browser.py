"""Debian's Chromium driven by Playwright (async API): launch, viewports, screenshots, axe.

The browser is never downloaded (no ``playwright install``): Playwright starts the system
Chromium by its path, with the flags that keep it off the network here. Playwright's
``launch`` gives every browser a fresh, empty user-data dir of its own (a temp dir it removes
on close), and every test gets a fresh context (no cookies, storage or cache of another test).
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# What works on these machines (and CI's): without the background-networking flags Chromium
# keeps trying Google's hosts through a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Everything but loopback goes to a proxy that is not there, so nothing a page asks for leaves
# the machine, IP literals included (Chromium never sends loopback through a proxy). The
# tests' contexts also refuse such requests and record them; Lighthouse has only this.
NO_EGRESS_FLAGS = ("--proxy-server=127.0.0.1:9",)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Schemes that never leave the browser.
LOCAL_SCHEMES = {"data", "blob", "about"}
# axe impacts that fail a test (axe knows minor, moderate, serious, critical).
FAILING_IMPACTS = ("serious", "critical")


def chromium_required() -> bool:
    """Whether a missing Chromium fails the run instead of skipping the browser tests.

    CI (``CI=true``) and ``scripts/test.sh`` (``KOMBIFY_TESTS_NEED_DOCKER=1``) install it
    through ``scripts/ensure-browser.sh``, so a run there must not pass by skipping.
    """
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("KOMBIFY_TESTS_NEED_DOCKER") == "1"
    )


def missing_chromium() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium is there."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    return f"no Chromium at {CHROMIUM} (scripts/ensure-browser.sh or apt-get install chromium)"


@asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    """The system Chromium, headless, with a fresh user-data dir; closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_FLAGS, *NO_EGRESS_FLAGS],
        )
        try:
            yield browser
        finally:
            await browser.close()


def is_loopback(url: str) -> bool:
    """Whether a request to ``url`` stays on this machine."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or (parts.hostname or "") in LOOPBACK_HOSTS


async def _refuse_off_loopback(route: Route) -> None:
    await route.abort("blockedbyclient")


@asynccontextmanager
async def fresh_context(
    browser: Browser, requests: list[str] | None = None, **options: Any
) -> AsyncIterator[BrowserContext]:
    """A new context at desktop size that refuses requests leaving loopback.

    Args:
        browser: The running browser.
        requests: When given, the URL of every request any page of the context makes is
            appended to it (refused ones too), for tests that assert where a page went.
        **options: More ``Browser.new_context`` options (``viewport`` overrides desktop).
    """
    context = await browser.new_context(**{"viewport": DESKTOP, **options})
    if requests is not None:
        context.on("request", lambda request: requests.append(request.url))
    # A safety net, not the check: the test asserts on ``requests``, which records these too.
    await context.route(lambda url: not is_loopback(url), _refuse_off_loopback)
    try:
        yield context
    finally:
        await context.close()


async def as_desktop(page: Page) -> None:
    """Resize ``page`` to the desktop width (1280x800)."""
    await page.set_viewport_size(DESKTOP)


async def as_phone(page: Page) -> None:
    """Resize ``page`` to a phone's viewport (390x844, an iPhone 12-15)."""
    await page.set_viewport_size(PHONE)


async def screenshot(page: Page, name: str) -> list[Path]:
    """PNGs of the visible page at desktop and phone width, under test-artifacts/screenshots/.

    Files are ``<name>-desktop.png`` and ``<name>-phone.png``; the page is left at the size it
    had before.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    try:
        for label, size in WIDTHS.items():
            await page.set_viewport_size(size)
            path = SCREENSHOTS / f"{name}-{label}.png"
            await page.screenshot(path=str(path))
            paths.append(path)
    finally:
        if before is not None:
            await page.set_viewport_size(before)
    return paths


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG; ValueError when ``data`` is not one."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG (no signature or no IHDR chunk first)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@dataclass(frozen=True)
class Violation:
    """One axe rule broken on a page, with the elements that break it."""

    id: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]

    def line(self) -> str:
        """One readable line for a failure message."""
        return f"{self.id} ({self.impact}): {self.help}; at {', '.join(self.targets)}"


async def axe_violations(page: Page) -> list[Violation]:
    """Every axe-core violation on ``page`` as it is now (axe-core bundled, runs offline)."""
    results = await Axe().run(page)
    return [
        Violation(
            id=raw["id"],
            impact=raw.get("impact") or "unknown",
            help=raw["help"],
            help_url=raw.get("helpUrl", ""),
            targets=tuple(_target(node["target"]) for node in raw["nodes"]),
        )
        for raw in results.response["violations"]
    ]


def _target(selector: Iterable[Any]) -> str:
    # axe gives a list of selectors (one per nested frame or shadow root), outermost first.
    return " >> ".join(str(part) for part in selector)


async def axe_check(page: Page, *, failing: Iterable[str] = FAILING_IMPACTS) -> list[Violation]:
    """Fail the test if axe finds a serious or critical violation on ``page``.

    Returns the violations of lesser impact, for a test that wants to report them.
    """
    found = await axe_violations(page)
    impacts = set(failing)
    bad = [v for v in found if v.impact in impacts]
    if bad:
        lines = "\n".join(f"  {v.line()}" for v in bad)
        pytest.fail(
            f"axe found {len(bad)} serious or critical violation(s) on {page.url}:\n{lines}",
            pytrace=False,
        )
    return found
