"""``POST /v1/kombinations/validate``: every problem with path and line, nothing stored."""

from __future__ import annotations

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
    settings = Settings(
        home=tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


def test_a_valid_file(client: TestClient) -> None:
    source = (EXAMPLES / "base-homelab.yaml").read_text()

    response = client.post("/v1/kombinations/validate", json={"source": source})

    assert response.status_code == 200, response.text
    assert response.json() == {"valid": True, "errors": []}
    # Nothing is stored and nothing is written to the activity log.
    assert client.get("/v1/stacks").json()["count"] == 0
    actions = [e["action"] for e in client.get("/v1/orgs/local/activity").json()["data"]]
    assert not any("validate" in a for a in actions)


def test_problems_carry_path_and_line(client: TestClient) -> None:
    source = (EXAMPLES / "base-homelab.yaml").read_text()
    lines = source.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("stackkit:"))
    lines[at] = lines[at].split(":")[0] + ": no-such-kit"

    response = client.post("/v1/kombinations/validate", json={"source": "\n".join(lines)})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["valid"] is False
    assert {"path": "spec.stackkit", "line": at + 1} == {
        k: answer["errors"][0][k] for k in ("path", "line")
    }
    assert "no-such-kit" in answer["errors"][0]["message"]


def test_broken_yaml_is_a_problem_not_an_error(client: TestClient) -> None:
    response = client.post("/v1/kombinations/validate", json={"source": "a: [1, 2\nb: 3\n"})

    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is False
    assert answer["errors"] and all(isinstance(e["line"], int) for e in answer["errors"])
