"""`kombify logs` as a user runs it against a served API: piped, --json, -f, and its refusals."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kombify.api.app import create_app
from kombify.cli.api_client import ApiClient
from kombify.cli.sse import stream_events
from kombify.settings import Settings
from tests.support.live_logs import finish, new_run, stored, write_lines
from tests.support.served_api import run_cli, served

_PLAIN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z agent/nas (info|warning) line \d+")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    url = f"sqlite:///{tmp_path / 'api' / 'kombify.db'}"
    app = create_app(Settings(home=tmp_path / "api", database_url=url))
    with served(app) as base:
        yield base, app.state.admin_token, url


def test_piped_logs_are_plain_lines_and_json_is_one_object_per_line(
    tmp_path: Path, api: tuple[str, str, str]
) -> None:
    base, token, url = api
    run_id = new_run(url)
    write_lines(url, tmp_path, run_id, 0, 4)
    home = tmp_path / "cli"

    printed = run_cli(home, base, "logs", run_id, KOMBIFY_API_KEY=token)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == 4 and all(_PLAIN.fullmatch(line) for line in lines), lines
    assert lines[0].endswith(" agent/nas warning line 0") and lines[1].endswith("info line 1")

    as_json = run_cli(home, base, "logs", run_id, "--json", KOMBIFY_API_KEY=token)
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(o["id"], o["message"]) for o in objects] == stored(url, run_id)
    assert set(objects[0]) == {"id", "time", "source", "level", "message"}

    # -f reads the stream: the same lines, then it ends with the run, 1 when it failed.
    finish(url, tmp_path, run_id, "failed")
    followed = run_cli(home, base, "logs", "-f", run_id, "--json", KOMBIFY_API_KEY=token)
    assert followed.returncode == 1 and f"deployment {run_id} failed" in followed.stderr
    assert [json.loads(line) for line in followed.stdout.splitlines()] == objects
    plain = run_cli(home, base, "logs", "-f", run_id, KOMBIFY_API_KEY=token)
    assert plain.stdout.splitlines() == lines


def test_the_two_forms_refuse_options_and_names_that_do_not_fit(
    tmp_path: Path, api: tuple[str, str, str]
) -> None:
    base, token, url = api
    run_id = new_run(url)
    home = tmp_path / "cli"
    tail = run_cli(home, base, "logs", run_id, "--tail", "5", KOMBIFY_API_KEY=token)
    assert tail.returncode == 2 and "--since and --tail apply to a service" in tail.stderr
    stack = run_cli(home, base, "logs", "lab", KOMBIFY_API_KEY=token)
    assert stack.returncode == 2 and "give STACK SERVICE" in stack.stderr
    service = run_cli(home, base, "logs", "lab", "../x", KOMBIFY_API_KEY=token)
    assert service.returncode == 2 and "service name" in service.stderr


class CountingClient(ApiClient):
    """The CLI's API client, counting the streams it opens."""

    opened = 0

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        type(self).opened += 1
        with super().stream(method, path, **kwargs) as response:
            yield response


async def test_the_sse_client_resumes_with_last_event_id_and_loses_nothing(
    tmp_path: Path, api: tuple[str, str, str]
) -> None:
    base, token, url = api
    run_id = new_run(url)
    write_lines(url, tmp_path, run_id, 0, 3)
    client = CountingClient(Settings(home=tmp_path / "cli", api_url=base, api_key=token))
    path = f"/v1/deployments/{run_id}/logs"
    # A read timeout far below the server's 15 s ping: every quiet moment drops the connection.
    events = asyncio.create_task(
        asyncio.to_thread(lambda: list(stream_events(client, path, read_timeout=0.3)))
    )
    for first in (3, 6):
        await asyncio.sleep(1.0)  # quiet: the client times out and reconnects meanwhile
        await asyncio.to_thread(write_lines, url, tmp_path, run_id, first, 3)
    finish(url, tmp_path, run_id)
    got = await asyncio.wait_for(events, 60)
    client.close()
    lines = [(int(e.id or 0), e.json()["message"]) for e in got if e.event == "line"]
    assert lines == stored(url, run_id) and len(lines) == 9
    assert got[-1].event == "end"
    assert CountingClient.opened > 1  # it did reconnect, with Last-Event-ID
