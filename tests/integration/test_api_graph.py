"""``GET /v1/stacks/{name}/graph`` of a stack that was never deployed (no Temporal needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.settings import Settings
from tests.support.ports import free_port

EXAMPLES = Path(__file__).parents[1] / "data" / "spec" / "examples"


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    # Nothing listens at Temporal's address: a never-deployed stack is drawn without it.
    settings = Settings(
        home=tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        made = c.post("/v1/stacks", json={"source": (EXAMPLES / "ha-homelab.yaml").read_text()})
        assert made.status_code == 201, made.text
        yield c


def test_json_is_the_desired_graph_not_deployed(client: TestClient) -> None:
    response = client.get("/v1/stacks/swarm/graph")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    graph = response.json()
    assert (graph["version"], graph["stack"], graph["revision"], graph["source"]) == (
        1,
        "swarm",
        1,
        "current",
    )
    assert graph["live"] is False and graph["error"] is None
    assert {e["state"] for e in graph["elements"]} == {"not-deployed"}
    kinds = {e["kind"] for e in graph["elements"]}
    assert kinds == {"node", "service", "network"}
    assert {e["kind"] for e in graph["edges"]} == {"placement", "network", "vpn-link"}


def test_mermaid_and_svg(client: TestClient) -> None:
    mermaid = client.get("/v1/stacks/swarm/graph", params={"format": "mermaid"})
    assert mermaid.status_code == 200
    assert mermaid.headers["content-type"].startswith("text/vnd.mermaid")
    assert mermaid.text.splitlines()[3] == "flowchart LR"

    svg = client.get("/v1/stacks/swarm/graph", params={"format": "svg", "live": "false"})
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    texts = {t.text for t in ET.fromstring(svg.text).iter("{http://www.w3.org/2000/svg}text")}
    assert {"grafana", "m1 (manager, local)"} <= texts


def test_refusals_name_the_problem(client: TestClient) -> None:
    missing = client.get("/v1/stacks/nope/graph")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]

    bad = client.get("/v1/stacks/swarm/graph", params={"format": "png"})
    assert bad.status_code == 422
    assert "format" in bad.text
