"""/readyz names the tools kombify fronts, whether they answer, without depending on them."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.settings import Settings
from tests.support.ports import free_port


@pytest.fixture
def tool_port() -> Iterator[int]:
    """A loopback HTTP server standing in for a fronted tool."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_readyz_reports_each_tool(tmp_path: Path, tool_port: int) -> None:
    down = free_port()
    settings = Settings(
        home=tmp_path,
        temporal_address=f"127.0.0.1:{free_port()}",
        tools=f"stack=http://127.0.0.1:{tool_port},sim=http://127.0.0.1:{down}",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        body = client.get("/readyz").json()
    checks = body["checks"]
    assert checks["tool/stack"]["ok"] is True and checks["tool/stack"]["required"] is False
    assert checks["tool/sim"]["ok"] is False and checks["tool/sim"]["error"]
    # Not ready because Temporal is down here, never because of a tool.
    assert "temporal" in body["detail"] and "tool" not in body["detail"]
