"""What the stack routes do while a run is in flight, against real Temporal and both databases.

No worker polls the test's task queue, so a started run stays in progress until the test ends
it: the state in which a second apply, a revision or a delete used to slip through.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from temporalio.client import Client

from kombify.activities.deploy import DeployActivities
from kombify.api.app import create_app
from kombify.contracts.deploy import NodeProgress, PrepareInput, RecordInput
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import Stack, StackRevision
from kombify.settings import Settings
from kombify.workflows.deploy import deploy_workflow_id

EXAMPLE = Path(__file__).parents[1] / "data" / "spec" / "examples" / "sim-single.yaml"


def _source(name: str, every: str = "1m") -> str:
    return (
        EXAMPLE.read_text()
        .replace("name: rehearsal", f"name: {name}")
        .replace("every: 1m", f"every: {every}")
    )


async def _terminate(address: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over")
    except Exception:  # noqa: BLE001 - already ended, or never started
        pass


@pytest.fixture
def settings(database_url: str, temporal_address: str, task_queue: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=task_queue,
    )


@pytest.fixture
def stack_name(settings: Settings) -> Iterator[str]:
    """A stack name of the test's own; its workflow is ended after the test."""
    name = f"kt-{uuid.uuid4().hex[:8]}"
    yield name
    assert settings.temporal_address
    asyncio.run(_terminate(settings.temporal_address, deploy_workflow_id("local", name)))


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


def _revisions(settings: Settings, name: str) -> list[int]:
    with Session(get_engine(settings.resolved_database_url)) as session:
        stack = session.exec(select(Stack).where(Stack.name == name)).one()
        rows = session.exec(select(StackRevision).where(StackRevision.stack_id == stack.id))
        return sorted(r.revision for r in rows)


def _start(api: TestClient, name: str, **body: object) -> dict[str, object]:
    response = api.post(f"/v1/stacks/{name}/deployments", json=body)
    assert response.status_code == 202, response.text
    run: dict[str, object] = response.json()
    return run


def test_refused_apply_changes_nothing(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    first_file, second_file = _source(stack_name), _source(stack_name, every="2m")
    assert api.post("/v1/stacks", json={"source": first_file}).status_code == 201
    first = _start(api, stack_name)

    # In one request, as the API offers it: file and deploy together.
    refused = api.post(f"/v1/stacks/{stack_name}/deployments", json={"source": second_file})
    # In two, as `kombify apply` sends them: store the file, then deploy.
    revised = api.put(f"/v1/stacks/{stack_name}", json={"source": second_file})

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        f"a run of stack `{stack_name}` is already in progress (deployment {first['id']}): "
        "wait for it, or cancel it; nothing was changed"
    )
    assert revised.status_code == 409
    assert revised.json()["detail"] == (
        f"cannot change stack `{stack_name}`: deployment {first['id']} (deploy) is in "
        f"progress; wait for it, or stop it with `kombify cancel {first['id']}`"
    )
    shown = api.get(f"/v1/stacks/{stack_name}").json()
    assert (shown["current_revision"], shown["source"]) == (1, first_file)
    assert api.get(f"/v1/stacks/{stack_name}/status").json()["revision"] == 1
    assert [r["id"] for r in api.get(f"/v1/stacks/{stack_name}/deployments").json()] == [
        first["id"]
    ]
    assert _revisions(settings, stack_name) == [1]


def test_a_started_run_makes_the_file_it_was_sent_current(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name)}).status_code == 201
    second_file = _source(stack_name, every="2m")

    run = _start(api, stack_name, source=second_file)

    assert run["revision"] == 2
    assert run["summary"] == {"options": {"auto_approve": False, "simulate": False}}
    shown = api.get(f"/v1/stacks/{stack_name}").json()
    assert (shown["current_revision"], shown["source"]) == (2, second_file)
    assert api.get(f"/v1/stacks/{stack_name}/status").json()["revision"] == 2


def test_a_file_for_another_stack_is_refused_before_anything_is_stored(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name)}).status_code == 201

    response = api.post(
        f"/v1/stacks/{stack_name}/deployments", json={"source": _source("other-lab")}
    )

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"the file's metadata.name is `other-lab`, not `{stack_name}`"
    )
    assert api.get(f"/v1/stacks/{stack_name}/deployments").json() == []
    assert _revisions(settings, stack_name) == [1]


