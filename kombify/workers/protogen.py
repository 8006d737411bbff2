"""Generates the gRPC/protobuf Python modules from ``proto/`` into ``kombify/_generated``.

Generated code is built, never committed or hand-edited. ``scripts/bootstrap.sh`` runs this on
every set-up (the build step); nothing runs it at import time. It rewrites only when a .proto
file (or this generator) changed.

Layout: protoc runs with ``-I proto``, so ``proto/kombify/agent/v1/agent.proto`` becomes
``kombify/_generated/kombify/agent/v1/agent_pb2.py``. The proto package stays
``kombify.agent.v1`` (it names the RPCs on the wire, ``/kombify.agent.v1.Agent/Health``, and
matches the directory as buf expects), but protoc's own Python imports would then read
``from kombify.agent.v1 import agent_pb2``, which resolves inside the real ``kombify``
package. Rather than putting ``_generated`` on ``sys.path`` (two packages named ``kombify``
shadowing each other), the generator rewrites those imports to the real module path,
``kombify._generated.kombify.agent.v1``, so the generated code is an ordinary subpackage.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "kombify" / "_generated"
GENERATED_PACKAGE = "kombify._generated"

# Top-level proto packages of ours; imports of google.protobuf etc. are left alone.
_OWN_ROOTS = ("kombify",)
_IMPORT_RE = re.compile(rf"^(from|import) ((?:{'|'.join(_OWN_ROOTS)})\.[\w.]*\w)\b", re.MULTILINE)
# grpclib's plugin also spells generated modules out in full where it uses them
# (`kombify.agent.v1.agent_pb2.HealthRequest`); those need the same new prefix.
_MODULE_REF_RE = re.compile(rf"(?<![\w.])((?:{'|'.join(_OWN_ROOTS)})\.[\w.]*_pb2)\b")


def _fingerprint(protos: list[Path]) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for proto in protos:
        digest.update(str(proto.relative_to(PROTO_DIR)).encode())
        digest.update(proto.read_bytes())
    return digest.hexdigest()


def _postprocess(path: Path) -> None:
    text = path.read_text()
    fixed = _IMPORT_RE.sub(lambda m: f"{m.group(1)} {GENERATED_PACKAGE}.{m.group(2)}", text)
    fixed = _MODULE_REF_RE.sub(
        lambda m: m.group(1)
        if m.group(1).startswith(GENERATED_PACKAGE)  # an import the line above rewrote
        else f"{GENERATED_PACKAGE}.{m.group(1)}",
        fixed,
    )
    # mypy follows imports into excluded directories too; protoc's stubs are not --strict
    # clean (bare Mapping), and we do not edit generated code beyond this header.
    path.write_text("# mypy: ignore-errors\n" + fixed)


def generate(*, force: bool = False) -> list[Path]:
    """Compiles every .proto under ``proto/`` into ``kombify/_generated``.

    Args:
        force: Regenerate even when the output is up to date.

    Returns:
        The sources compiled; empty when the output was already up to date.

    Raises:
        RuntimeError: protoc rejected a source file.
    """
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    if not protos:
        # A copy without the sources (the node agent's bundle, imported from a zip): the
        # generated code shipped with it is all there is.
        return []
    stamp = OUT_DIR / ".stamp"
    want = _fingerprint(protos)
    if not force and stamp.exists() and stamp.read_text() == want:
        return []
    # Several processes (test workers, a server and the CLI) may find the output stale at once;
    # the lock lets one regenerate while the others wait and then see a fresh stamp.
    # The lock lives outside the tree so it is neither committed nor removed with the output.
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"kombify-protogen-{tag}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stamp.exists() and stamp.read_text() == want:
            return []
        _compile(protos)
        stamp.write_text(want)
    return protos


def _compile(protos: list[Path]) -> None:
    # grpc_tools is a dev dependency, only needed when regenerating; it ships no type hints.
    from grpc_tools import protoc  # type: ignore[import-untyped]

    # A clean slate, so modules of deleted protos or an older layout cannot linger.
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    # grpclib's code generator is a console script installed beside this interpreter.
    grpclib_plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={OUT_DIR}",
        f"--pyi_out={OUT_DIR}",
        f"--grpc_python_out={OUT_DIR}",  # grpcio stubs: the control plane's client
        # grpclib: the agent's server, pure Python, so the bundle runs on any CPU (see
        # kombify/agent/server.py).
        f"--plugin=protoc-gen-grpclib_python={grpclib_plugin}",
        f"--grpclib_python_out={OUT_DIR}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {', '.join(str(p) for p in protos)}")
    for module in [*OUT_DIR.rglob("*.py"), *OUT_DIR.rglob("*.pyi")]:
        _postprocess(module)
    for pkg_dir in [OUT_DIR, *[d for d in OUT_DIR.rglob("*") if d.is_dir()]]:
        (pkg_dir / "__init__.py").touch()


if __name__ == "__main__":
    done = generate(force="--force" in sys.argv)
    sys.stdout.write(f"generated {len(done)} proto file(s)\n")
