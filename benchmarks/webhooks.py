"""How fast the Stripe webhook answers, and how soon a paid checkout's plan is active.

What is measured, in one run, per database (SQLite; PostgreSQL too with ``--postgres``), on a
real API served by uvicorn on 127.0.0.1 with billing on (the tests' Stripe settings), a real
Temporal dev server and a ``kombify worker`` process on its own task queue:

fresh event
    ``POST /v1/billing/webhooks`` with a ``customer.subscription.updated`` event signed with
    Stripe's scheme, a new event id each time, for one of the seeded organisations (taken in
    turn): signature check, a ``billing_event`` ledger row and the signal-with-start of the
    organisation's ``ProvisionSubscription`` workflow before the answer. The warm-up round
    starts each organisation's workflow, so measured rounds signal running workflows (the
    common case: an organisation's events after its first).
duplicate event
    The same route with an event id already in the ledger, signed anew (Stripe's redelivery):
    signature check and a ledger hit, no signal.
refused signature
    The same route, signed with another secret: the signature check only (a 400 problem). A
    second reference.
baseline: GET /healthz
    On the same server, the same client, the same number in flight.
checkout end to end
    A signed ``checkout.session.completed`` for a fresh organisation, one at a time, until
    its ``org_billing`` row reads plan ``pro``, status ``active`` (written by the workflow's
    activity; the database is polled every 5 ms). Median over ``--orgs`` organisations.

The client is httpx with ``--concurrency`` requests in flight; every event is built and
signed before its round's clock starts. Rounds alternate the order of the ways after one
warm-up round each. Requests per second are the median over rounds; latency percentiles are
over every request of a way. Each answer is checked (status and body) and the run stops at
the first unexpected one. Printed: a table with each way's median latency and requests per
second as a ratio of the baseline's, and the load average before and after.

Usage: .venv/bin/python benchmarks/webhooks.py [--rounds 2] [--requests 60]
[--concurrency 4] [--orgs 5] [--postgres] [--keep-home]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _setup import REPO, bench_home, tests_support, wait_for_worker

tests_support()

from tests.support.billing import (  # noqa: E402
    BILLING_SETTINGS,
    Org,
    billing_row,
    checkout_completed,
    seed_org,
    signed,
    subscription_event,
)

RATE_LIMITS = "auth=100000000/60,write=100000000/60,read=100000000/60"
"""Budgets that never trip: every event comes from one address, as Stripe's do."""
PATH = "/v1/billing/webhooks"
SEEDED = 20
"""Organisations the fresh events take in turn."""

Request = tuple[str, bytes | None, dict[str, str]]
"""(method and path, body, headers) of one prepared request."""


