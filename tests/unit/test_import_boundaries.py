"""What a module pulls in when imported: the CLI without the web framework, no protoc at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _loaded(imports: str, modules: list[str]) -> dict[str, bool]:
    code = (
        f"import sys\n{imports}\n"
        f"print(' '.join(str(m in sys.modules) for m in {modules!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return dict(zip(modules, (word == "True" for word in out), strict=True))


def test_the_cli_talks_to_the_api_without_loading_fastapi() -> None:
    loaded = _loaded(
        "import kombify.cli.main, kombify.cli.api_client, kombify.cli.deploy_cmds",
        ["fastapi", "starlette"],
    )
    assert loaded == {"fastapi": False, "starlette": False}


def test_importing_the_agent_protocol_never_runs_the_generator() -> None:
    loaded = _loaded("import kombify.agent.proto", ["kombify.workers.protogen", "grpc_tools"])
    assert loaded == {"kombify.workers.protogen": False, "grpc_tools": False}


def test_activities_and_lower_layers_never_import_workflows() -> None:
    # Workflows decide and import downward (contracts, activity names); the layers that act
    # share their types with them through kombify.contracts, never by importing upward.
    root = Path(__file__).resolve().parents[2] / "kombify"
    upward = [
        f"{path.relative_to(root.parent)}:{number}"
        for layer in ("activities", "agent", "sim", "db", "tofu", "unifier", "contracts")
        for path in sorted((root / layer).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("from kombify.workflows", "import kombify.workflows"))
    ]
    assert upward == []


@pytest.mark.parametrize(
    "module", ["kombify.stackkits", "kombify.stackkits.library", "kombify.specs", "kombify.unifier"]
)
def test_each_package_imports_first(module: str) -> None:
    # Whichever package a process imports first (no import cycle that only works in one order).
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
