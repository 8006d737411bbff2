"""Schedules through the API, asserted through Temporal's own schedule API, on a real dev server.

No worker polls the test's task queue: a run a schedule starts stays running, so the tests
use ``overlap: allow`` where they count actions (with ``skip`` the second action would be
skipped behind the first). What a run then does is the interpreter's business, tested with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from temporalio.client import (
    Client,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from kombify.contracts.user_workflow import USER_WORKFLOW_NAME, UserWorkflowInput
from kombify.db.account_tables import Activity
from kombify.operate.schedules import run_id_prefix, schedule_id
from tests.support.accounts import OWNER, Installation, installation
from tests.support.temporal import running_temporal

WORKFLOW = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata:
  name: nap
spec:
  steps:
    - id: nap
      sleep: 1s
"""
PROBLEM = "application/problem+json"
NEEDS_INPUT = WORKFLOW.replace("spec:\n", "spec:\n  inputs:\n    who: {required: true}\n").replace(
    "sleep: 1s", "notify: {message: 'hello ${{ inputs.who }}'}"
)


@pytest.fixture
def inst(tmp_path: Path, temporal_address: str, task_queue: str) -> Iterator[Installation]:
    with installation(
        tmp_path,
        f"sqlite:///{tmp_path / 'kombify.db'}",
        temporal_address=temporal_address,
        task_queue=task_queue,
    ) as made:
        made.add_user("viewer@example.org", "local", "viewer")
        made.add_user("member@bravo.example.org", "bravo", "member")
        yield made


@pytest.fixture
async def temporal(temporal_address: str) -> AsyncIterator[Client]:
    client = await Client.connect(temporal_address)
    yield client


@pytest.fixture
async def name(temporal: Client) -> AsyncIterator[str]:
    """A schedule name of the test's own; its schedule and the runs it started end after it."""
    made = f"nightly-{uuid.uuid4().hex[:8]}"
    yield made
    handle = temporal.get_schedule_handle(schedule_id("local", made))
    try:
        await handle.delete()
    except RPCError:
        pass  # deleted by the test
    async for run in temporal.list_workflows(
        f"WorkflowId STARTS_WITH '{run_id_prefix('local', made)}'"
    ):
        if run.status == WorkflowExecutionStatus.RUNNING:
            await temporal.get_workflow_handle(run.id, run_id=run.run_id).terminate("test over")


def _body(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "source": WORKFLOW, "filename": "nap.yaml"} | fields


async def _described(temporal: Client, name: str, org: str = "local") -> ScheduleDescription:
    return await temporal.get_schedule_handle(schedule_id(org, name)).describe()


async def _until(
    temporal: Client,
    name: str,
    check: Callable[[ScheduleDescription], bool],
    what: str,
    timeout: float = 60,
) -> ScheduleDescription:
    deadline = time.monotonic() + timeout
    while True:
        found = await _described(temporal, name)
        if check(found):
            return found
        assert time.monotonic() < deadline, f"{what}: {found.info}"
        await asyncio.sleep(0.5)


async def _gone(temporal: Client, name: str, org: str = "local") -> bool:
    try:
        await _described(temporal, name, org)
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False