def serve(port: int) -> None:
    """Run the API in this process (the ``--serve`` mode of this script)."""
    import uvicorn

    from kombify.api.app import create_app
    from kombify.settings import get_settings

    uvicorn.run(
        create_app(get_settings()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@dataclass
class Way:
    """One kind of request: how to prepare a round of it and what its answer must be."""

    name: str
    prepare: Callable[[int], list[Request]]
    status: int
    body: dict[str, Any] | None
    rps: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used during the measured rounds, per process (see ``_cpu``)."""


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used so far; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children() -> dict[str, int]:
    """This process's children by role: the API, the worker and the Temporal dev server."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != os.getpid():
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if "--serve" in words:
            found["api"] = int(entry.name)
        elif words[-2:] == ["kombify", "worker"]:
            found["worker"] = int(entry.name)
        elif "start-dev" in words:
            found["temporal"] = int(entry.name)
    return found


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each child and of this process (the client)."""
    used = {name: _cpu_of(pid) for name, pid in pids.items()}
    times = os.times()
    used["client"] = times.user + times.system
    return used


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _round(
    client: httpx.AsyncClient, base: str, way: Way, requests: list[Request], concurrency: int
) -> tuple[float, list[float]]:
    """The prepared requests with ``concurrency`` in flight: (requests per second, ms each)."""
    latencies: list[float] = []
    queue = iter(requests)

    async def worker() -> None:
        for target, content, headers in queue:
            method, path = target.split(" ", 1)
            started = time.perf_counter()
            response = await client.request(method, base + path, content=content, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            ok = response.status_code == way.status
            if ok and way.body is not None:
                ok = response.json() == way.body
            if not ok:
                raise SystemExit(
                    f"{way.name}: {response.status_code} {response.text[:300]} "
                    f"(expected {way.status} {way.body})"
                )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(requests) / (time.perf_counter() - started), latencies


class Events:
    """The signed requests of each way; remembers the fresh ids for the redeliveries."""

    def __init__(self, orgs: list[Org]) -> None:
        self.orgs = orgs
        self.turn = 0
        self.sent: list[dict[str, Any]] = []

    @staticmethod
    def _post(body: dict[str, Any], **sign: Any) -> Request:
        payload, headers = signed(body, **sign)
        return f"POST {PATH}", payload, headers

    def fresh(self, count: int) -> list[Request]:
        now = int(time.time())
        out = []
        for _ in range(count):
            org = self.orgs[self.turn % len(self.orgs)]
            self.turn += 1
            body = subscription_event(
                org, "customer.subscription.updated", created=now, period_end=now + 30 * 86400
            )
            self.sent.append(body)
            out.append(self._post(body))
        return out

    def duplicate(self, count: int) -> list[Request]:
        return [self._post(self.sent[i % len(self.sent)]) for i in range(count)]

    def refused(self, count: int) -> list[Request]:
        now = int(time.time())
        org = self.orgs[0]
        return [
            self._post(
                subscription_event(
                    org, "customer.subscription.updated", created=now, period_end=now + 86400
                ),
                secret="whsec_someone_else",
            )
            for _ in range(count)
        ]


def _healthz(count: int) -> list[Request]:
    return [("GET /healthz", None, {})] * count


async def _measure(args: argparse.Namespace, base: str, ways: list[Way]) -> None:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        for way in ways:  # warm-up: imports, connections, each organisation's workflow
            await _round(client, base, way, way.prepare(args.requests // 2), args.concurrency)
        pids = _children()
        for index in range(1, args.rounds + 1):
            order = ways if index % 2 else list(reversed(ways))
            for way in order:
                prepared = way.prepare(args.requests)
                before = _cpu(pids)
                rate, seen = await _round(client, base, way, prepared, args.concurrency)
                await asyncio.sleep(0.5)  # the worker's part of the last events, too
                after = _cpu(pids)
                for name, used in after.items():
                    way.cpu[name] = way.cpu.get(name, 0.0) + used - before[name]
                way.rps.append(rate)
                way.latencies.extend(seen)
                print(f"  round {index} {way.name:34} {rate:6.0f} req/s", flush=True)


async def _until_active(url: str, org: Org, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await asyncio.to_thread(billing_row, url, org.id)
        if row is not None and (row.plan, row.status) == ("pro", "active"):
            return
        await asyncio.sleep(0.005)
    raise SystemExit(f"organisation {org.slug}: plan pro not active after {timeout:.0f} s")


async def _end_to_end(base: str, url: str, orgs: list[Org]) -> tuple[list[float], list[float]]:
    """Per organisation: (ms until the answer, ms until the plan is active)."""
    answers: list[float] = []
    active: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for org in orgs:
            payload, headers = signed(checkout_completed(org, created=int(time.time())))
            started = time.perf_counter()
            response = await client.post(base + PATH, content=payload, headers=headers)
            answers.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or response.json() != {"received": True}:
                raise SystemExit(f"checkout: {response.status_code} {response.text[:300]}")
            await _until_active(url, org)
            active.append((time.perf_counter() - started) * 1000)
    return answers, active


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the API at {base} exited with {process.returncode}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the API at {base} did not answer within 90 s")


@contextmanager
def _processes(home: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A ``kombify worker`` and this script's ``--serve`` API; both stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    logs = [(home / name).open("ab") for name in ("worker.log", "api.log")]
    try:
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "kombify", "worker"],
                env=env,
                cwd=REPO,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
        )
        api = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        started.append(api)
        yield api
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _one_database(
    args: argparse.Namespace, name: str, url: str, home: Path, temporal: str
) -> list[tuple[str, str, str, str, str, str]]:
    """Everything measured on one database: the table's rows."""
    from temporalio.client import Client

    from kombify.db.migrate import upgrade
    from tests.support.ports import free_port

    home.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    queue = f"bench-webhooks-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "KOMBIFY_HOME": str(home),
        "KOMBIFY_DATABASE_URL": url,
        "KOMBIFY_TEMPORAL_ADDRESS": temporal,
        "KOMBIFY_TASK_QUEUE": queue,
        "KOMBIFY_RATE_LIMITS": RATE_LIMITS,
        "KOMBIFY_STRIPE_API_KEY": BILLING_SETTINGS["stripe_api_key"],
        "KOMBIFY_STRIPE_WEBHOOK_SECRET": BILLING_SETTINGS["stripe_webhook_secret"],
        "KOMBIFY_STRIPE_PRICE_PRO": BILLING_SETTINGS["stripe_price_pro"],
        "KOMBIFY_STRIPE_PRICE_TEAM": BILLING_SETTINGS["stripe_price_team"],
    }
    events = Events([seed_org(url) for _ in range(SEEDED)])
    checkout_orgs = [seed_org(url) for _ in range(args.orgs)]
    baseline = Way("baseline: GET /healthz", _healthz, 200, None)
    ways = [
        baseline,
        Way("refused signature (verify only)", events.refused, 400, None),
        Way("fresh event (signal-with-start)", events.fresh, 200, {"received": True}),
        Way(
            "duplicate event (ledger hit)",
            events.duplicate,
            200,
            {"received": True, "duplicate": True},
        ),
    ]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"\n=== {name}: load average {_load()} before", flush=True)
    with _processes(home, env, port) as api:

        async def run() -> tuple[list[float], list[float]]:
            client = await Client.connect(temporal)
            await wait_for_worker(client, queue, timeout=120)
            await _wait_ready(base, api)
            await _measure(args, base, ways)
            return await _end_to_end(base, url, checkout_orgs)

        answers, active = asyncio.run(run())
    after = _load()
    reference = statistics.median(baseline.latencies)
    reference_rps = statistics.median(baseline.rps)
    rows = []
    for way in ways:
        median = statistics.median(way.latencies)
        rows.append(
            (
                way.name,
                f"{statistics.median(way.rps):.0f}",
                f"{median:.1f}",
                f"{_pct(way.latencies, 95):.1f}",
                f"{median / reference:.2f}",
                f"{statistics.median(way.rps) / reference_rps:.2f}",
            )
        )
    for label, values in (
        (f"checkout: answer ({len(answers)} orgs, 1 at a time)", answers),
        (f"checkout: until plan active ({len(active)} orgs)", active),
    ):
        median = statistics.median(values)
        rows.append(
            (
                label,
                "-",
                f"{median:.1f}",
                f"{_pct(values, 95):.1f}",
                f"{median / reference:.2f}",
                "-",
            )
        )
    print(f"=== {name}: load average {after} after", flush=True)
    _table(args, name, rows, f"load average {after} at the end")
    print("CPU ms per request during the measured rounds (+ 0.5 s after each), by process:")
    for way in ways:
        count = len(way.latencies)
        parts = "  ".join(f"{k} {v * 1000 / count:5.1f}" for k, v in sorted(way.cpu.items()))
        print(f"  {way.name:40} {parts}")
    return rows


