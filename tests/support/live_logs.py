"""Helpers of the live log tests: a deployment row, lines from another process, a reader."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from kombify.activities.deploy import DeployActivities
from kombify.cli.sse import SseEvent, SseParser
from kombify.contracts.deploy import RecordInput
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.settings import Settings

_WRITER = """
import sys
from pathlib import Path
from kombify.activities.deploy import DeployActivities
from kombify.settings import Settings
url, home, run_id, first, count = sys.argv[1:]
writer = DeployActivities(Settings(home=Path(home), database_url=url))
for i in range(int(first), int(first) + int(count)):
    writer.log(run_id, "agent/nas", f"line {i}", "warning" if i % 3 == 0 else "info")
writer.events.flush()
"""


def write_lines(url: str, home: Path, run_id: str, first: int, count: int) -> None:
    """Store lines from another process, as a worker does."""
    args = [url, str(home), run_id, str(first), str(count)]
    subprocess.run([sys.executable, "-c", _WRITER, *args], check=True, capture_output=True)


def new_run(url: str) -> str:
    upgrade(url)
    with Session(get_engine(url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="x"
        )
        run = runs.create_deployment(
            session, stack=stack, revision=1, kind="deploy", workflow_id="deploy/local/lab"
        )
        return run.id


def finish(url: str, home: Path, run_id: str, state: str = "succeeded") -> None:
    activities = DeployActivities(Settings(home=home, database_url=url))
    activities.record(RecordInput(run_id, state, None, nodes=[], plan=None))


def stored(url: str, run_id: str) -> list[tuple[int, str]]:
    with Session(get_engine(url)) as session:
        return [
            (e.id or 0, e.message)
            for e in runs.deployment_events(session, deployment_id=run_id, limit=10000)
        ]


class Reader:
    """One SSE subscriber: collects the events of a deployment's log stream."""

    def __init__(self) -> None:
        self.events: list[SseEvent] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [e.json() for e in self.events if e.event == "line"]

    async def wait_lines(self, count: int) -> None:
        async with asyncio.timeout(60):
            while len(self.lines) < count:
                if self.task is not None and self.task.done():
                    self.task.result()  # what broke the stream
                    raise AssertionError(f"the stream ended after {len(self.lines)} lines")
                await asyncio.sleep(0.05)


@asynccontextmanager
async def reading(
    base: str, token: str, run_id: str, *, last_event_id: int | None = None, stop: int = 0
) -> AsyncIterator[Reader]:
    """Read the stream in a task while the block runs; ``stop`` lines then hang up."""
    reader = Reader()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)

    async def run() -> None:
        parser = SseParser()
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as http,
            http.stream("GET", f"/v1/deployments/{run_id}/logs", headers=headers) as response,
        ):
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                reader.events.append(event)
                if event.event == "end" or (stop and len(reader.lines) >= stop):
                    break

    task = reader.task = asyncio.create_task(run())
    try:
        yield reader
        await asyncio.wait_for(task, 60)  # the stream ends (or this raises what failed)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