async def test_a_schedule_fires_pauses_resumes_triggers_and_is_deleted(
    inst: Installation, temporal: Client, name: str, task_queue: str
) -> None:
    owner = inst.bearer(OWNER)

    made = owner.post("/v1/schedules", json=_body(name, every="2s", overlap="allow"))
    assert made.status_code == 201, made.text
    assert made.json()["every"] == "2s" and made.json()["paused"] is False

    # It fires: Temporal records actions, each a RunUserWorkflow run of the file.
    fired = await _until(temporal, name, lambda d: d.info.num_actions >= 2, "never fired twice")
    assert fired.info.recent_actions and len(fired.info.next_action_times) >= 1
    first = fired.info.recent_actions[0].action
    run = temporal.get_workflow_handle(first.workflow_id, run_id=first.first_execution_run_id)
    assert first.workflow_id.startswith(run_id_prefix("local", name))
    about = await run.describe()
    assert about.workflow_type == USER_WORKFLOW_NAME and about.task_queue == task_queue
    started = [e async for e in run.fetch_history_events()][0]
    payload = started.workflow_execution_started_event_attributes.input.payloads[0]
    given = await temporal.data_converter.decode([payload], [UserWorkflowInput])
    assert given == [UserWorkflowInput("local", WORKFLOW, "nap.yaml", f"schedule:{name}")]

    # Paused: no new actions over a few intervals.
    paused = owner.post(f"/v1/schedules/{name}/pause", json={"note": "maintenance window"})
    assert paused.status_code == 200, paused.text
    held = await _described(temporal, name)
    assert held.schedule.state.paused and held.schedule.state.note == "maintenance window"
    await asyncio.sleep(1)
    before = (await _described(temporal, name)).info.num_actions
    await asyncio.sleep(6)
    assert (await _described(temporal, name)).info.num_actions == before

    # Resumed: it fires again.
    resumed = owner.post(f"/v1/schedules/{name}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    again = await _until(temporal, name, lambda d: d.info.num_actions > before, "not resumed")
    assert again.schedule.state.note == f"resumed by {OWNER}"

    # Triggered while paused: exactly one action, now.
    owner.post(f"/v1/schedules/{name}/pause")
    await asyncio.sleep(1)
    counted = (await _described(temporal, name)).info.num_actions
    assert owner.post(f"/v1/schedules/{name}/trigger").status_code == 200
    await _until(temporal, name, lambda d: d.info.num_actions == counted + 1, "no triggered run")
    shown = owner.get(f"/v1/schedules/{name}").json()
    assert shown["paused"] is True and shown["actions"] == counted + 1
    assert shown["recent_runs"][0]["status"] == "running"  # nobody polls the test's queue
    assert len(shown["next_runs"]) == 5

    # Deleted: Temporal has no such schedule any more, the API no such name.
    assert owner.delete(f"/v1/schedules/{name}").status_code == 204
    assert await _gone(temporal, name)
    assert owner.get(f"/v1/schedules/{name}").status_code == 404
    assert owner.get("/v1/schedules").json() == {"data": [], "count": 0}

    with inst.db() as db:
        actions = db.exec(select(Activity.action).where(Activity.object_id == name)).all()
    assert sorted(set(actions)) == [
        "schedule-create", "schedule-delete", "schedule-pause", "schedule-resume",
        "schedule-trigger",
    ]  # fmt: skip


async def test_cron_overlap_and_jitter_are_set_as_asked(
    inst: Installation, temporal: Client, name: str
) -> None:
    owner = inst.bearer(OWNER)

    made = owner.post(
        "/v1/schedules",
        json=_body(
            name, cron="*/5 * * * *", overlap="buffer", jitter="30s", source=NEEDS_INPUT,
            inputs={"who": "world"},
        ),
    )  # fmt: skip

    assert made.status_code == 201, made.text
    found = await _described(temporal, name)
    assert found.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    assert found.schedule.spec.jitter == timedelta(seconds=30)
    upcoming = found.info.next_action_times
    # Every 5 minutes, each start up to 30 s later (the jitter shows in the upcoming times).
    assert len(upcoming) >= 5 and all(t.minute % 5 == 0 and t.second < 30 for t in upcoming)
    listed = owner.get("/v1/schedules").json()
    assert listed["count"] == 1
    keys = ("name", "cron", "every", "overlap", "jitter", "inputs")
    assert {k: listed["data"][0][k] for k in keys} == {
        "name": name, "cron": "*/5 * * * *", "every": None, "overlap": "buffer", "jitter": "30s",
        "inputs": {"who": "world"},
    }  # fmt: skip
    # The name is taken once per organisation.
    taken = owner.post("/v1/schedules", json=_body(name, every="1h"))
    assert taken.status_code == 409 and "exists" in taken.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"cron": "0 3 * *"}, "cron", "has 4 fields: expected 5"),
        ({"cron": "0 25 * * *"}, "cron", "`25` is not a valid hour"),
        ({"every": "6 hours"}, "every", "is not a duration"),
        ({"every": "0s"}, "every", "is not a duration"),
        ({"every": "400d"}, "every", "outside 1s to 366d"),
        ({"every": "1h", "cron": "0 3 * * *"}, "every", "exactly one of cron and every"),
        ({}, "every", "exactly one of cron and every"),
        ({"every": "1m", "jitter": "1m"}, "jitter", "must be shorter than every"),
        ({"every": "1h", "jitter": "soon"}, "jitter", "is not a duration"),
        ({"every": "1h", "overlap": "queue"}, "overlap", "'skip', 'buffer' or 'allow'"),
        ({"every": "1h", "name": "Nightly_Job"}, "name", "schedule name `Nightly_Job`"),
        ({"every": "1h", "source": WORKFLOW.replace("sleep: 1s", "slep: 1s")}, "", "nap.yaml:"),
        ({"every": "1h", "inputs": {"nope": "1"}}, "inputs", "unknown input `nope`"),
        ({"every": "1h", "source": NEEDS_INPUT}, "inputs", "input `who` is required"),
    ],
)
async def test_a_bad_request_is_refused_naming_the_field_and_nothing_is_made(
    inst: Installation, temporal: Client, name: str, fields: dict[str, Any], path: str, words: str
) -> None:
    owner = inst.bearer(OWNER)

    refused = owner.post("/v1/schedules", json=_body(name) | fields)

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert words in problem["detail"], problem
    if path:
        assert problem["errors"][0]["path"] == path, problem
    else:  # the workflow file's own problem: the path inside the file, and its line
        assert problem["errors"][0]["line"] == 8, problem
    assert owner.get("/v1/schedules").json()["count"] == 0
    assert await _gone(temporal, name)