def test_delete_is_refused_while_a_run_is_in_flight_and_while_the_stack_is_deployed(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name)}).status_code == 201
    run = _start(api, stack_name, auto_approve=True)

    in_flight = api.delete(f"/v1/stacks/{stack_name}")

    assert in_flight.status_code == 409
    assert in_flight.headers["content-type"] == "application/problem+json"
    assert in_flight.json()["detail"] == (
        f"cannot delete stack `{stack_name}`: deployment {run['id']} (deploy) is in progress; "
        f"wait for it, or stop it with `kombify cancel {run['id']}`"
    )

    # The run fails after its node came up: recorded as the worker records it.
    assert settings.temporal_address
    asyncio.run(_terminate(settings.temporal_address, deploy_workflow_id("local", stack_name)))
    activities = DeployActivities(settings)
    node = NodeProgress(
        "box", state="rolled-out", provider="sim", role="main", services={"web": "created"}
    )
    failed = RecordInput(
        deployment_id=str(run["id"]), state="failed", error="x", nodes=[node], plan=None
    )
    activities.record(failed)

    deployed = api.delete(f"/v1/stacks/{stack_name}")

    assert deployed.status_code == 409
    assert deployed.json()["detail"] == (
        f"stack `{stack_name}` is deployed (node(s) box): destroy it first with "
        f"`kombify destroy {stack_name}`, then delete it"
    )
    assert api.get(f"/v1/stacks/{stack_name}").status_code == 200

    # A successful destroy forgets the nodes; then the stack may go.
    destroyed = RecordInput(
        deployment_id=str(run["id"]),
        state="succeeded",
        error=None,
        nodes=[node],
        plan=None,
        forget_nodes=True,
    )
    activities.record(destroyed)
    assert api.delete(f"/v1/stacks/{stack_name}").status_code == 204
    assert api.get(f"/v1/stacks/{stack_name}").status_code == 404


def test_revisions_stage_promote_and_drop(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="a"
        )
        assert store.stage_revision(session, stack=stack, source="a") == (1, False)

        staged, stored = store.stage_revision(session, stack=stack, source="b")
        assert (staged, stored, stack.current_revision) == (2, True, 1)
        store.drop_revision(session, stack=stack, revision=2)
        assert store.stage_revision(session, stack=stack, source="c") == (2, True)
        # A staged revision the process never promoted (it died) keeps its number taken.
        assert (
            store.revise_stack(session, stack=stack, stackkit="x", source="d").current_revision == 3
        )

        store.promote_revision(session, stack_id=stack.id, revision=2, stackkit="y")
        session.refresh(stack)
        assert (stack.current_revision, stack.stackkit) == (3, "x")  # never goes back

        staged, _ = store.stage_revision(session, stack=stack, source="e")
        for _ in range(2):  # the API and the run itself both promote: same outcome
            store.promote_revision(session, stack_id=stack.id, revision=staged, stackkit="z")
        session.refresh(stack)
        assert (stack.current_revision, stack.stackkit) == (4, "z")
        assert store.current_revision(session, stack=stack).source == "e"


def test_the_run_promotes_its_revision_when_the_api_could_not(
    database_url: str, tmp_path: Path
) -> None:
    # The API stored the file and started the run, then died before making it current.
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.create_stack(
            session,
            organisation_id=org.id,
            name="rehearsal",
            stackkit="base-homelab",
            source=EXAMPLE.read_text(),
        )
        staged, _ = store.stage_revision(session, stack=stack, source=_source("rehearsal", "2m"))
        org_id = org.id
    activities = DeployActivities(Settings(home=tmp_path, database_url=database_url))

    # Where the run's first activity reads the revision it deploys.
    activities._load(PrepareInput("d", organisation="local", stack="rehearsal", revision=staged))

    with Session(get_engine(database_url)) as session:
        stack = store.get_stack(session, organisation_id=org_id, name="rehearsal")
        assert stack.current_revision == staged == 2
