"""A stack's live status over Server-Sent Events: one observation loop per stack, shared.

The API is served on a loopback port with a real Temporal behind it; the stack is never
deployed, so an observation reads the database alone and its changes are made through the
API (a new revision, the stack deleted). The observing itself is counted by wrapping the
function every observation calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session

from kombify.accounts import api_keys, orgs, users
from kombify.api.app import create_app
from kombify.api.routes import deployments
from kombify.db.engine import get_engine
from kombify.settings import Settings
from tests.support.openapi_walk import kombination
from tests.support.served_api import run_cli, served
from tests.support.status_stream import status_stream

INTERVAL = 2  # the least KOMBIFY_STATUS_STREAM_SECONDS allows


class Counted:
    """``observe_status`` counted: which task called it, and a failure on demand."""

    def __init__(self) -> None:
        self.tasks: list[int] = []
        self.fail_next = False
        self.real = deployments.observe_status

    async def __call__(self, **kwargs: Any) -> Any:
        self.tasks.append(id(asyncio.current_task()))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a made-up failure, with a secret: postgresql://u:pw@db/x")
        return await self.real(**kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    made = Counted()
    monkeypatch.setattr(deployments, "observe_status", made)
    return made


@pytest.fixture
def api(tmp_path: Path, temporal_address: str) -> Iterator[tuple[str, str, FastAPI]]:
    settings = Settings(
        home=tmp_path / "api", temporal_address=temporal_address, status_stream_seconds=INTERVAL
    )
    app = create_app(settings)
    with served(app) as base:
        yield base, app.state.admin_token, app


def _key(app: FastAPI, slug: str, role: str) -> str:
    """A `read` API key of a person with ``role`` in organisation ``slug`` (made if missing)."""
    with Session(get_engine(app.state.settings.resolved_database_url)) as db:
        org = orgs.by_slug(db, slug) or orgs.create(db, slug=slug)
        person = users.create(
            db, email=f"{role}@{slug}.example.org", organisation=org, role=role,
            password="a long enough passphrase", email_verified=True,
        )  # fmt: skip
        _, text = api_keys.create(db, org_id=org.id, user_id=person.id, name="ro", scope="read")
        return text


async def _call(base: str, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        headers = {"Authorization": f"Bearer {token}"}
        return await http.request(method, path, headers=headers, **kwargs)


async def _stack(base: str, token: str, name: str) -> None:
    made = await _call(base, token, "POST", "/v1/stacks", json={"source": kombination(name)})
    assert made.status_code == 201, made.text


async def _until(done: Any) -> None:
    async with asyncio.timeout(120):
        while not done():
            await asyncio.sleep(0.05)


async def test_two_subscribers_share_one_loop_and_see_changes_errors_and_the_end(
    api: tuple[str, str, FastAPI], counted: Counted
) -> None:
    base, token, app = api
    await _stack(base, token, "shared")
    answer = (await _call(base, token, "GET", "/v1/stacks/shared/status")).json()
    counted.tasks.clear()  # that answer's own observation
    async with (
        status_stream(base, token, "shared") as one,
        status_stream(base, token, "shared") as two,
    ):
        first = [await r.wait_event("status") for r in (one, two)]
        # The first event is the whole status, as the JSON route answers it.
        assert [e.json() for e in first] == [answer, answer]
        assert [e.id for e in first] == ["1", "1"]
        seen = len(counted.tasks)
        await _until(lambda: len(counted.tasks) >= seen + 3)
        # Every observation since both listen came from one loop: one per interval, not two.
        assert len(set(counted.tasks)) == 1 and app.state.status_hub.running() == 1
        assert [e.event for e in one.events] == ["status"]  # nothing changed: nothing sent

        stored = kombination("shared").replace("name: box", "name: nas")
        changed = await _call(base, token, "PUT", "/v1/stacks/shared", json={"source": stored})
        assert changed.status_code == 200, changed.text
        for reader in (one, two):
            event = await reader.wait_event("status", after=1)
            assert event.json()["revision"] == 2 and event.id == "2"

        counted.fail_next = True
        for reader in (one, two):
            error = (await reader.wait_event("error")).json()
            assert set(error) == {"detail"} and "RuntimeError" in error["detail"]
            assert "pw@" not in error["detail"]  # a library's text is never sent

        deleted = await _call(base, token, "DELETE", "/v1/stacks/shared")
        assert deleted.status_code == 204, deleted.text
        for reader in (one, two):
            end = await reader.wait_event("end")
            assert end.json() == {"reason": "deleted"}
            assert [e.event for e in reader.events] == ["status", "status", "error", "end"]
            assert [e.id for e in reader.events] == ["1", "2", "3", "4"]
    assert app.state.status_hub.running() == 0
    assert len(set(counted.tasks)) == 1


async def test_the_loop_stops_when_the_last_subscriber_leaves(
    api: tuple[str, str, FastAPI], counted: Counted
) -> None:
    base, token, app = api
    await _stack(base, token, "left")
    async with status_stream(base, token, "left") as one:
        async with status_stream(base, token, "left") as two:
            await two.wait_event("status")
        await one.wait_event("status")
        calls = len(counted.tasks)
        await _until(lambda: len(counted.tasks) > calls)  # one left: the loop goes on
        assert app.state.status_hub.running() == 1
    await _until(lambda: app.state.status_hub.running() == 0)
    stopped = len(counted.tasks)
    await asyncio.sleep(3 * INTERVAL)
    assert len(counted.tasks) == stopped  # no observation after the last one left

    async with status_stream(base, token, "left") as again:  # a new subscriber starts it anew
        assert (await again.wait_event("status")).json()["stack"] == "left"
        assert len(set(counted.tasks)) == 2


async def test_viewers_read_it_and_another_organisation_gets_404(
    api: tuple[str, str, FastAPI], counted: Counted
) -> None:
    base, token, app = api
    await _stack(base, token, "owned")
    viewer = _key(app, "local", "viewer")
    stranger = _key(app, "bravo", "owner")

    async with status_stream(base, viewer, "owned") as reader:
        status = (await reader.wait_event("status")).json()
        assert status["stack"] == "owned" and status["revision"] == 1
    async with status_stream(base, stranger, "owned") as refused:
        assert refused.response is not None and refused.response.status_code == 404
        assert refused.response.headers["content-type"] == "application/problem+json"
        assert json.loads(refused.response.text)["detail"] == "no stack named `owned`"
    assert len(counted.tasks) >= 1


def _watch(home: Path, base: str, *args: str) -> subprocess.Popen[str]:
    """``kombify status ARGS --watch`` as a user runs it (the CLI finds the admin token in
    ``home``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOMBIFY_")}
    env |= {"KOMBIFY_HOME": str(home), "KOMBIFY_API_URL": base, "NO_COLOR": "1"}
    env |= {"COLUMNS": "200", "TERM": "dumb"}
    return subprocess.Popen(
        [sys.executable, "-m", "kombify", "status", *args, "--watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_cli_watch_prints_each_change_and_ends_with_the_stack(
    api: tuple[str, str, FastAPI], tmp_path: Path
) -> None:
    base, token, _ = api
    await _stack(base, token, "watched")
    watch = _watch(tmp_path / "api", base, "watched", "--json")
    try:
        assert watch.stdout is not None and watch.stderr is not None
        first = json.loads(await asyncio.to_thread(watch.stdout.readline))
        assert (first["stack"], first["revision"], first["observed"]) == ("watched", 1, False)
        stored = kombination("watched").replace("name: box", "name: nas")
        await _call(base, token, "PUT", "/v1/stacks/watched", json={"source": stored})
        second = json.loads(await asyncio.to_thread(watch.stdout.readline))
        assert second["revision"] == 2
        await _call(base, token, "DELETE", "/v1/stacks/watched")
        code = await asyncio.to_thread(watch.wait, 60)
        assert watch.stdout.read() == ""  # one JSON document a line, nothing else
        assert watch.stderr.read() == "error: stack `watched` was deleted\n"
        assert code == 1
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        for pipe in (watch.stdout, watch.stderr):
            if pipe is not None:
                pipe.close()

    await _stack(base, token, "shown")
    table = _watch(tmp_path / "api", base, "shown")
    assert table.stdout is not None
    line = await asyncio.to_thread(table.stdout.readline)
    assert line == "shown (revision 1): not deployed; no runs yet\n"
    await _call(base, token, "DELETE", "/v1/stacks/shown")
    out, err = await asyncio.to_thread(table.communicate, None, 60)
    assert (table.returncode, out, err) == (1, "", "error: stack `shown` was deleted\n")

    missing = _watch(tmp_path / "api", base, "gone")
    _, err = await asyncio.to_thread(missing.communicate, None, 60)
    assert (missing.returncode, err) == (1, "error: no stack named `gone`\n")
    usage = run_cli(tmp_path / "api", base, "status", "--watch")
    assert usage.returncode == 2
    assert usage.stderr == "error: --watch needs a stack: `kombify status STACK --watch`\n"
