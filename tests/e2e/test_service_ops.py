"""Acting on one service of a deployed stack: restart, stop/start, exec, container logs.

Everything goes through the API (and the CLI for exec with a terminal) to the node agent of a
KombiSim node; what the tests check is asked from the node (Docker) or from the service itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api_process import running_api
from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import NOTES, ONE_NODE, WEB
from tests.support.served_api import run_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Two replicas, each writing a numbered line to stdout and one to stderr every second.
_TALK = "i=0; while true; do echo out-$i; echo err-$i >&2; i=$((i+1)); /bin/busybox sleep 1; done"
TALKER = f"""\
    talker:
      image: kombify-test/httpd:1
      replicas: 2
      command: ["/bin/sh", "-c", "{_TALK}"]
"""


@pytest.fixture(scope="module")
async def stack(kombify: KombifyEnv) -> str:
    name = kombify.new_stack()
    services = WEB.format(greeting="hello", health="http://localhost:80/") + NOTES + TALKER
    source = ONE_NODE.format(name=name, services=services.rstrip("\n"), healing="")
    run = await kombify.deploy(source)
    assert run["state"] == "succeeded", run.get("summary")
    return name


@pytest.fixture(scope="module")
def api_url(kombify: KombifyEnv) -> Iterator[str]:
    """``kombify api`` as its own process on the env's home, database and Temporal.

    A process of its own as users run it (and gRPC's asyncio client serves one event loop
    per process: the in-process app already uses the test's).
    """
    env = {
        "KOMBIFY_DATABASE_URL": kombify.settings.resolved_database_url,
        "KOMBIFY_TEMPORAL_ADDRESS": kombify.env["KOMBIFY_TEMPORAL_ADDRESS"],
        "KOMBIFY_TASK_QUEUE": kombify.settings.task_queue,
    }
    with running_api(kombify.home, env=env) as api:
        yield api.url


async def _web_state(kombify: KombifyEnv, stack: str) -> dict[str, Any]:
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    web: dict[str, Any] = status["nodes"][0]["services"]["web"]
    return web


async def _started_at(kombify: KombifyEnv, stack: str, container: str) -> str:
    out = await kombify.on_node(
        stack, "box", f"sudo docker inspect -f '{{{{.State.StartedAt}}}}' {container}"
    )
    return out.strip()


async def _answers(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}/")
    response.raise_for_status()
    return response.text


async def test_restart_restarts_the_container_and_it_answers_again(
    kombify: KombifyEnv, stack: str
) -> None:
    (web_id,) = (await kombify.containers(stack, "box"))["web"]
    before = await _started_at(kombify, stack, web_id)

    result = await kombify.call("POST", f"/v1/stacks/{stack}/services/web/restart")

    assert result["ok"] is True and result["action"] == "restart"
    (replica,) = result["replicas"]
    assert replica["node"] == "box" and web_id.startswith(replica["container"])
    assert (replica["state"], replica["health"]) == ("running", "healthy")
    assert await _started_at(kombify, stack, web_id) != before  # the same container, restarted
    assert await _answers(published(stack, "box", 8080))


async def test_stop_holds_the_service_stopped_through_a_heal_pass_until_start(
    kombify: KombifyEnv, stack: str, api_url: str
) -> None:
    result = await kombify.call("POST", f"/v1/stacks/{stack}/services/web/stop")

    assert result["ok"] is True
    assert [r["state"] for r in result["replicas"]] == ["exited"]
    assert (await kombify.containers(stack, "box", running=True)).get("web") is None
    web = await _web_state(kombify, stack)
    assert web["state"] == "stopped-by-owner" and web["stopped_by_owner"] is True

    # `kombify status` does not count it as a failure: the stack is as its owner wants it.
    shown = await asyncio.to_thread(run_cli, kombify.home, api_url, "status", stack)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "stopped-by-owner" in shown.stdout

    # A heal pass (as the schedule runs it) finds nothing to mend: the owner wants it stopped.
    healed = await kombify.call("POST", f"/v1/stacks/{stack}/heal")
    assert healed["skipped"] == "", healed
    assert not [p for p in healed["problems"] + healed["actions"] if "web" in p], healed
    assert (await kombify.containers(stack, "box", running=True)).get("web") is None
    assert (await _web_state(kombify, stack))["state"] == "stopped-by-owner"

    started = await kombify.call("POST", f"/v1/stacks/{stack}/services/web/start")

    assert started["ok"] is True
    assert [(r["state"], r["health"]) for r in started["replicas"]] == [("running", "healthy")]
    web = await _web_state(kombify, stack)
    assert web["state"] == "running" and web["stopped_by_owner"] is False
    assert await _answers(published(stack, "box", 8080))


async def test_exec_returns_output_and_exit_code(kombify: KombifyEnv, stack: str) -> None:
    result = await kombify.call(
        "POST",
        f"/v1/stacks/{stack}/services/web/exec",
        json={
            "argv": ["sh", "-c", "cat /www/index.html >/dev/null; echo hi; echo oops >&2; exit 3"]
        },
    )

    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "hi\n", "oops\n")
    (web_id,) = (await kombify.containers(stack, "box"))["web"]
    assert result["node"] == "box" and web_id.startswith(result["container"])


async def test_exec_picks_the_replica_asked_for(kombify: KombifyEnv, stack: str) -> None:
    ids = (await kombify.containers(stack, "box"))["talker"]
    seen = set()
    for replica in (0, 1):
        result = await kombify.call(
            "POST",
            f"/v1/stacks/{stack}/services/talker/exec",
            json={"argv": ["sh", "-c", "echo $HOSTNAME"], "replica": replica},
        )
        seen.add(result["container"])
    assert len(seen) == 2 and all(any(i.startswith(c) for i in ids) for c in seen)

    missing = await kombify.http.post(
        f"/v1/stacks/{stack}/services/talker/exec", json={"argv": ["true"], "replica": 2}
    )
    assert missing.status_code == 404 and "numbered 0 to 1" in missing.json()["detail"]


async def test_unknown_service_is_404_naming_it(kombify: KombifyEnv, stack: str) -> None:
    response = await kombify.http.post(f"/v1/stacks/{stack}/services/nope/restart")

    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "`nope`" in detail and "`web`" in detail  # and the ones there are


async def test_a_stack_never_deployed_is_409(kombify: KombifyEnv) -> None:
    name = kombify.new_stack()
    await kombify.store(
        ONE_NODE.format(
            name=name,
            services=WEB.format(greeting="x", health="http://localhost:80/").rstrip("\n"),
            healing="",
        )
    )

    response = await kombify.http.post(f"/v1/stacks/{name}/services/web/restart")

    assert response.status_code == 409 and "never deployed" in response.json()["detail"]


async def test_a_viewer_is_refused(kombify: KombifyEnv, stack: str, api_url: str) -> None:
    viewer = {"Authorization": f"Bearer {_viewer_key(kombify)}"}

    for path, body in (
        ("services/web/stop", None),
        ("services/web/exec", {"argv": ["true"]}),
    ):
        response = await kombify.http.post(f"/v1/stacks/{stack}/{path}", json=body, headers=viewer)
        assert response.status_code == 403, path
        assert "viewer" in response.json()["detail"] or "read" in response.json()["detail"]
    # Interactive exec too (a WebSocket, authenticated by the route itself).
    from websockets.asyncio.client import connect

    url = api_url.replace("http://", "ws://") + f"/v1/stacks/{stack}/services/web/exec?cmd=sh"
    async with connect(url, additional_headers=viewer) as ws:
        refusal = json.loads(await ws.recv())
    assert refusal["type"] == "error" and refusal["status"] == 403
    async with connect(url) as ws:  # no credential at all
        assert json.loads(await ws.recv())["status"] == 401
    # Reading is what a viewer may do: the logs answer.
    logs = await kombify.http.get(f"/v1/stacks/{stack}/services/web/logs?tail=1", headers=viewer)
    assert logs.status_code == 200


def _viewer_key(kombify: KombifyEnv) -> str:
    """An API key of a viewer of the installation's organisation (where the stacks are)."""
    from sqlmodel import Session

    from kombify.accounts import api_keys, users
    from kombify.db.engine import get_engine
    from kombify.db.stacks import ensure_local_organisation

    with Session(get_engine(kombify.settings.resolved_database_url)) as db:
        org = ensure_local_organisation(db)
        user = users.create(db, email="viewer@example.com", organisation=org, role="viewer")
        _, key = api_keys.create(db, org_id=org.id, user_id=user.id, name="watch", scope="read")
    return key


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data", "{}"))))
    return events


async def _logs(kombify: KombifyEnv, stack: str, query: str) -> list[tuple[str, dict[str, Any]]]:
    response = await kombify.http.get(f"/v1/stacks/{stack}/services/talker/logs?{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return _sse(response.text)


async def test_logs_of_two_replicas_name_both_sources_with_tail_and_since(
    kombify: KombifyEnv, stack: str
) -> None:
    ids = (await kombify.containers(stack, "box"))["talker"]
    await asyncio.sleep(6)  # a few lines each

    events = await _logs(kombify, stack, "tail=2")

    assert events[-1] == ("end", {})
    lines = [data for kind, data in events if kind == "line"]
    # tail=2: each container's last two lines, one written to stdout and one to stderr.
    assert sorted(d["source"] for d in lines) == sorted(f"box/{i[:12]}" for i in ids for _ in "12")
    levels = {(d["level"], d["message"].split("-")[0]) for d in lines}
    assert levels == {("info", "out"), ("error", "err")}
    assert all(datetime.fromisoformat(d["time"]).tzinfo is not None for d in lines)

    every = [d for k, d in await _logs(kombify, stack, "") if k == "line"]
    recent = [d for k, d in await _logs(kombify, stack, "since=2s") if k == "line"]
    cut = (datetime.now(UTC) - timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    stamped = [d for k, d in await _logs(kombify, stack, f"since={cut}") if k == "line"]
    assert 0 < len(recent) < len(every) and 0 < len(stamped) < len(every)
    assert all(datetime.fromisoformat(d["time"]) >= datetime.fromisoformat(cut) for d in stamped)

    bad = await kombify.http.get(f"/v1/stacks/{stack}/services/talker/logs?since=yesterday")
    assert bad.status_code == 422 and "since" in bad.json()["detail"]


async def test_followed_logs_receive_a_new_line(
    kombify: KombifyEnv, stack: str, api_url: str
) -> None:
    # Served on a real port: the in-process transport would wait for the end of an endless
    # response. The new line is written into the container's own stdout (its PID 1's).
    path = f"{api_url}/v1/stacks/{stack}/services/web/logs?follow=1&since=1s"
    auth = {"Authorization": dict(kombify.http.headers)["authorization"]}
    got: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=30, headers=auth) as api,
        api.stream("GET", path) as response,
    ):
        assert response.status_code == 200

        async def read() -> None:
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk
                for kind, data in _sse(buffer):
                    if kind == "line" and "followed-marker" in data["message"]:
                        got.append(data)
                        return

        reader = asyncio.create_task(read())
        deadline = time.monotonic() + 60
        while not reader.done() and time.monotonic() < deadline:
            await kombify.call(
                "POST",
                f"/v1/stacks/{stack}/services/web/exec",
                json={"argv": ["sh", "-c", "echo followed-marker > /proc/1/fd/1"]},
            )
            await asyncio.wait([reader], timeout=2)
        reader.cancel()
    assert got and got[0]["source"].startswith("box/") and got[0]["level"] == "info"


def _pty_cli(home: str, url: str, *args: str) -> tuple[int, str]:
    """``kombify ARGS`` with a terminal as stdin and stdout (as a person runs it)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KOMBIFY_")},
        "KOMBIFY_HOME": home,
        "KOMBIFY_API_URL": url,
        "NO_COLOR": "1",
    }
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kombify", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    out = b""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif process.poll() is not None:
            break
    code = process.wait(30)
    os.close(primary)
    return code, out.decode(errors="replace")


async def test_cli_exec_with_a_terminal_runs_on_a_pty_and_returns_its_exit_code(
    kombify: KombifyEnv, stack: str, api_url: str
) -> None:
    code, out = await asyncio.to_thread(
        _pty_cli,
        str(kombify.home),
        api_url,
        "service",
        "exec",
        stack,
        "web",
        "--",
        "sh",
        "-c",
        "/bin/busybox tty; exit 7",
    )

    assert code == 7, out
    assert "/dev/pts/" in out  # the command ran on a terminal


async def test_cli_exec_without_a_terminal_pipes_and_returns_the_exit_code(
    kombify: KombifyEnv, stack: str, api_url: str
) -> None:
    done = await asyncio.to_thread(
        run_cli,
        kombify.home,
        api_url,
        "service",
        "exec",
        stack,
        "web",
        "--",
        "sh",
        "-c",
        "cat; echo done >&2; exit 4",
        stdin="piped in\n",
    )

    assert done.returncode == 4, done.stderr
    assert done.stdout == "piped in\n" and done.stderr == "done\n"


async def test_cli_restart_json(kombify: KombifyEnv, stack: str, api_url: str) -> None:
    done = await asyncio.to_thread(
        run_cli, kombify.home, api_url, "service", "restart", stack, "notes", "--json"
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["service"] == "notes"
    assert [r["state"] for r in result["replicas"]] == ["running"]


async def test_cli_logs_of_a_service_merge_its_replicas_piped_and_as_json(
    kombify: KombifyEnv, stack: str, api_url: str
) -> None:
    ids = (await kombify.containers(stack, "box"))["talker"]
    sources = {f"box/{i[:12]}" for i in ids}

    piped = await asyncio.to_thread(
        run_cli, kombify.home, api_url, "logs", stack, "talker", "--tail", "2"
    )
    as_json = await asyncio.to_thread(
        run_cli, kombify.home, api_url, "logs", stack, "talker", "--tail", "1", "--json"
    )

    assert piped.returncode == 0, piped.stderr
    # Piped: plain `time source level message` lines, two of each replica (stdout and stderr).
    rows = [line.split(" ", 3) for line in piped.stdout.splitlines()]
    assert len(rows) == 4 and "\x1b[" not in piped.stdout
    assert {row[1] for row in rows} == sources
    assert {(row[2], row[3].split("-")[0]) for row in rows} == {("info", "out"), ("error", "err")}
    assert as_json.returncode == 0, as_json.stderr
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {o["source"] for o in objects} == sources and len(objects) == 2
