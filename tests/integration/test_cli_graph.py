"""``kombify graph STACK`` as a user runs it, against a served API (never-deployed stack)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kombify.api.app import create_app
from kombify.operate.graph import build_graph, to_mermaid
from kombify.settings import Settings
from kombify.specs import load_kombination
from tests.support.ports import free_port
from tests.support.served_api import run_cli, served

EXAMPLE = Path(__file__).parents[1] / "data" / "spec" / "examples" / "cloud-hybrid.yaml"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    settings = Settings(home=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")
    app = create_app(settings)
    with served(app) as url:
        token = {"Authorization": f"Bearer {app.state.admin_token}"}
        made = httpx.post(f"{url}/v1/stacks", json={"source": EXAMPLE.read_text()}, headers=token)
        assert made.status_code == 201, made.text
        yield tmp_path, url


def test_mermaid_is_the_default_and_matches_the_graph(api: tuple[Path, str]) -> None:
    home, url = api
    done = run_cli(home, url, "graph", "hybrid")

    assert done.returncode == 0, done.stderr
    k = load_kombination(EXAMPLE.read_text())
    graph = build_graph(k, revision=1, source="current", deployed=False, observed=None)
    assert done.stdout == to_mermaid(graph)
    assert '<-.->|"wireguard"|' in done.stdout and done.stderr == ""


def test_json_svg_to_a_file_and_errors(api: tuple[Path, str], tmp_path: Path) -> None:
    home, url = api
    as_json = run_cli(home, url, "graph", "hybrid", "--json", "--no-live")
    assert as_json.returncode == 0, as_json.stderr
    graph = json.loads(as_json.stdout)
    assert graph["version"] == 1 and graph["vpn"]["provider"] == "wireguard"

    target = tmp_path / "hybrid.svg"
    drawn = run_cli(home, url, "graph", "hybrid", "--format", "svg", "-o", str(target))
    assert drawn.returncode == 0 and drawn.stdout == ""
    texts = {t.text for t in ET.parse(target).iter("{http://www.w3.org/2000/svg}text")}
    assert {"home (main, local)", "edge (edge, hetzner)", "monitoring"} <= texts

    missing = run_cli(home, url, "graph", "nope")
    assert missing.returncode == 1 and missing.stderr == "error: no stack named `nope`\n"
    bad = run_cli(home, url, "graph", "hybrid", "--format", "png")
    assert bad.returncode == 2 and "png" in bad.stderr
