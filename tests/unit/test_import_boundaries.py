"""What a module pulls in when imported: the CLI without the web framework, no protoc at import."""

from __future__ import annotations

import subprocess
import sys


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