async def test_another_organisation_can_neither_see_nor_touch_it(
    inst: Installation, temporal: Client, name: str
) -> None:
    owner = inst.bearer(OWNER)
    assert owner.post("/v1/schedules", json=_body(name, every="1h")).status_code == 201
    stranger = inst.bearer("member@bravo.example.org")
    viewer = inst.bearer("viewer@example.org")

    assert stranger.get("/v1/schedules").json() == {"data": [], "count": 0}
    for method, path in (
        ("GET", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/trigger"), ("DELETE", ""),
    ):  # fmt: skip
        answer = stranger.request(method, f"/v1/schedules/{name}{path}")
        assert answer.status_code == 404 and answer.json()["detail"] == f"no schedule `{name}`"
        # A viewer of the owning organisation reads it, and changes nothing.
        seen = viewer.request(method, f"/v1/schedules/{name}{path}")
        assert seen.status_code == (200 if method == "GET" else 403), seen.text
    # bravo may use the same name: its own schedule, another id in Temporal.
    assert stranger.post("/v1/schedules", json=_body(name, every="1h")).status_code == 201
    theirs = await _described(temporal, name, "bravo")
    mine = await _described(temporal, name)
    assert (await mine.memo())["organisation"] == "local"
    assert (await theirs.memo())["organisation"] == "bravo"
    assert not mine.info.num_actions and not mine.schedule.state.paused
    assert stranger.delete(f"/v1/schedules/{name}").status_code == 204
    assert await _gone(temporal, name, "bravo") and not await _gone(temporal, name)


def test_a_schedule_survives_a_restart_of_temporal_and_a_new_api(
    tmp_path: Path, task_queue: str
) -> None:
    """kombify's embedded Temporal keeps schedules in its SQLite file: stop everything, start
    a new dev server on the same file and a new API app, and the schedule is listed and fires."""
    home = tmp_path / "temporal-home"
    database = f"sqlite:///{tmp_path / 'kombify.db'}"
    name = "every-two"
    with running_temporal(home) as address:
        with installation(
            tmp_path / "first", database, temporal_address=address, task_queue=task_queue
        ) as first:
            made = first.bearer(OWNER).post(
                "/v1/schedules", json=_body(name, every="2s", overlap="allow")
            )
            assert made.status_code == 201, made.text
    with running_temporal(home) as address:
        with installation_again(tmp_path / "second", database, address, task_queue) as api:
            listed = api.get("/v1/schedules").json()
            assert [s["name"] for s in listed["data"]] == [name]
            before = listed["data"][0]["actions"]

            async def fires() -> None:
                temporal = await Client.connect(address)
                await _until(temporal, name, lambda d: d.info.num_actions > before, "no fire")

            asyncio.run(fires())
            assert api.get(f"/v1/schedules/{name}").json()["actions"] > before
            assert api.delete(f"/v1/schedules/{name}").status_code == 204


def installation_again(home: Path, database: str, address: str, task_queue: str) -> Any:
    """A new API app on an existing database (its first owner exists: sign in as them)."""
    from contextlib import contextmanager

    from kombify.api.app import create_app
    from kombify.settings import Settings
    from tests.support.accounts import PASSWORD

    @contextmanager
    def started() -> Iterator[TestClient]:
        settings = Settings(
            home=home, database_url=database, temporal_address=address, task_queue=task_queue
        )
        with TestClient(create_app(settings), base_url="https://testserver") as api:
            login = api.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
            assert login.status_code == 200, login.text
            api.headers["Authorization"] = f"Bearer {login.json()['token']}"
            api.cookies.clear()
            yield api

    return started()


async def test_a_schedule_temporal_lost_is_listed_as_lost_and_can_be_deleted(
    inst: Installation, temporal: Client, name: str
) -> None:
    owner = inst.bearer(OWNER)
    assert owner.post("/v1/schedules", json=_body(name, every="1h")).status_code == 201
    await temporal.get_schedule_handle(schedule_id("local", name)).delete()  # as a data reset

    listed = owner.get("/v1/schedules").json()["data"]
    shown = owner.get(f"/v1/schedules/{name}")

    assert [(s["name"], s["lost"]) for s in listed] == [(name, True)]
    assert "Temporal has no schedule" in listed[0]["note"]
    assert shown.status_code == 404 and "delete it and create it again" in shown.json()["detail"]
    assert owner.delete(f"/v1/schedules/{name}").status_code == 204
    assert owner.get("/v1/schedules").json()["count"] == 0


async def test_trigger_is_refused_when_overlap_skip_would_start_nothing(
    inst: Installation, temporal: Client, name: str
) -> None:
    owner = inst.bearer(OWNER)
    assert owner.post("/v1/schedules", json=_body(name, every="1h")).status_code == 201
    assert owner.post(f"/v1/schedules/{name}/trigger").status_code == 200
    going = await _until(temporal, name, lambda d: bool(d.info.running_actions), "not running")

    again = owner.post(f"/v1/schedules/{name}/trigger")

    assert again.status_code == 409, again.text
    assert "skips overlapping runs" in again.json()["detail"]
    assert going.info.running_actions[0].workflow_id in again.json()["detail"]
    await asyncio.sleep(2)
    assert (await _described(temporal, name)).info.num_actions == 1
