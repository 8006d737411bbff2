"""The agent bundle is all a node needs: unpacked anywhere, it serves without site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kombify.agent.bundle import NATIVE_DIR, ZIP_NAME, build_bundle, control_version, python_path
from tests.support.agent import Pki, agent_process
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = build_bundle(tmp_path_factory.mktemp("cache"))
    target = tmp_path_factory.mktemp("node") / bundle.version
    target.mkdir()
    with tarfile.open(bundle.path) as tar:
        tar.extractall(target, filter="data")
    return target


def _isolated_env(unpacked: Path) -> dict[str, str]:
    # -S below drops site-packages (where kombify and its dependencies are installed here),
    # so only the bundle and the standard library can satisfy an import, as on a node.
    return {"PATH": os.environ["PATH"], "PYTHONPATH": python_path(str(unpacked))}


def test_few_files_no_compiled_code(unpacked: Path) -> None:
    files = [p for p in unpacked.rglob("*") if p.is_file()]
    names = {p.relative_to(unpacked).parts[0] for p in files}
    assert names == {ZIP_NAME, NATIVE_DIR}
    # Unpacking costs per file on a node; the packages travel as one zip.
    assert len(files) < 50
    assert [p for p in files if p.suffix == ".so"] == []
    with zipfile.ZipFile(unpacked / ZIP_NAME) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {"kombify", "grpclib", "h2", "google", "docker"} <= tops
    assert not tops & {"grpc", "cryptography"}


def test_imports_come_from_the_bundle(unpacked: Path) -> None:
    probe = (
        "import sys, kombify.agent.__main__, kombify.agent.server, docker; "
        "print('\\n'.join(sorted({getattr(m, '__file__', None) or '' for m in "
        "list(sys.modules.values())})))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env=_isolated_env(unpacked),
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.split()
    stdlib = Path(os.__file__).parent
    outside = [f for f in out if not f.startswith((str(unpacked), str(stdlib)))]
    assert outside == []
    assert any(f.startswith(str(unpacked / ZIP_NAME) + "/kombify/agent/") for f in out)
    # No compiled code: the same bundle must run on an ARM node.
    assert [f for f in out if f.startswith(str(unpacked)) and f.endswith(".so")] == []


def test_the_bundle_knows_kombifys_version(unpacked: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import kombify; print(kombify.__version__)"],
        env=_isolated_env(unpacked),
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    assert out == control_version() != "0.0.0"


@pytest.mark.docker
async def test_agent_from_the_bundle_serves(unpacked: Path, pki: Pki, tmp_path: Path) -> None:
    node = "node-bundle.test.kombify"
    async with agent_process(
        pki,
        tmp_path,
        node=node,
        port=free_port(),
        python_flags=["-S"],  # as on a node: no site-packages
        env=_isolated_env(unpacked),
        cwd="/",
    ) as reply:
        assert reply.node_identity == node
        assert reply.docker_ok


def test_only_the_agent_side_of_kombify_travels(unpacked: Path) -> None:
    """The control plane's modules stay home: they are most of the package."""
    with zipfile.ZipFile(unpacked / ZIP_NAME) as archive:
        names = set(archive.namelist())
    own = {n for n in names if n.startswith("kombify/") and n.endswith(".py")}
    assert "kombify/errors.py" in own
    assert not {n for n in own if n.startswith(("kombify/workflows/", "kombify/api/"))}
    assert not {n for n in names if n.endswith(".pyi")}
    # Every agent module travels, also those the agent imports only inside functions.
    agent_dir = Path(__file__).resolve().parents[3] / "kombify" / "agent"
    assert {f"kombify/agent/{p.name}" for p in agent_dir.glob("*.py")} <= own


def test_every_agent_module_imports_from_the_bundle(unpacked: Path) -> None:
    """What the agent imports late (inside functions) must be importable on a node too."""
    agent_dir = Path(__file__).resolve().parents[3] / "kombify" / "agent"
    # client and bundle run on the control host only (they need the PKI and the packer).
    modules = sorted(
        f"kombify.agent.{p.stem}"
        for p in agent_dir.glob("*.py")
        if p.stem not in ("__init__", "__main__", "client", "bundle")
    )
    probe = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    subprocess.run(
        [sys.executable, "-S", "-c", probe, *modules],
        env=_isolated_env(unpacked),
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
