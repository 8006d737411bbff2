"""What the gateway middleware costs: an authenticated ``GET /v1/stacks``, with it and without.

What is measured, in one run (requests per second, and latency percentiles in ms):

gateway on
    ``create_app(settings)``: the caller is a real session (a user made with
    ``kombify.accounts.users.create`` and ``sessions.start`` straight in the database, its
    ``kfs_`` token sent as Bearer), so each request looks the session up; rate limits on (a
    read budget of 100 million a minute, so it never trips, but every request is counted and
    gets its RateLimit headers), security headers, CORS (one origin listed; the requests send
    none), the JSON request log written to a file in KOMBIFY_HOME.
gateway off
    ``create_app(settings, gateway=False)``: none of that middleware, and the local admin
    token as the caller (a constant-time compare and one flag lookup instead of the session).
admin, gateway on
    The gateway-on server called with the admin token: the middleware without the session
    lookup, to tell the two costs apart (printed, not part of the goal).

Each side is its own ``uvicorn`` process (one worker, ``127.0.0.1``, a free port) on the same
SQLite database, which holds one stack. The client is httpx with a fixed number of requests in
flight; rounds alternate between the sides so both see the same machine, after one warm-up
round each. Requests per second are the median over rounds; the percentiles are over every
request of a side. The overhead is ``1 - rps(on) / rps(off)``.

Goal (issue 12): the middleware costs under 20 %.

Usage: .venv/bin/python benchmarks/api.py [--rounds 7] [--requests 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _setup import REPO, bench_home, tests_support

RATE_LIMITS = "read=100000000/60,write=100000000/60"
CORS_ORIGIN = "https://portal.example.org"


def serve(port: int, gateway: bool) -> None:
    """Run one side's API in this process (the ``--serve`` mode of this script)."""
    import logging

    import uvicorn

    from kombify.api.app import create_app
    from kombify.settings import get_settings

    settings = get_settings()
    if gateway:
        handler = logging.FileHandler(settings.home / "requests.log")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("kombify.requests")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    uvicorn.run(
        create_app(settings, gateway=gateway),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


def _prepare(home: Path) -> tuple[str, str]:
    """Migrate the database, add one stack and a signed-in user: (session token, admin token)."""
    from sqlmodel import Session

    from kombify.accounts import sessions, users
    from kombify.admin_token import admin_token
    from kombify.api.principal import timeouts
    from kombify.db.engine import get_engine
    from kombify.db.migrate import upgrade
    from kombify.db.stacks import ensure_local_organisation
    from kombify.settings import get_settings

    settings = get_settings()
    upgrade(settings.resolved_database_url)
    with Session(get_engine(settings.resolved_database_url)) as db:
        org = ensure_local_organisation(db)
        user = users.create(db, email="bench@example.org", organisation=org, role="member")
        token = sessions.start(db, user_id=user.id, timeouts=timeouts(settings)).token
    admin = admin_token(settings, create=True)
    assert admin is not None
    del home
    return token, admin


def _start(port: int, gateway: bool, env: dict[str, str]) -> subprocess.Popen[bytes]:
    mode = "on" if gateway else "off"
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port)],
        env=env,
        cwd=REPO,
    )


async def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the API at {url} exited with {process.returncode}")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the API at {url} did not answer within 60 s")


async def _round(
    client: httpx.AsyncClient, url: str, token: str, requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """``requests`` GETs with ``concurrency`` in flight: (requests per second, latencies ms)."""
    latencies: list[float] = []
    left = requests
    headers = {"Authorization": f"Bearer {token}"}

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            response = await client.get(f"{url}/v1/stacks", headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started), latencies


async def _add_stack(url: str, admin: str) -> None:
    """One stack in the listing (the example kombination of the tests)."""
    example = REPO / "tests" / "data" / "spec" / "examples" / "sim-single.yaml"
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/v1/stacks",
            json={"source": example.read_text()},
            headers={"Authorization": f"Bearer {admin}"},
        )
    if response.status_code != 201:
        raise RuntimeError(f"could not add the stack: {response.status_code} {response.text}")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _measure(args: argparse.Namespace, sides: dict[str, tuple[str, str]]) -> None:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    rps: dict[str, list[float]] = {name: [] for name in sides}
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for url, token in sides.values():  # warm-up: imports, caches, connections
            await _round(client, url, token, args.requests // 2, args.concurrency)
        for index in range(1, args.rounds + 1):
            order = list(sides) if index % 2 else list(reversed(sides))  # no side always first
            for name in order:
                url, token = sides[name]
                rate, seen = await _round(client, url, token, args.requests, args.concurrency)
                rps[name].append(rate)
                latencies[name].extend(seen)
                print(f"round {index} {name:12} {rate:7.0f} req/s", flush=True)
    print(
        f"\nsummary ({os.cpu_count()} CPUs; {args.rounds} rounds x {args.requests} requests, "
        f"{args.concurrency} in flight; req/s median over rounds, latency over all requests)"
    )
    print(f"{'':12} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for name in sides:
        print(
            f"{name:12} {statistics.median(rps[name]):7.0f} {_pct(latencies[name], 50):7.2f} "
            f"{_pct(latencies[name], 99):7.2f}"
        )
    on, off = statistics.median(rps["gateway on"]), statistics.median(rps["gateway off"])
    overhead = (1 - on / off) * 100
    verdict = "met" if overhead < 20 else "NOT met"
    print(f"overhead: {overhead:.1f} % fewer requests per second (goal < 20 %: {verdict})")
    p50 = _pct(latencies["gateway on"], 50) - _pct(latencies["gateway off"], 50)
    print(f"p50 latency added: {p50:+.2f} ms")
    alone = (1 - statistics.median(rps["admin, on"]) / off) * 100
    print(f"of which the middleware alone (admin token, gateway on vs off): {alone:.1f} %")


def main() -> None:
    """Parse the arguments; serve one side, or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per side")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    parser.add_argument("--serve", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.serve == "on")
        return
    tests_support()
    from tests.support.ports import free_port

    with bench_home("kombify-bench-api-", keep=args.keep_home) as home:
        token, admin = _prepare(home)
        env = {
            **os.environ,
            "KOMBIFY_RATE_LIMITS": RATE_LIMITS,
            "KOMBIFY_CORS_ORIGINS": CORS_ORIGIN,
            # Temporal is not asked by GET /v1/stacks; nothing listens here.
            "KOMBIFY_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        }
        ports = {"gateway on": free_port(), "gateway off": free_port()}
        processes = {name: _start(port, name == "gateway on", env) for name, port in ports.items()}
        try:
            sides = {
                "gateway on": (f"http://127.0.0.1:{ports['gateway on']}", token),
                "gateway off": (f"http://127.0.0.1:{ports['gateway off']}", admin),
                "admin, on": (f"http://127.0.0.1:{ports['gateway on']}", admin),
            }

            async def run() -> None:
                for name, port in ports.items():
                    await _wait_ready(f"http://127.0.0.1:{port}", processes[name])
                await _add_stack(*sides["gateway off"])
                await _measure(args, sides)

            asyncio.run(run())
            log = home / "requests.log"
            lines = log.read_text().count("\n") if log.exists() else 0
            print(f"request log lines written by the gateway side: {lines}")
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


if __name__ == "__main__":
    main()
