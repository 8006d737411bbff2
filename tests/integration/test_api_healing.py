"""Incidents, heal and drift through the API (and `kombify incidents` through a served API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from kombify.api.app import create_app
from kombify.api.routes import healing
from kombify.contracts.heal import RECOVERED, IncidentOpen, IncidentUpdate
from kombify.db import incidents
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.models import Deployment
from kombify.settings import Settings
from tests.support.ports import free_port

EXAMPLE = Path(__file__).parents[1] / "data" / "spec" / "examples" / "sim-single.yaml"
STACK = "rehearsal"  # metadata.name of EXAMPLE


@pytest.fixture
def settings(database_url: str, kombify_home: Path, temporal_address: str) -> Settings:
    return Settings(home=kombify_home, database_url=database_url, temporal_address=temporal_address)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        assert c.post("/v1/stacks", json={"source": EXAMPLE.read_text()}).status_code == 201
        yield c


def _record(settings: Settings) -> tuple[int, int]:
    """An exited container healed in 3.2 s, and a newer unhealthy one still open."""
    with Session(get_engine(settings.resolved_database_url)) as session:
        old = incidents.open_incident(
            session,
            IncidentOpen("local", STACK, "box", "web", "exited", "agent watch: docker event die",
                         "exit code 137", "2026-12-03T10:00:00.250000+00:00"),
        )
        incidents.update_incident(session, IncidentUpdate(old, action="restarted web-1"))
        incidents.update_incident(
            session,
            IncidentUpdate(old, state=RECOVERED, recovered_at="2026-12-03T10:00:03.450000+00:00"),
        )
        new = incidents.open_incident(
            session,
            IncidentOpen("local", STACK, "box", "db", "unhealthy", "heal pass", "check failed",
                         "2026-12-03T11:00:00+00:00"),
        )
    return old, new


def test_incidents_are_listed_newest_first_and_by_state(
    client: TestClient, settings: Settings
) -> None:
    assert client.get(f"/v1/stacks/{STACK}/incidents").json() == []
    old, new = _record(settings)

    listed = client.get(f"/v1/stacks/{STACK}/incidents")
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()] == [new, old]
    healed = listed.json()[1]
    assert healed == {
        "id": old,
        "stack": STACK,
        "node": "box",
        "service": "web",
        "kind": "exited",
        "detection": "agent watch: docker event die",
        "detail": "exit code 137",
        "detected_at": "2026-12-03T10:00:00.250000+00:00",
        "action": "restarted web-1",
        "actions": ["restarted web-1"],
        "recovered_at": "2026-12-03T10:00:03.450000+00:00",
        "state": "recovered",
        "time_to_recovery_s": 3.2,
    }
    only_open = client.get(f"/v1/stacks/{STACK}/incidents", params={"state": "open"}).json()
    assert [i["id"] for i in only_open] == [new]
    assert [i["id"] for i in client.get(f"/v1/stacks/{STACK}/incidents?limit=1").json()] == [new]


def test_incidents_refuse_a_bad_state_and_an_unknown_stack(client: TestClient) -> None:
    bad = client.get(f"/v1/stacks/{STACK}/incidents", params={"state": "closed"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["path"] == "state"

    missing = client.get("/v1/stacks/nosuch/incidents")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no stack named `nosuch`"


@pytest.mark.parametrize(("verb", "path"), [("POST", "heal"), ("GET", "drift")])
def test_heal_and_drift_refuse_unknown_and_undeployed_stacks(
    client: TestClient, settings: Settings, verb: str, path: str
) -> None:
    missing = client.request(verb, f"/v1/stacks/nosuch/{path}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no stack named `nosuch`"

    never = client.request(verb, f"/v1/stacks/{STACK}/{path}")
    assert never.status_code == 409
    assert never.headers["content-type"] == "application/problem+json"
    doing = "heal" if path == "heal" else "check drift of"
    assert never.json()["detail"] == (
        f"cannot {doing} stack `{STACK}`: it was never deployed; "
        "deploy it first with `kombify apply`"
    )

    with Session(get_engine(settings.resolved_database_url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.get_stack(session, organisation_id=org.id, name=STACK)
        for kind, minute in (("deploy", 1), ("destroy", 2)):
            session.add(
                Deployment(
                    stack_id=stack.id, revision=1, kind=kind, state="succeeded",
                    workflow_id=f"{kind}/local/{STACK}",
                    started_at=datetime(2026, 12, 3, 10, minute, tzinfo=UTC),
                )
            )
        session.commit()
    destroyed = client.request(verb, f"/v1/stacks/{STACK}/{path}")
    assert destroyed.status_code == 409
    assert f"stack `{STACK}`: it was destroyed;" in destroyed.json()["detail"]


def test_a_heal_pass_nobody_runs_is_a_clear_502(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deployed, but no worker polls this task queue: the pass never starts running.
    with Session(get_engine(settings.resolved_database_url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.get_stack(session, organisation_id=org.id, name=STACK)
        session.add(Deployment(stack_id=stack.id, revision=1, kind="deploy", state="succeeded",
                               workflow_id=f"deploy/local/{STACK}"))
        session.commit()
    monkeypatch.setattr(healing, "HEAL_WAIT", timedelta(seconds=2))
    settings.task_queue = f"nobody-{os.getpid()}-{time.monotonic_ns()}"

    answer = client.post(f"/v1/stacks/{STACK}/heal")

    assert answer.status_code == 502
    assert answer.json()["detail"] == (
        "the heal pass did not finish within 2 s (is a worker running? `kombify worker`)"
    )


@pytest.fixture
def served(app: FastAPI, client: TestClient) -> Iterator[str]:
    """The same app on a real port on 127.0.0.1, for the CLI."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def _cli(url: str, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KOMBIFY_HOME": str(settings.home),
        "KOMBIFY_API_URL": url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "kombify", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_kombify_incidents_prints_the_list(served: str, settings: Settings) -> None:
    empty = _cli(served, settings, "incidents", STACK)
    assert (empty.returncode, empty.stdout) == (0, f"no incidents for stack `{STACK}`\n")
    old, new = _record(settings)

    as_json = _cli(served, settings, "incidents", STACK, "--json")
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert [(i["id"], i["state"], i["action"]) for i in listed] == [
        (new, "open", ""), (old, "recovered", "restarted web-1")
    ]
    assert {"id", "node", "service", "kind", "detected_at", "action", "recovered_at", "state"} <= (
        listed[0].keys()
    )

    table = _cli(served, settings, "incidents", STACK)
    assert table.returncode == 0, table.stderr
    assert [line.rstrip() for line in table.stdout.splitlines()] == [
        "id  node  service  kind       detected             action           recovered"
        "            state      ttr",
        f"{new}   box   db       unhealthy  2026-12-03 11:00:00  -                -"
        "                    open       -",
        f"{old}   box   web      exited     2026-12-03 10:00:00  restarted web-1  "
        "2026-12-03 10:00:03  recovered  3.2 s",
    ]

    recovered = _cli(served, settings, "incidents", STACK, "--state", "recovered", "--json")
    assert [i["id"] for i in json.loads(recovered.stdout)] == [old]
    missing = _cli(served, settings, "incidents", "nosuch")
    assert (missing.returncode, missing.stderr) == (1, "error: no stack named `nosuch`\n")
