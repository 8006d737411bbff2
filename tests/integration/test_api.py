"""The HTTP API against real databases (and a real Temporal for readiness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.settings import Settings
from tests.support.ports import free_port

EXAMPLE = Path(__file__).parents[1] / "data" / "spec" / "examples" / "sim-single.yaml"


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    # Temporal is deliberately absent here: a port nothing listens on.
    settings = Settings(
        home=tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


def test_healthz_answers_without_dependencies(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_names_the_dependency_that_does_not_answer(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "temporal not reachable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["temporal"]["ok"] is False


def test_readyz_is_200_with_real_temporal(temporal_address: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, temporal_address=temporal_address)
    with TestClient(create_app(settings)) as c:
        response = c.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_stack_lifecycle(client: TestClient) -> None:
    source = EXAMPLE.read_text()

    created = client.post("/v1/stacks", json={"source": source})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "rehearsal"
    assert created.json()["stackkit"] == "base-homelab"

    again = client.post("/v1/stacks", json={"source": source})
    assert again.status_code == 409
    assert (
        again.json()["detail"] == "stack `rehearsal` already exists: update it, or delete it first"
    )

    listed = client.get("/v1/stacks").json()
    assert listed["count"] == 1 and listed["data"][0]["name"] == "rehearsal"
    assert listed["data"][0]["last_run"] is None  # never deployed
    shown = client.get("/v1/stacks/rehearsal").json()
    assert shown["source"] == source and shown["current_revision"] == 1

    revised = client.put(
        "/v1/stacks/rehearsal", json={"source": source.replace("every: 1m", "every: 2m")}
    )
    assert revised.status_code == 200 and revised.json()["current_revision"] == 2

    assert client.delete("/v1/stacks/rehearsal").status_code == 204
    missing = client.get("/v1/stacks/rehearsal")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no stack named `rehearsal`"


def test_invalid_kombination_is_rejected_with_every_problem_and_stores_nothing(
    client: TestClient,
) -> None:
    source = (
        EXAMPLE.read_text()
        .replace("name: box", "name: Box_1")
        .replace("stackkit: base-homelab", "stackkit: mega-homelab")
    )

    response = client.post("/v1/stacks", json={"source": source, "filename": "lab.yaml"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    paths = {e["path"] for e in response.json()["errors"]}
    assert {"spec.stackkit", "spec.nodes[0].name"} <= paths
    assert all(isinstance(e["line"], int) for e in response.json()["errors"])
    assert client.get("/v1/stacks").json()["count"] == 0


def test_malformed_request_is_problem_json_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/stacks", json={"filename": "x.yaml"})

    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["path"] == "source"
    assert body["detail"].startswith("source: ")


def test_v1_routes_refuse_requests_without_the_token(client: TestClient) -> None:
    response = client.get("/v1/stacks", headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "Authorization: Bearer" in response.json()["detail"]
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_openapi_documents_the_stack_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/v1/stacks", "/v1/stacks/{name}"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_the_list_shows_each_stacks_newest_run(client: TestClient, database_url: str) -> None:
    from sqlmodel import Session

    from kombify.db import deployments as runs
    from kombify.db import stacks as store
    from kombify.db.engine import get_engine

    for name in ("alpha", "beta"):
        source = EXAMPLE.read_text().replace("name: rehearsal", f"name: {name}", 1)
        assert client.post("/v1/stacks", json={"source": source}).status_code == 201
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        alpha = store.get_stack(session, organisation_id=org.id, name="alpha")
        runs.create_deployment(session, stack=alpha, revision=1, kind="deploy", workflow_id="d1")
        newest = runs.create_deployment(
            session, stack=alpha, revision=1, kind="destroy", workflow_id="d2"
        )
        newest_id = newest.id

    listed = {s["name"]: s for s in client.get("/v1/stacks").json()["data"]}

    assert listed["beta"]["last_run"] is None
    last = listed["alpha"]["last_run"]
    assert last["id"] == newest_id and last["kind"] == "destroy" and last["stack"] == "alpha"
