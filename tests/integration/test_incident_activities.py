"""The incident activities, called by name from a workflow on a real Temporal dev server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from kombify.activities.incidents import IncidentActivities
from kombify.contracts.heal import (
    RECOVERED,
    Incident,
    IncidentKey,
    IncidentOpen,
    IncidentUpdate,
    NotifyInput,
)
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.settings import Settings
from tests.integration.test_notify import TOKEN, Receiver
from tests.support.ports import free_port

OPENED = IncidentOpen(
    "local", "lab", "box", "web", "exited", "agent watch", "exit code 137",
    "2026-12-03T10:00:00+00:00",
)
_ONCE = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_attempts=2),
}


@dataclass
class Seen:
    ids: list[int] = field(default_factory=list)
    recovered: Incident | None = None
    found_open: Incident | None = None
    found_after: Incident | None = None
    failures: list[str] = field(default_factory=list)


@workflow.defn(name="IncidentRoundTrip")
class IncidentRoundTrip:
    @workflow.run
    async def run(self, bad_state: bool) -> Seen:
        seen = Seen()
        if bad_state:
            await workflow.execute_activity(
                "UpdateIncident", IncidentUpdate(1, state="fixed"), result_type=Incident, **_ONCE
            )
        for _ in range(2):
            seen.ids.append(
                await workflow.execute_activity("OpenIncident", OPENED, result_type=int, **_ONCE)
            )
        key = IncidentKey("local", "lab", "box", "web", "exited")
        seen.found_open = await workflow.execute_activity(
            "OpenIncidentFor", key, result_type=Incident | None, **_ONCE  # type: ignore[arg-type]
        )
        seen.recovered = await workflow.execute_activity(
            "UpdateIncident",
            IncidentUpdate(seen.ids[0], action="restarted web-1", state=RECOVERED),
            result_type=Incident,
            **_ONCE,
        )
        seen.failures = await workflow.execute_activity(
            "NotifyIncident", NotifyInput(seen.ids[0], "recovered"), result_type=list[str], **_ONCE
        )
        seen.found_after = await workflow.execute_activity(
            "OpenIncidentFor", key, result_type=Incident | None, **_ONCE  # type: ignore[arg-type]
        )
        return seen


async def _run(settings: Settings, temporal_address: str, task_queue: str, bad: bool) -> Seen:
    client = await Client.connect(temporal_address)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[IncidentRoundTrip],
            activities=IncidentActivities(settings).all(),
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            workflow_id = f"incidents/{uuid.uuid4().hex[:8]}"
            result: Seen = await client.execute_workflow(
                IncidentRoundTrip.run,
                bad,
                id=workflow_id,
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=60),
            )
            history = await client.get_workflow_handle(workflow_id).fetch_history()
    assert TOKEN not in history.to_json()  # the URLs never enter a workflow history
    return result


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Settings:
    dead = f"json://kombify:{TOKEN}@127.0.0.1:{free_port()}/hooks/{TOKEN}"
    monkeypatch.setenv(
        "KOMBIFY_NOTIFY_URLS", f"{dead}, json://127.0.0.1:{receiver.port}/hooks/{TOKEN}"
    )
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(settings.resolved_database_url)
    with Session(get_engine(settings.resolved_database_url)) as session:
        org = store.ensure_local_organisation(session)
        store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="x"
        )
    return settings


async def test_open_update_notify_and_find_through_a_worker(
    settings: Settings, receiver: Receiver, temporal_address: str, task_queue: str
) -> None:
    seen = await _run(settings, temporal_address, task_queue, bad=False)

    assert seen.ids[0] == seen.ids[1]
    assert seen.found_open is not None and seen.found_open.id == seen.ids[0]
    assert seen.recovered is not None
    assert (seen.recovered.state, seen.recovered.actions) == (RECOVERED, ["restarted web-1"])
    assert seen.found_after is None
    # The dead receiver is a masked line in the result; the live one got the message.
    assert len(seen.failures) == 1
    assert seen.failures[0].startswith("json://kombify:****@127.0.0.1:")
    [message] = receiver.received
    assert message["title"].startswith("kombify: web on box of lab recovered after ")
    assert message["type"] == "success"


async def test_a_bad_state_fails_the_activity_without_retries(
    settings: Settings, temporal_address: str, task_queue: str
) -> None:
    with pytest.raises(WorkflowFailureError) as caught:
        await _run(settings, temporal_address, task_queue, bad=True)
    failed = caught.value.cause
    assert isinstance(failed, ActivityError)
    assert failed.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert isinstance(failed.cause, ApplicationError) and failed.cause.type == "invalid-incident"
    assert failed.cause.message == "incident state `fixed` is not one of open, recovered, given-up"
