"""Security headers, CORS and the request log, as a browser and an operator see them."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.settings import Settings
from tests.support.gateway_users import session_for
from tests.support.ports import free_port

EXAMPLE = Path(__file__).parents[1] / "data" / "spec" / "examples" / "sim-single.yaml"


def _app(tmp_path: Path, **extra: object) -> FastAPI:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'k.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        **extra,  # type: ignore[arg-type]
    )
    return create_app(settings)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = _app(tmp_path, rate_limits="read=2/60")

    @app.get("/v1/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug with a secret-looking text in it")

    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {app.state.admin_token}"
        yield c


# ---- security headers ----------------------------------------------------------------------


def _assert_security_headers(headers: Mapping[str, str]) -> None:
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_every_kind_of_response_carries_the_security_headers(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    answers = {  # read=2/60; anonymous calls and a token's first call count on the address
        "ok": client.get("/healthz"),
        "unauthenticated": client.get("/v1/stacks", headers=anonymous),
        "json": client.get("/v1/stacks"),
        "unexpected error": client.get("/v1/boom"),
        "rate-limited": client.get("/v1/stacks", headers=anonymous),
        "no route": client.get("/v1/nowhere"),
        "asset": client.get("/docs-assets/swagger-ui.css"),
    }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "ok": 200,
        "json": 200,
        "rate-limited": 429,
        "no route": 404,
        "unauthenticated": 401,
        "unexpected error": 500,
        "asset": 200,
    }
    for name, response in answers.items():
        _assert_security_headers(response.headers)
        assert "Strict-Transport-Security" not in response.headers, name
    assert answers["unexpected error"].json()["type"].endswith("/internal-error")
    assert "secret" not in answers["unexpected error"].text


def test_hsts_only_when_served_over_tls(app: FastAPI) -> None:
    with TestClient(app, base_url="https://kombify.example.org") as tls:
        assert tls.get("/healthz").headers["Strict-Transport-Security"] == "max-age=31536000"
    with TestClient(app, base_url="http://kombify.example.org") as plain:
        assert "Strict-Transport-Security" not in plain.get("/healthz").headers


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_are_allowed_exactly_their_own_scripts_and_assets(
    client: TestClient, page: str
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", policy)
    assert script_src is not None
    allowed = script_src.group(1).split()
    assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    for body in inline:  # each inline script runs: the browser finds its hash in the policy
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed
    assert len(allowed) == 1 + len(inline)  # 'self' and the page's own scripts, nothing else
    # Every script, style and icon the page loads is of this origin, and is served.
    for url in re.findall(r'(?:src|href)="([^"]+)"', response.text):
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url


# ---- CORS ----------------------------------------------------------------------------------


def test_no_cross_origin_access_unless_origins_are_listed(client: TestClient) -> None:
    response = client.get("/v1/stacks", headers={"Origin": "https://portal.example.org"})
    preflight = client.options(
        "/v1/stacks",
        headers={
            "Origin": "https://portal.example.org",
            "Access-Control-Request-Method": "POST",
        },
    )
    for answer in (response, preflight):
        assert not any(h.lower().startswith("access-control-") for h in answer.headers)


def test_listed_origins_get_cors_with_credentials_and_others_nothing(tmp_path: Path) -> None:
    app = _app(tmp_path, cors_origins="https://portal.example.org, http://127.0.0.1:3000/")
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {app.state.admin_token}"
        allowed = client.get("/v1/stacks", headers={"Origin": "http://127.0.0.1:3000"})
        preflight = client.options(
            "/v1/stacks",
            headers={
                "Origin": "https://portal.example.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-CSRF-Token, Content-Type",
            },
        )
        other = client.get("/v1/stacks", headers={"Origin": "https://evil.example.org"})
        other_preflight = client.options(
            "/v1/stacks",
            headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "RateLimit-Remaining" in allowed.headers["Access-Control-Expose-Headers"]
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://portal.example.org"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other_preflight.status_code == 400
    assert "Access-Control-Allow-Origin" not in other_preflight.headers


# ---- request log ---------------------------------------------------------------------------


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "kombify.requests"]


def test_one_json_line_per_request_with_the_principal_and_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kombify.requests")
    app = _app(tmp_path)
    with TestClient(app) as client:
        user_id, token = session_for(app, "alice@example.org")
        caplog.clear()
        response = client.get(
            "/v1/stacks/lab?secret=query-value",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42.a:b"},
        )
        anonymous = client.get("/v1/stacks", headers={"X-Request-ID": "bad id\twith tab"})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "trace-42.a:b"
    new_id = anonymous.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", new_id)
    signed_in, unknown = _lines(caplog)
    assert signed_in.pop("latency_ms") >= 0  # type: ignore[operator]
    assert signed_in == {
        "request_id": "trace-42.a:b",
        "method": "GET",
        "route": "/v1/stacks/{name}",
        "status": 404,
        "client": "testclient",
        "user_id": user_id,
        "org": "local",
        "via": "session",
    }
    assert unknown["request_id"] == new_id and unknown["status"] == 401
    assert "user_id" not in unknown
    assert token not in caplog.text and "query-value" not in caplog.text
    assert "lab" not in caplog.text  # the route template, not the path


def test_a_request_that_matches_no_route_is_logged_without_its_path(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kombify.requests")
    client.get("/v1/reset/a-token-in-a-path")
    (line,) = _lines(caplog)
    assert line["route"] is None and line["status"] == 404
    assert "a-token-in-a-path" not in caplog.text


def test_a_change_committed_by_the_route_is_logged_with_its_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The route's commit expires the principal's rows; the log still names the user.
    caplog.set_level(logging.INFO, logger="kombify.requests")
    app = _app(tmp_path)
    with TestClient(app) as client:
        user_id, token = session_for(app, "alice@example.org")
        caplog.clear()
        created = client.post(
            "/v1/stacks",
            json={"source": EXAMPLE.read_text()},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert created.status_code == 201, created.text
    (line,) = _lines(caplog)
    assert (line["route"], line["status"], line["user_id"]) == ("/v1/stacks", 201, user_id)
