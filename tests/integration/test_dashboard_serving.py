"""The web dashboard served at ``/``: its files, their caching, the SPA fallback, the policy."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import NoMatchFound

from kombify.api import dashboard
from kombify.api.app import create_app
from kombify.settings import Settings
from tests.support.ports import free_port

REPO = Path(__file__).parents[2]
REAL_BUILD = REPO / "dashboard" / "build"
BOOT = (
    '\n\t\t\t\t__sveltekit_x = { base: "" };'
    '\n\t\t\t\timport("/_app/immutable/entry/start.AbC123.js");\n\t\t\t'
)
INDEX = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kombify</title>
<link href="/_app/immutable/entry/start.AbC123.js" rel="modulepreload"></head>
<body><div style="display: contents"><script>{BOOT}</script></div></body></html>
"""
SCRIPT = "export const start = () => 'kombify dashboard';\n"


def _fake_build(root: Path) -> Path:
    (root / "_app" / "immutable" / "entry").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "_app" / "version.json").write_text('{"version":"1"}')
    (root / "_app" / "immutable" / "entry" / "start.AbC123.js").write_text(SCRIPT)
    return root


def _app(tmp_path: Path, dashboard_dir: Path | None) -> FastAPI:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'k.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        dashboard_dir=dashboard_dir,
    )
    return create_app(settings)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    return _fake_build(tmp_path / "build")


@pytest.fixture
def client(tmp_path: Path, build: Path) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path, build), raise_server_exceptions=False) as c:
        yield c


def _script_hashes(policy: str) -> list[str]:
    script_src = re.search(r"script-src ([^;]+)", policy)
    assert script_src is not None
    return script_src.group(1).split()


def _assert_page_policy_allows_its_scripts(html: str, policy: str) -> None:
    allowed = _script_hashes(policy)
    assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert inline, "the page has SvelteKit's inline bootstrap script"
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed
    assert len(allowed) == 1 + len(inline)  # 'self' and the page's own scripts only


