"""Error shapes and input limits of the HTTP API, and who may call which route.

Every error is problem+json, the OpenAPI document says so, and every route of the document is
walked without a token and with a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.api.limits import MAX_BODY_BYTES
from kombify.settings import Settings
from tests.support.ports import free_port

PROBLEM = "application/problem+json"
# Routes anyone may call: probes for load balancers and `kombify status`, the public keys SSO
# tokens are signed with, and the routes that hand out credentials (nobody is signed in yet).
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/login"),
    # A reset or verification mail's next step: the mailed token is the proof.
    ("post", "/v1/auth/password-reset"),
    ("post", "/v1/auth/password-reset/confirm"),
    ("post", "/v1/auth/verify-email"),
    # Login with a provider: these routes are how a caller gets a credential (docs/oidc.md).
    ("get", "/v1/auth/oidc/providers"),
    ("get", "/v1/auth/oidc/{provider}/login"),
    ("get", "/v1/auth/oidc/{provider}/callback"),
    ("post", "/v1/auth/oidc/cli-exchange"),
    # The dashboard's first run: only "setup needed: yes/no" (docs/dashboard.md).
    ("get", "/v1/setup"),
    # The price list the public pricing page shows (docs/billing.md).
    ("get", "/v1/plans"),
    # Stripe's webhooks: the Stripe-Signature header is the credential (docs/billing.md).
    ("post", "/v1/billing/webhooks"),
}
# Values for path parameters: well-formed, so a route would act if the token were not checked.
PATH_VALUES = {
    "name": "lab", "node": "box", "action": "start", "deployment_id": "0123456789abcdef" * 2,
    "org": "local", "user_id": "0123456789abcdef" * 2, "invitation_id": "0123456789abcdef" * 2,
    "key_id": "0123456789abcdef" * 2, "session_id": "0123456789abcdef" * 2,
    "tool": "stack", "path": "v1/stacks",
    "provider": "keycloak", "service": "web", "revision": "1", "run_id": "kombify-userwf.local.x",
    "slug": "local",
}


@pytest.fixture
def app_and_token(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    settings = Settings(
        home=tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, app.state.admin_token


@pytest.fixture
def client(app_and_token: tuple[TestClient, str]) -> TestClient:
    c, token = app_and_token
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"] and body["type"].startswith("https://")
    return body


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


# ---- input limits --------------------------------------------------------------------------


def test_lone_surrogate_in_a_body_is_400_naming_the_field_and_stores_nothing(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/stacks",
        content=b'{"source": "\\ud800", "filename": "lab.yaml"}',
        headers={"content-type": "application/json"},
    )

    body = _problem(response, 400)
    assert body["detail"] == (
        "source: the text is not valid Unicode (a lone UTF-16 surrogate escape at character 0)"
    )
    assert client.get("/v1/stacks").json()["count"] == 0


def test_surrogate_pair_is_valid_text_and_reaches_the_validator(client: TestClient) -> None:
    response = client.post(
        "/v1/stacks",
        content=b'{"source": "name: \\ud83d\\ude00"}',
        headers={"content-type": "application/json"},
    )

    _problem(response, 422)  # the kombination is wrong, but the text itself is fine


@pytest.mark.parametrize(
    "url",
    [
        "/v1/stacks?offset=99999999999999999999",
        "/v1/stacks?offset=9223372036854775808",
        "/v1/deployments/0123456789abcdef0123456789abcdef/logs?after=99999999999999999999",
    ],
)
def test_integer_beyond_what_the_database_stores_is_422(client: TestClient, url: str) -> None:
    body = _problem(client.get(url), 422)

    assert body["detail"].endswith("less than or equal to 9223372036854775807")


def test_largest_storable_offset_is_answered(client: TestClient) -> None:
    response = client.get("/v1/stacks?offset=9223372036854775807")

    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/stacks", content=b"{source", headers={"content-type": "application/json"}
    )

    body = _problem(response, 400)
    assert body["detail"].startswith("the body is not valid JSON: ")


def test_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    source = "x" * (MAX_BODY_BYTES + 1)

    body = _problem(client.post("/v1/stacks", json={"source": source}), 413)

    assert body["detail"] == "the body is too large: request bodies are limited to 1024 KiB"


# ---- error shapes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("PUT", "/v1/stacks", "GET, POST"),
        ("PATCH", "/v1/stacks/lab", "GET, PUT, DELETE"),
        ("GET", "/v1/stacks/lab/deployments/x", None),
    ],
)
def test_wrong_method_is_405_with_allow_and_unknown_path_is_404(
    client: TestClient, method: str, url: str, allow: str | None
) -> None:
    response = client.request(method, url)

    if allow is None:
        _problem(response, 404)
        return
    body = _problem(response, 405)
    assert response.headers["allow"] == allow
    assert body["detail"] == f"{method} is not allowed on {url}: use {allow}"


def test_openapi_says_every_error_is_problem_json(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "default" in responses, where
        for code, response in responses.items():
            if code == "default" or int(code) >= 400:
                assert response["content"] == {PROBLEM: problem_ref}, (where, code)
        if "requestBody" in operation:
            assert {"400", "422"} <= set(responses), where
        if operation.get("parameters"):
            assert "422" in responses, where
        if (method, path) not in PUBLIC:
            assert "401" in responses, where
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_openapi_declares_the_bearer_token_as_a_security_scheme(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert "API key" in schemes["bearer"]["description"]
    for method, path, operation in _operations(document):
        headers = [
            p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
        ]
        assert "authorization" not in headers, f"{method} {path}"
        expected = [] if (method, path) in PUBLIC else [{"bearer": []}]
        assert operation.get("security", []) == expected, f"{method} {path}"


# ---- authentication, route by route --------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer ", "Bearer", "Basic d3Jvbmc6d3Jvbmc=", "Bearer \u00e9"],
)
def test_every_route_in_the_document_refuses_a_missing_or_wrong_token(
    app_and_token: tuple[TestClient, str], authorization: str | None
) -> None:
    c, token = app_and_token
    document = c.get("/openapi.json").json()
    # Bytes: a non-ASCII token reaches the server as Latin-1 text, as from any HTTP client.
    headers = {"Authorization": authorization.encode("latin-1")} if authorization else {}
    seen_public: set[tuple[str, str]] = set()
    walked = 0

    for method, path, operation in _operations(document):
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
        body = {} if "requestBody" in operation else None
        response = c.request(method.upper(), url, headers=headers, json=body)
        if (method, path) in PUBLIC:
            seen_public.add((method, path))
            assert response.status_code != 401, f"{method} {path}"
            continue
        walked += 1
        problem = _problem(response, 401)
        assert "Authorization: Bearer" in problem["detail"], f"{method} {path}"
        assert token not in response.text

    assert seen_public == PUBLIC
    assert walked >= 20  # stacks, deployments, simulations, simulation runs, certificates


def test_the_right_token_passes(client: TestClient) -> None:
    assert client.get("/v1/stacks").status_code == 200


# ---- docs without internet -----------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_server(
    app_and_token: tuple[TestClient, str], page: str
) -> None:
    c, _ = app_and_token
    response = c.get(page)
    assert response.status_code == 200
    html = response.text

    assert "://" not in html.replace("window.location.origin", ""), "a page names another host"
    urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html)
    urls += re.findall(r"""url: ?['"]([^'"]+)['"]""", html)
    assert len(urls) >= 2, html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = c.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
