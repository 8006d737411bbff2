"""`kombify routes STACK` as a person reads it, from the API's answer (shape recorded live)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kombify.cli import routes_cmds


def _seen(**changes: Any) -> dict[str, Any]:
    seen = {
        "answered": True,
        "deployed_revision": 1,
        "error": None,
        "https": "127.0.0.1:33025",
        "issuer": "internal",
        "proxy_node": "main",
        "proxy_service": "reverse-proxy",
        "root_ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "routes": [
            {
                "service": "notes",
                "state": "routed",
                "upstreams": ["w1:8081"],
                "url": "https://notes.lab.home.arpa",
            },
            {
                "service": "photos",
                "state": "routed",
                "upstreams": ["photos:80 on main"],
                "url": "https://photos.lab.home.arpa",
            },
        ],
        "stack": "lab",
    }
    return {**seen, **changes}


def _run(
    seen: dict[str, Any], monkeypatch: pytest.MonkeyPatch, ca: Path | None = None
) -> tuple[str, int]:
    screen = Console(width=120, no_color=True, record=True)
    monkeypatch.setattr(routes_cmds, "console", screen)
    monkeypatch.setattr(routes_cmds, "err_console", screen)

    class _Client:
        def __init__(self, _: object) -> None:
            pass

        def request(self, method: str, path: str, **_: object) -> dict[str, Any]:
            assert (method, path) == ("GET", "/v1/stacks/lab/routes")
            return seen

    monkeypatch.setattr(routes_cmds, "ApiClient", _Client)
    code = 0
    try:
        routes_cmds.routes("lab", False, ca)
    except SystemExit as exc:  # typer.Exit is a click exception, SystemExit from fail()
        code = int(exc.code or 0)
    except Exception as exc:
        code = int(getattr(exc, "exit_code", 1))
    return "\n".join(line.rstrip() for line in screen.export_text().splitlines()), code


def test_every_url_with_its_upstream_and_the_ca_saved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "lab-root.crt"
    text, code = _run(_seen(), monkeypatch, ca)
    assert code == 0
    assert text == (
        "lab: proxy `reverse-proxy` on main, HTTPS at 127.0.0.1:33025, TLS internal\n"
        "url                           service  upstream           state\n"
        "https://notes.lab.home.arpa   notes    w1:8081            routed\n"
        "https://photos.lab.home.arpa  photos   photos:80 on main  routed\n"
        f"root certificate written to {ca}"
    )
    assert ca.read_text() == _seen()["root_ca_pem"]


def test_a_route_the_proxy_lacks_fails_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = _seen()["routes"]
    routes[0] = {**routes[0], "state": "missing"}
    text, code = _run(_seen(routes=routes), monkeypatch)
    assert code == 1
    assert "https://notes.lab.home.arpa   notes    w1:8081            missing" in text


def test_an_unanswered_proxy_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [{**r, "state": "unknown"} for r in _seen()["routes"]]
    seen = _seen(answered=False, error="the proxy's node `main` is not running", routes=routes)
    text, code = _run(seen, monkeypatch)
    assert code == 1
    assert text.endswith("error: the proxy's node `main` is not running")
