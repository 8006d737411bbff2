"""What a page of the dashboard costs a browser: JavaScript shipped, first load, Lighthouse.

What is measured, in one run, for one page (``--page``: default ``/docs``, which needs no
dashboard build; ``--page / --selector h1`` for the dashboard's landing page; the stacks page
needs a signed-in browser, not done yet):

JavaScript shipped
    The page is loaded in Debian's Chromium (a fresh context: cold cache) until ``--selector``
    is visible and the network is idle; every script response's body (over HTTP: not blob: or
    data: scripts the page makes from them) is gzip-compressed here (level 6, zlib's and most
    servers' default) and the sizes are summed. Budget (issue 14, stacks page): under 150 KB
    gzipped (1 KB = 1024 bytes).
first load
    Time from ``page.goto`` until ``--selector`` is visible, each round in a new context (a
    cold browser cache; the server is warmed by one round first). Also printed ("in DOM"): the
    page's own ``performance.now()`` at the first animation frame where the selector matched
    (since navigation start); it can be well before "visible" when the page's main thread is
    busy rendering (Swagger UI: 1.3 s against 3.2 s; the page's clock read just after the
    wait says 3.2 s too, so the gap is the page's, not the harness's). The floor, in the same
    rounds, is the same measure for ``/healthz`` (a tiny JSON answer, to ``body``): what the
    browser, the harness and the server cost for any page. Budget (stacks page): under 1 s.
Lighthouse
    npm ``lighthouse`` 12.2.3 (``tools/lighthouse``, installed with ``npm ci`` on first use;
    12.2.3 because later releases want Node 22) against the system Chromium (CHROME_PATH),
    with its mobile defaults and with ``--preset=desktop``: performance and accessibility
    scores. Budget (landing and stacks pages): at least 90 each.

The server is ``kombify api`` started here on a free loopback port with a throwaway
KOMBIFY_HOME (no Temporal needed for ``/docs``), or a running kombify given by ``--url``
(``make demo`` starts one with Temporal and a worker, which the stacks page will need).

Usage: .venv/bin/python benchmarks/dashboard.py [--page /docs] [--selector '.opblock']
       [--rounds 5] [--url http://127.0.0.1:8420] [--lighthouse mobile,desktop | --lighthouse none]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _setup import REPO, bench_home, tests_support

LIGHTHOUSE_DIR = REPO / "tools" / "lighthouse"
LIGHTHOUSE = LIGHTHOUSE_DIR / "node_modules" / ".bin" / "lighthouse"
JS_BUDGET_KB = 150
LOAD_BUDGET_S = 1.0
SCORE_BUDGET = 90


@dataclass(frozen=True)
class Script:
    """One JavaScript response of the page: its URL, size as sent, and gzipped here."""

    url: str
    raw: int
    gzipped: int


@dataclass(frozen=True)
class Load:
    """One cold load: wall-clock seconds to the selector, and the page's own performance.now()."""

    wall: float
    page: float


@contextmanager
def server(url: str | None, keep: bool) -> Iterator[str]:
    """The base URL of a kombify to measure: the one given, or ``kombify api`` started here."""
    if url:
        yield url.rstrip("/")
        return
    tests_support()
    from tests.support.api_process import running_api

    with bench_home("kombify-bench-dashboard-", keep=keep) as home:
        with running_api(home / "api") as api:
            yield api.url


async def measure_browser(
    base: str, page_path: str, selector: str, rounds: int
) -> tuple[list[Script], list[Load], list[Load]]:
    """Scripts of one load, then ``rounds`` cold loads of the page and of the floor."""
    tests_support()
    from playwright.async_api import Browser, Response

    from tests.support.browser import DESKTOP, launched_chromium

    async def load(browser: Browser, url: str, wanted: str) -> tuple[Load, list[Script]]:
        context = await browser.new_context(viewport=DESKTOP)
        responses: list[Response] = []
        context.on("response", lambda response: responses.append(response))
        try:
            page = await context.new_page()
            started = time.perf_counter()
            await page.goto(url, wait_until="commit")
            in_page = asyncio.ensure_future(
                page.wait_for_function(
                    "s => document.querySelector(s) !== null && performance.now()",
                    arg=wanted,
                    polling="raf",
                )
            )
            await page.locator(wanted).first.wait_for(state="visible")
            wall = time.perf_counter() - started
            at = float(await (await in_page).json_value()) / 1000
            await page.wait_for_load_state("networkidle")
            scripts = []
            for response in responses:
                kind = response.request.resource_type
                ctype = response.headers.get("content-type", "")
                # blob: and data: scripts are made in the page from what it already loaded.
                shipped = response.url.startswith(("http:", "https:"))
                if shipped and (kind == "script" or "javascript" in ctype):
                    body = await response.body()
                    scripts.append(Script(response.url, len(body), len(gzip.compress(body, 6))))
            return Load(wall, at), scripts
        finally:
            await context.close()

    page_url, floor_url = base + page_path, base + "/healthz"
    pages: list[Load] = []
    floors: list[Load] = []
    async with launched_chromium() as browser:
        _, scripts = await load(browser, page_url, selector)  # warm-up: the server's caches
        await load(browser, floor_url, "body")
        for index in range(rounds):
            order = [(page_url, selector, pages), (floor_url, "body", floors)]
            for url, wanted, into in order if index % 2 == 0 else reversed(order):
                into.append((await load(browser, url, wanted))[0])
    return scripts, pages, floors


