"""`/v1/simulations` against the real engine: list, create, get, delete, and bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.settings import Settings
from kombify.sim.engine import SimEngine, wait_gone
from kombify.sim.models import SshEndpoint
from kombify.sim.ssh import run, wait_for_ssh
from tests.integration.sim.conftest import unique_name
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def app(tmp_path: Path) -> Any:
    # No Temporal is needed by these routes: a port nothing listens on.
    settings = Settings(home=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")
    return create_app(settings)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


def _names(client: TestClient) -> dict[str, dict[str, Any]]:
    listed = client.get("/v1/simulations")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["count"] == len(body["data"])
    return {s["name"]: s for s in body["data"]}


def test_routes_need_a_token(app: Any) -> None:
    with TestClient(app) as anonymous:
        assert anonymous.get("/v1/simulations").status_code == 401
        created = anonymous.post("/v1/simulations", json={"template": "single-node"})
        assert created.status_code == 401


def test_create_get_list_delete(client: TestClient, engine: SimEngine) -> None:
    name = unique_name("kt-api")
    try:
        created = client.post("/v1/simulations", json={"template": "single-node", "name": name})
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["name"], body["state"], body["groups"]) == (name, "running", ["lan"])
        [node] = body["nodes"]
        assert (node["name"], node["type"], node["group"]) == ("server", "local", "lan")

        got = client.get(f"/v1/simulations/{name}")
        assert got.status_code == 200, got.text
        [node] = got.json()["nodes"]
        assert node["state"] == "running"
        ssh = node["ssh"]
        assert (ssh["host"], ssh["user"]) == ("127.0.0.1", "kombify")
        endpoint = SshEndpoint(
            host=ssh["host"], port=ssh["port"], user=ssh["user"],
            identity_file=ssh["identityFile"], known_hosts_file="",
        )
        # The API answers before sshd does; what it returned is how to log in.
        asyncio.run(wait_for_ssh(endpoint, timeout=60))
        assert asyncio.run(run(endpoint, "hostname")).strip() == "server"

        assert _names(client)[name] == {
            "name": name, "state": "running", "nodes": 1, "description": body["description"],
        }

        deleted = client.delete(f"/v1/simulations/{name}")
        assert deleted.status_code == 204
        assert wait_gone(engine, name)
        missing = client.get(f"/v1/simulations/{name}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["detail"] == f"simulation `{name}` does not exist"
        assert name not in _names(client)
        assert client.delete(f"/v1/simulations/{name}").status_code == 204  # idempotent
    finally:
        engine.delete(name)


def test_bad_requests_change_nothing(client: TestClient, engine: SimEngine) -> None:
    name = unique_name("kt-api")
    unknown = client.post("/v1/simulations", json={"template": "no-such", "name": name})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["detail"].startswith("template `no-such` does not exist")

    invalid = client.post(
        "/v1/simulations",
        json={"source": f"name: {name}\ngroups:\n  - name: lan\n    nodes:\n"
              "      - {name: Bad_Name}\n"},
    )
    assert invalid.status_code == 422
    assert "groups[0].nodes[0].name" in invalid.text

    neither = client.post("/v1/simulations", json={"name": name})
    assert neither.status_code == 422
    assert engine.find(name) is None
