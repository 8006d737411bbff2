"""Live deployment logs over Server-Sent Events, on SQLite (polling) and PostgreSQL (NOTIFY).

The lines come from a separate writer process, as from a worker; the API is served on a real
loopback port and read with a streaming HTTP client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from kombify.api.app import create_app
from kombify.cli.sse import SseParser
from kombify.db.engine import get_engine
from kombify.logstream import bus
from kombify.settings import Settings
from tests.support.live_logs import finish, new_run, reading, stored, write_lines
from tests.support.served_api import served


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    app = create_app(Settings(home=tmp_path / "api", database_url=database_url))
    with served(app) as base:
        yield base, app.state.admin_token, app


async def test_a_late_subscriber_gets_stored_then_live_lines_once_then_end(
    database_url: str, tmp_path: Path, api: tuple[str, str, Any]
) -> None:
    base, token, _ = api
    run_id = new_run(database_url)
    await asyncio.to_thread(write_lines, database_url, tmp_path, run_id, 0, 5)
    async with reading(base, token, run_id) as reader:
        await reader.wait_lines(5)
        for first in (5, 25):  # two more writer processes, while the subscriber listens
            await asyncio.to_thread(write_lines, database_url, tmp_path, run_id, first, 20)
        await reader.wait_lines(45)
        finish(database_url, tmp_path, run_id, "failed")
    assert [(line["id"], line["message"]) for line in reader.lines] == stored(database_url, run_id)
    assert [e.id for e in reader.events if e.event == "line"] == [
        str(line["id"]) for line in reader.lines
    ]
    assert reader.events[-1].event == "end" and reader.events[-1].json() == {"state": "failed"}
    first = reader.lines[0]
    assert first["source"] == "agent/nas" and first["level"] == "warning"
    assert first["time"].endswith("Z") and "T" in first["time"]


async def test_last_event_id_resumes_after_a_dropped_connection(
    database_url: str, tmp_path: Path, api: tuple[str, str, Any]
) -> None:
    base, token, _ = api
    run_id = new_run(database_url)
    await asyncio.to_thread(write_lines, database_url, tmp_path, run_id, 0, 10)
    async with reading(base, token, run_id, stop=4) as first:
        pass  # hangs up after 4 lines
    last = first.lines[-1]["id"]
    await asyncio.to_thread(write_lines, database_url, tmp_path, run_id, 10, 5)
    finish(database_url, tmp_path, run_id)
    async with reading(base, token, run_id, last_event_id=last) as second:
        pass
    seen = [line["id"] for line in first.lines + second.lines]
    assert seen == [i for i, _ in stored(database_url, run_id)]
    assert second.events[-1].json() == {"state": "succeeded"}
    # `after` does the same for clients that cannot set the header.
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        response = await http.get(
            f"/v1/deployments/{run_id}/logs",
            params={"after": last},
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        )
    parser = SseParser()
    events = [e for e in map(parser.feed, response.text.splitlines()) if e is not None]
    assert [int(e.id or 0) for e in events if e.event == "line"] == seen[4:]


async def test_lines_of_another_process_reach_two_api_instances_through_notify(
    postgres_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine, text

    url = postgres_server.rsplit("/", 1)[0] + "/live_logs_notify"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "live_logs_notify" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "live_logs_notify"'))
    # With a listener up, readers would poll only every hour: lines can only come by NOTIFY.
    monkeypatch.setattr(bus, "LISTENING_POLL", 3600.0)
    run_id = new_run(url)
    apps = [create_app(Settings(home=tmp_path / f"api{i}", database_url=url)) for i in (1, 2)]
    try:
        with ExitStack() as servers:
            bases = [servers.enter_context(served(app)) for app in apps]
            async with (
                reading(bases[0], apps[0].state.admin_token, run_id) as one,
                reading(bases[1], apps[1].state.admin_token, run_id) as two,
            ):
                async with asyncio.timeout(60):
                    while not all(
                        getattr(app.state, "line_bus", None) and app.state.line_bus.listening
                        for app in apps
                    ):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)  # past any read that started before LISTEN
                await asyncio.to_thread(write_lines, url, tmp_path, run_id, 0, 12)
                await one.wait_lines(12)
                await two.wait_lines(12)
                finish(url, tmp_path, run_id)  # its NOTIFY ends both streams
            for reader in (one, two):
                assert [line["id"] for line in reader.lines] == [i for i, _ in stored(url, run_id)]
                assert reader.events[-1].json() == {"state": "succeeded"}
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE IF EXISTS "live_logs_notify" WITH (FORCE)'))
        admin.dispose()


async def test_the_stream_is_refused_like_the_json_for_an_unknown_run(
    tmp_path: Path, api: tuple[str, str, Any]
) -> None:
    base, token, _ = api
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        response = await http.get(
            "/v1/deployments/0123456789abcdef0123456789abcdef/logs",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    run_id = new_run(api[2].state.settings.resolved_database_url)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        bad = await http.get(
            f"/v1/deployments/{run_id}/logs",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "text/event-stream",
                "Last-Event-ID": "not-a-number",
            },
        )
    assert bad.status_code == 422 and "last-event-id" in bad.text.lower()