def test_root_answers_index_html_with_a_policy_allowing_its_inline_script(
    client: TestClient,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-cache"
    policy = response.headers["Content-Security-Policy"]
    _assert_page_policy_allows_its_scripts(response.text, policy)
    # The gateway's headers are on the page too.
    assert response.headers["X-Frame-Options"] == "DENY"


def test_immutable_assets_are_cached_for_a_year_and_other_files_revalidated(
    client: TestClient,
) -> None:
    asset = client.get("/_app/immutable/entry/start.AbC123.js")
    assert asset.status_code == 200 and asset.text == SCRIPT
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    for path in ("/favicon.svg", "/_app/version.json"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-cache", path
    assert client.head("/_app/immutable/entry/start.AbC123.js").status_code == 200


def test_app_paths_fall_back_to_index_html(client: TestClient) -> None:
    for path in ("/stacks", "/stacks/x", "/login?next=/stacks", "/account/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text == INDEX, path
        assert response.headers["Cache-Control"] == "no-cache"
        assert "sha256-" in response.headers["Content-Security-Policy"]


def test_a_missing_asset_is_a_404_not_the_page(client: TestClient) -> None:
    response = client.get("/_app/immutable/entry/gone.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_api_paths_and_other_methods_keep_their_problem_answers(
    client: TestClient,
) -> None:
    for path in ("/v1/nope", "/v1", "/docs/nope", "/healthz/x", "/.well-known/nope"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json", path
        assert response.json()["type"].endswith("/http-404"), path
    # Only GET and HEAD are the dashboard's: a POST anywhere else is the API's 404 as before.
    posted = client.post("/stacks/x", json={})
    assert posted.status_code == 404
    assert posted.headers["content-type"] == "application/problem+json"
    # A route of the API still says which methods it has.
    wrong = client.get("/v1/auth/login")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    # The API's own pages are not shadowed.
    assert client.get("/healthz").json()
    assert "swagger" in client.get("/docs").text.lower()


def test_dashboard_requests_are_logged_by_route_not_path(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kombify.requests")
    client.get("/stacks/a-name-in-a-path")
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kombify.requests"]
    assert (line["route"], line["status"]) == ("/{dashboard}", 200)
    assert "a-name-in-a-path" not in caplog.text


def test_url_for_an_unknown_name_still_says_no_route_matched(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    with pytest.raises(NoMatchFound):
        app.url_path_for("no-such-route")


@pytest.mark.parametrize(
    "path",
    [
        "/_app/../../pyproject.toml",
        "/_app/%2e%2e/%2e%2e/pyproject.toml",
        "/_app/%2E%2E/%2E%2E/pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/_app/..%2f..%2fpyproject.toml",
        "/_app/..%5c..%5cpyproject.toml",
        "/..%2fsecret.txt",
        "/_app/immutable/%00.js",
    ],
)
def test_paths_out_of_the_build_are_refused(
    tmp_path: Path, build: Path, client: TestClient, path: str
) -> None:
    # A file beside the build, one folder up, that a traversal would reach.
    (build.parent / "pyproject.toml").write_text("[project]\nname = 'beside-the-build'\n")
    (build.parent / "secret.txt").write_text("beside-the-build")
    response = client.get(path)
    assert "beside-the-build" not in response.text, path
    if response.status_code == 200:  # the client normalised the dots away: the app's page
        assert response.text == INDEX, path
    else:
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json", path


def test_traversal_is_refused_below_the_http_client(tmp_path: Path, build: Path) -> None:
    # Raw paths as a server hands them over, without any client normalising them.
    (build.parent / "pyproject.toml").write_text("secret")
    served = dashboard.Dashboard(build)
    for raw in ("/_app/../../pyproject.toml", "/../pyproject.toml", "/_app/..\\..\\x", "/a\x00"):
        assert served.file_for(raw) is None, raw
    # A symlink inside the build that points out of it is not followed out.
    (build / "_app" / "link.txt").symlink_to(build.parent / "pyproject.toml")
    assert served.file_for("/_app/link.txt") is None
    assert served.file_for("/favicon.svg") == (build / "favicon.svg").resolve()


async def _raw_get(app: FastAPI, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as given, as a server that does not normalise it would pass it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8420),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_raw_dot_segments_through_the_whole_app_are_refused(
    tmp_path: Path, build: Path
) -> None:
    (build.parent / "pyproject.toml").write_text("beside-the-build")
    app = _app(tmp_path, build)
    for path in ("/_app/../../pyproject.toml", "/../pyproject.toml", "/_app/./../index.html"):
        status, body = await _raw_get(app, path)
        assert status == 404, path
        assert b"beside-the-build" not in body and b"<html" not in body, path


def test_without_a_build_every_dashboard_path_says_how_to_build_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-build-here"
    with TestClient(_app(tmp_path, missing), raise_server_exceptions=False) as c:
        for path in ("/", "/stacks"):
            response = c.get(path)
            assert response.status_code == 503, path
            assert response.headers["content-type"].startswith("text/html")
            assert "The dashboard is not built" in response.text
            assert "scripts/build-dashboard.sh" in response.text
            assert str(missing) in response.text
        assert c.get("/v1/nope").status_code == 404


def test_kombify_dashboard_dir_overrides_the_build_location(
    tmp_path: Path, build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOMBIFY_DASHBOARD_DIR", str(build))
    assert dashboard.build_dir(Settings()) == build
    monkeypatch.delenv("KOMBIFY_DASHBOARD_DIR")
    assert dashboard.build_dir(Settings()) == REAL_BUILD


@pytest.mark.skipif(
    not (REAL_BUILD / "index.html").is_file(),
    reason="dashboard/build is made by scripts/build-dashboard.sh (needs Node.js and npm)",
)
def test_the_real_build_is_served_with_its_scripts_allowed(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path, None), raise_server_exceptions=False) as c:
        page = c.get("/stacks")
        assert page.status_code == 200
        _assert_page_policy_allows_its_scripts(page.text, page.headers["Content-Security-Policy"])
        # Every script and style the page loads is of this origin, served, cached for good.
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        urls += re.findall(r'import\("([^"]+)"\)', page.text)
        assets = [u for u in urls if u.startswith("/_app/immutable/")]
        assert assets
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            assert c.get(url).status_code == 200, url
        for url in assets:
            assert c.get(url).headers["Cache-Control"] == dashboard.IMMUTABLE, url
