"""How soon a stored deployment line reaches a follower: SSE on SQLite and PostgreSQL, and polling.

What is measured, in one run: a writer thread stores lines one at a time through the worker's
own path (``DeployActivities.log`` then a flush: one committed batch, and on PostgreSQL one
``NOTIFY``), a random 50-150 ms apart; each line's text is the moment it was handed to the
writer. A follower on another connection records when each line arrives; the latency is
arrival minus that moment (one process, one monotonic clock).

sse sqlite / sse postgresql
    ``GET /v1/deployments/{id}/logs`` with ``Accept: text/event-stream`` (``kombify logs -f``)
    against an API served by uvicorn on 127.0.0.1. SQLite readers poll the database every
    0.2 s; PostgreSQL readers wake on ``LISTEN/NOTIFY``.
baseline: JSON polling
    What ``kombify logs -f`` did before the stream: ``GET .../logs?after=N`` every 0.5 s, on
    the same PostgreSQL database.

Printed: median and 95th percentile latency in ms per way, lines lost or repeated (must be
0), and each way's median as a ratio of the baseline's.

Usage: .venv/bin/python benchmarks/live_logs.py [--lines 150]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy
from _setup import tests_support

tests_support()

from kombify.activities.deploy import DeployActivities  # noqa: E402
from kombify.api.app import create_app  # noqa: E402
from kombify.settings import Settings  # noqa: E402
from tests.support.live_logs import new_run, reading  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402
from tests.support.served_api import served  # noqa: E402

OLD_POLL = 0.5
"""Seconds between the JSON polls of ``kombify logs -f`` before it streamed."""


def _write(url: str, home: Path, run_id: str, count: int, sent: dict[int, float]) -> None:
    writer = DeployActivities(Settings(home=home, database_url=url))
    rng = random.Random(7)
    for i in range(count):
        sent[i] = time.perf_counter()
        writer.log(run_id, "agent/bench", f"{i}", "info")
        writer.events.flush()
        time.sleep(rng.uniform(0.05, 0.15))


def _writer(
    url: str, home: Path, run_id: str, count: int
) -> tuple[threading.Thread, dict[int, float]]:
    sent: dict[int, float] = {}
    thread = threading.Thread(target=_write, args=(url, home, run_id, count, sent), daemon=True)
    return thread, sent


async def _follow_sse(base: str, token: str, url: str, home: Path, count: int) -> list[float]:
    run_id = new_run(url)
    thread, sent = _writer(url, home, run_id, count)
    arrived: dict[int, float] = {}
    seen: list[int] = []
    async with reading(base, token, run_id, stop=count) as reader:
        thread.start()
        while len(seen) < count:
            for line in reader.lines[len(seen) :]:
                index = int(line["message"])
                seen.append(index)
                arrived.setdefault(index, time.perf_counter())
            if reader.task is not None and reader.task.done():
                reader.task.result()  # what broke the stream, if it broke
                break
            await asyncio.sleep(0.002)
    thread.join()
    return _latencies(sent, arrived, seen, count)


async def _follow_polling(base: str, token: str, url: str, home: Path, count: int) -> list[float]:
    run_id = new_run(url)
    thread, sent = _writer(url, home, run_id, count)
    arrived: dict[int, float] = {}
    seen: list[int] = []
    after = 0
    thread.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while len(seen) < count:
            response = await http.get(
                f"/v1/deployments/{run_id}/logs",
                params={"after": after},
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()
            body = response.json()
            now = time.perf_counter()
            for line in body["data"]:
                index = int(line["message"])
                seen.append(index)
                arrived.setdefault(index, now)
            after = body["next"]
            await asyncio.sleep(OLD_POLL)
    thread.join()
    return _latencies(sent, arrived, seen, count)


def _latencies(
    sent: dict[int, float], arrived: dict[int, float], seen: list[int], count: int
) -> list[float]:
    lost = count - len(set(seen))
    repeated = len(seen) - len(set(seen))
    if lost or repeated:
        raise SystemExit(f"the follower lost {lost} and repeated {repeated} of {count} lines")
    return [(arrived[i] - sent[i]) * 1000 for i in range(count)]


def _measure(
    name: str, url: str, home: Path, count: int, follow: Callable[..., object]
) -> list[float]:
    app = create_app(Settings(home=home / "api", database_url=url))
    with served(app) as base:
        result = asyncio.run(follow(base, app.state.admin_token, url, home, count))  # type: ignore[arg-type]
    assert isinstance(result, list)
    print(f"  {name}: {len(result)} lines measured", flush=True)
    return result


def _second_database(url: str) -> str:
    """A fresh database on the same server (each way makes a stack named ``lab``)."""
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("CREATE DATABASE polling"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/polling"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=150)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="kombify-bench-logs-") as tmp:
        base = Path(tmp)
        sqlite = f"sqlite:///{base / 'k.db'}"
        results["sse sqlite (poll 0.2 s)"] = _measure(
            "sse sqlite", sqlite, base / "s", args.lines, _follow_sse
        )
        pg_base = Path(tempfile.mkdtemp(prefix="kombify-bench-pg-", dir="/tmp"))
        with running_postgres(pg_base) as pg:
            results["sse postgresql (NOTIFY)"] = _measure(
                "sse postgresql", pg, base / "p", args.lines, _follow_sse
            )
            results[f"baseline: JSON poll every {OLD_POLL} s"] = _measure(
                "json polling", _second_database(pg), base / "b", args.lines, _follow_polling
            )
    baseline = statistics.median(results[f"baseline: JSON poll every {OLD_POLL} s"])
    print(f"\nline latency, writer commit to follower ({args.lines} lines each, none lost)")
    print(f"{'way':34} {'median ms':>10} {'p95 ms':>8} {'× baseline':>11}")
    for name, values in results.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{name:34} {median:10.1f} {p95:8.1f} {median / baseline:11.2f}")


if __name__ == "__main__":
    main()
