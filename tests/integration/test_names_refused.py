"""Names that would become paths, container names or URLs: refused at every entry point.

Every name-taking CLI command and API route gets ``..``, ``../..``, an absolute path,
``%2e%2e``, ``a/b`` and an over-long name. Each is refused with a message that says what was
expected, and canary files inside ``$KOMBIFY_HOME`` and beside it are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kombify.api.app import create_app
from kombify.cli.main import app as cli_app
from kombify.settings import Settings, get_settings

pytestmark = pytest.mark.docker  # the simulation routes open the local engine

BAD_NAMES = ["..", "../..", "/tmp", "%2e%2e", "a/b", "x" * 64, "", "Lab", "lab\n", "läb"]
# The same ones as they arrive in a URL path segment (already percent-escaped by a client).
BAD_SEGMENTS = ["..", "%2e%2e", "%2E%2E", "..%2F..", "%2Ftmp", "a%2Fb", "x" * 64, "Lab", "l%C3%A4b"]
DEPLOYMENT_ID = "0" * 32
ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}


@pytest.fixture
def canaries(kombify_home: Path) -> Iterator[list[Path]]:
    get_settings().ensure_home()
    inside = kombify_home / "canary"
    beside = kombify_home.parent / "canary-beside"
    sims = kombify_home / "sims" / "canary"
    sims.mkdir(parents=True)
    for path in (inside, beside, sims / "id_ed25519"):
        path.write_text("still here")
    paths = [inside, beside, sims / "id_ed25519"]
    yield paths
    for path in paths:
        assert path.read_text() == "still here", f"{path} was changed"
    assert kombify_home.is_dir()


CLI_COMMANDS = [
    ["sim", "delete", "{}"],
    ["sim", "info", "{}"],
    ["sim", "start", "{}"],
    ["sim", "stop", "{}"],
    ["sim", "restart", "{}"],
    ["sim", "stats", "{}"],
    ["sim", "export", "{}"],
    ["sim", "watch", "{}"],
    ["sim", "end", "{}"],
    ["sim", "create", "{}"],
    ["sim", "ssh", "{}", "node1"],
    ["sim", "ssh", "lab", "{}"],
    ["sim", "apply", "single-node", "--name", "{}"],
    ["destroy", "{}", "--yes"],
    ["status", "{}"],
    ["incidents", "{}"],
    ["drift", "{}"],
    ["heal", "{}"],
    ["stacks", "show", "{}"],
    ["stacks", "delete", "{}"],
    ["approve", "{}"],
    ["cancel", "{}"],
    ["logs", "{}"],
    ["nodes", "{}"],
    ["nodes", "trust", "{}", "box"],
    ["nodes", "trust", "lab", "{}"],
]


@pytest.mark.parametrize("bad", BAD_NAMES)
@pytest.mark.parametrize("command", CLI_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_cli_refuses_bad_names(command: list[str], bad: str, canaries: list[Path]) -> None:
    args = [part.replace("{}", bad) for part in command]
    result = CliRunner().invoke(cli_app, args, env=ENV)

    assert result.exit_code == 2, (args, result.output)
    assert "is not valid" in result.output or "is empty" in result.output, result.output
    assert "expected" in result.output


def test_cli_cancel_does_not_paste_ids_into_urls(canaries: list[Path]) -> None:
    result = CliRunner().invoke(cli_app, ["cancel", "../stacks/x/destroy?x="], env=ENV)

    assert result.exit_code == 2
    assert "deployment id" in result.output and "32 hexadecimal digits" in result.output


@pytest.fixture
def api(temporal_address: str, kombify_home: Path) -> Iterator[TestClient]:
    settings = Settings(home=kombify_home, temporal_address=temporal_address)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


ROUTES = [
    ("GET", "/v1/stacks/{}"),
    ("PUT", "/v1/stacks/{}"),
    ("DELETE", "/v1/stacks/{}"),
    ("POST", "/v1/stacks/{}/deployments"),
    ("POST", "/v1/stacks/{}/destroy"),
    ("GET", "/v1/stacks/{}/deployments"),
    ("GET", "/v1/stacks/{}/status"),
    ("GET", "/v1/stacks/{}/incidents"),
    ("POST", "/v1/stacks/{}/heal"),
    ("GET", "/v1/stacks/{}/drift"),
    ("GET", "/v1/deployments/{}"),
    ("POST", "/v1/deployments/{}/approve"),
    ("POST", "/v1/deployments/{}/cancel"),
    ("GET", "/v1/deployments/{}/logs"),
    ("GET", "/v1/simulations/{}"),
    ("DELETE", "/v1/simulations/{}"),
    ("POST", "/v1/simulations/{}/stop"),
    ("GET", "/v1/simulations/{}/stats"),
    ("GET", "/v1/simulations/{}/export"),
    ("GET", "/v1/stacks/{}/nodes"),
    ("GET", "/v1/stacks/lab/nodes/{}/host-key"),
    ("POST", "/v1/stacks/lab/nodes/{}/trust"),
    ("POST", "/v1/stacks/{}/nodes/box/trust"),
    ("GET", "/v1/simulation-runs/{}"),
    ("POST", "/v1/simulation-runs/{}/stop"),
]


@pytest.mark.parametrize("segment", BAD_SEGMENTS)
@pytest.mark.parametrize(("method", "route"), ROUTES, ids=lambda r: str(r))
def test_api_refuses_bad_names(
    api: TestClient, method: str, route: str, segment: str, canaries: list[Path]
) -> None:
    body = {"source": "x"} if method in ("PUT", "POST") else None
    response = api.request(method, route.replace("{}", segment), json=body)

    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 422:  # the route was matched: the name itself was refused
        messages = [e["message"] for e in response.json()["errors"]]
        assert any("expected" in m for m in messages), messages


@pytest.mark.parametrize("segment", ["%2e%2e", "x" * 33, "Lab"])
def test_api_names_the_rule_it_expected(api: TestClient, segment: str) -> None:
    response = api.delete(f"/v1/simulations/{segment}")

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "simulation name" in detail and "DNS label" in detail and "32 characters" in detail


@pytest.mark.parametrize("reference", ["/etc/passwd", "../../etc/hostname", "a/b", ".."])
def test_api_templates_come_by_name_never_from_a_path(
    api: TestClient, reference: str, canaries: list[Path]
) -> None:
    secret = Path(canaries[0])
    response = api.post("/v1/simulations", json={"template": reference})

    assert response.status_code == 422, response.text
    assert "template" in response.json()["detail"]
    assert secret.read_text() not in response.text
    assert "root:" not in response.text


def test_api_deployment_ids_have_one_shape(api: TestClient) -> None:
    response = api.get(f"/v1/deployments/{DEPLOYMENT_ID}")
    assert response.status_code == 404  # well-formed, unknown

    response = api.post("/v1/deployments/..%2Fstacks%2Fx%2Fdestroy/cancel")
    assert response.status_code in (404, 422)