def ensure_lighthouse() -> None:
    """``npm ci`` in tools/lighthouse when its node_modules is missing."""
    if LIGHTHOUSE.exists():
        return
    print("==> installing lighthouse (npm ci in tools/lighthouse)", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LIGHTHOUSE_DIR, check=True)


def lighthouse(url: str, form_factor: str) -> dict[str, float]:
    """Lighthouse scores (0-100) and a few metrics of ``url`` in the system Chromium."""
    tests_support()
    from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, NO_EGRESS_FLAGS

    with tempfile.TemporaryDirectory(prefix="kombify-lighthouse-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            str(LIGHTHOUSE),
            url,
            "--output=json",
            f"--output-path={report}",
            "--only-categories=performance,accessibility",
            "--quiet",
            f"--chrome-flags={' '.join([*CHROMIUM_FLAGS, *NO_EGRESS_FLAGS])}",
        ]
        if form_factor == "desktop":
            command.append("--preset=desktop")
        env = {**os.environ, "CHROME_PATH": str(CHROMIUM), "TMPDIR": tmp}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not report.exists():
            raise RuntimeError(f"lighthouse exited {done.returncode}: {done.stderr[-2000:]}")
        data = json.loads(report.read_text())
    audits = data["audits"]
    return {
        "performance": data["categories"]["performance"]["score"] * 100,
        "accessibility": data["categories"]["accessibility"]["score"] * 100,
        "fcp": audits["first-contentful-paint"]["numericValue"] / 1000,
        "lcp": audits["largest-contentful-paint"]["numericValue"] / 1000,
        "tbt": audits["total-blocking-time"]["numericValue"] / 1000,
        "bytes": audits["total-byte-weight"]["numericValue"],
    }


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_scripts(scripts: list[Script]) -> None:
    """Each script and the total, raw and gzipped."""
    print(f"JavaScript the page loads ({len(scripts)} responses):")
    for script in scripts:
        raw, packed = script.raw / 1024, script.gzipped / 1024
        print(f"  {raw:9.1f} KB raw {packed:8.1f} KB gzip  {script.url}")
    total = sum(s.gzipped for s in scripts) / 1024
    print(
        f"  total {sum(s.raw for s in scripts) / 1024:.1f} KB raw, {total:.1f} KB gzipped "
        f"(budget < {JS_BUDGET_KB} KB: {_met(total < JS_BUDGET_KB)})"
    )


def report_loads(pages: list[Load], floors: list[Load], rounds: int) -> None:
    """Median, min and max of the page and the floor, and their ratio."""
    busy = "/".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nfirst load, cold cache ({rounds} rounds, {os.cpu_count()} CPUs, "
        f"load average {busy}; seconds)"
    )
    print(f"  {'':22} {'median':>7} {'min':>7} {'max':>7} {'in DOM':>8}")
    for name, loads in (("page", pages), ("floor (/healthz)", floors)):
        walls = [load.wall for load in loads]
        in_page = statistics.median(load.page for load in loads)
        print(
            f"  {name:22} {statistics.median(walls):7.3f} {min(walls):7.3f} {max(walls):7.3f}"
            f" {in_page:8.3f}"
        )
    median = statistics.median(load.wall for load in pages)
    ratio = median / statistics.median(load.wall for load in floors)
    verdict = _met(median < LOAD_BUDGET_S)
    print(f"  ratio page / floor: {ratio:.2f}x; budget < {LOAD_BUDGET_S:.0f} s: {verdict}")


def main() -> None:
    """Parse the arguments, start or reach a kombify, measure, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--page", default="/docs", help="path of the page to measure")
    parser.add_argument(
        "--selector", default=".opblock", help="CSS selector whose appearance ends a first load"
    )
    parser.add_argument("--rounds", type=int, default=5, help="cold loads of page and floor")
    parser.add_argument("--url", help="a running kombify to measure (default: start kombify api)")
    parser.add_argument(
        "--lighthouse",
        default="mobile,desktop",
        help="Lighthouse form factors, comma-separated, or 'none'",
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    args = parser.parse_args()
    factors = [] if args.lighthouse == "none" else args.lighthouse.split(",")
    if any(factor not in ("mobile", "desktop") for factor in factors):
        parser.error("--lighthouse takes mobile, desktop (comma-separated) or none")
    if factors:
        ensure_lighthouse()
    with server(args.url, args.keep_home) as base:
        url = base + args.page
        print(f"page {url}, selector {args.selector!r}\n", flush=True)
        scripts, pages, floors = asyncio.run(
            measure_browser(base, args.page, args.selector, args.rounds)
        )
        report_scripts(scripts)
        report_loads(pages, floors, args.rounds)
        if factors:
            print("\nLighthouse 12.2.3 (scores 0-100; FCP, LCP, TBT in s)")
        for factor in factors:
            got = lighthouse(url, factor)
            ok = got["performance"] >= SCORE_BUDGET and got["accessibility"] >= SCORE_BUDGET
            print(
                f"  {factor:8} performance {got['performance']:3.0f}  accessibility "
                f"{got['accessibility']:3.0f}  FCP {got['fcp']:.2f}  LCP {got['lcp']:.2f}  "
                f"TBT {got['tbt']:.2f}  bytes {got['bytes'] / 1024:.0f} KB  "
                f"(budget >= {SCORE_BUDGET} each: {_met(ok)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