def _table(
    args: argparse.Namespace, name: str, rows: list[tuple[str, str, str, str, str, str]], note: str
) -> None:
    print(
        f"\n{name} ({os.cpu_count()} CPUs; {args.rounds} rounds x {args.requests} requests, "
        f"{args.concurrency} in flight; req/s median over rounds, ms over all requests; {note})"
    )
    print(f"{'way':42} {'req/s':>6} {'p50 ms':>8} {'p95 ms':>8} {'p50 ×base':>9} {'rps ×base':>9}")
    for row in rows:
        print(f"{row[0]:42} {row[1]:>6} {row[2]:>8} {row[3]:>8} {row[4]:>9} {row[5]:>9}")


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    """Parse the arguments; serve the API, or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per way")
    parser.add_argument("--requests", type=int, default=60, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--orgs", type=int, default=5, help="checkouts timed end to end")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    from tests.support.postgres import running_postgres
    from tests.support.temporal import running_temporal

    print(f"load average {_load()} at the start ({os.cpu_count()} CPUs)", flush=True)
    with (
        bench_home("kombify-bench-webhooks-", keep=args.keep_home) as home,
        running_temporal(_made(home / "temporal")) as temporal,
    ):
        sqlite = home / "sqlite"
        _one_database(args, "sqlite", f"sqlite:///{sqlite / 'kombify.db'}", sqlite, temporal)
        if args.postgres:
            pg_base = Path(tempfile.mkdtemp(prefix="kombify-bench-pg-", dir="/tmp"))
            try:
                with running_postgres(pg_base) as pg:
                    _one_database(args, "postgresql", pg, home / "postgresql", temporal)
            finally:
                shutil.rmtree(pg_base, ignore_errors=True)


if __name__ == "__main__":
    main()
