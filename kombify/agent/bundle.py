"""The agent bundle: everything the node agent imports, packed from the control host.

Homelabs can be air-gapped, so nothing is installed on a node from the internet. The bundle
is found by importing the agent's entry point in a clean interpreter and collecting every
package that import loaded (kombify's own modules and their compiled dependencies such as
grpcio and cryptography). Nodes run the same Python minor version as the control host
(CPython 3.11 on Debian 12 and on the simulated nodes), so compiled wheels work as they are.

Layout of the unpacked bundle (``PYTHONPATH=<dir>/lib.zip:<dir>/native``):

``lib.zip``
    Every package, with unchecked-hash bytecode beside each source, imported by
    :mod:`zipimport`. One file instead of hundreds: unpacking cost is per file on a node
    (about 1 ms each on the simulated ones, measured), and the agent imports ~600 files.
``native/``
    Packages whose callers open their data files by path (certifi's CA bundle), which a zip
    cannot offer.

There is no compiled code in it (see ``_SKIP_SUFFIXES``): the agent serves gRPC with
grpclib, which is pure Python, and the whole bundle is about 2.3 MB (measured).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import py_compile
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kombify.errors import ConfigError

# `docker` too: the agent imports it on a thread once it serves (server._docker_client_soon).
_PROBE = (
    "import json, sys, kombify.agent.__main__, kombify.agent.server, docker; "
    "files = {getattr(m, '__file__', None) or '' for m in list(sys.modules.values())}; "
    "print(json.dumps(sorted(files)))"
)
# Compiled extensions are left out: they are built for the control host's CPU, and every
# package the agent imports falls back to pure Python without them (protobuf, multidict,
# charset_normalizer), so one bundle runs on x86 and ARM nodes alike.
_SKIP_SUFFIXES = (".pyc", ".so", ".pyi")
# Of kombify itself only the agent's side travels (the control plane's modules are most of the
# package and would double the copy to every node): the modules the import loaded, and the
# agent's own packages whole, for the imports it makes later inside functions.
_OWN_PACKAGE = "kombify"
_OWN_WHOLE = ("kombify/agent/", "kombify/_generated/")
# Packages whose callers open their data files by path (certifi.where()), which a zip lacks.
_NEEDS_REAL_FILES = ("certifi",)
# Bumped whenever the layout inside the tarball changes, so the digest (the version) does too.
_LAYOUT = b"lib.zip+native/2"
ZIP_NAME = "lib.zip"
VERSION_MODULE = "kombify/_bundle_version.py"
NATIVE_DIR = "native"
# Loaded on the control host by tooling around the import, never used by a running agent:
# the editable-install hook, code generation (the bundle carries generated code) and the CLI.
_NOT_NEEDED = ("__editable__", "_distutils_hack", "grpc_tools", "click", "rich", "pygments")


@dataclass(frozen=True)
class AgentBundle:
    """A packed agent: the tarball and the digest that names its version."""

    path: Path
    digest: str

    @property
    def version(self) -> str:
        """Short form of the digest, shown to people and stored on the node."""
        return self.digest[:16]


def _roots() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    kombify_parent = Path(__file__).resolve().parents[2]
    return [Path(p).resolve() for p in paths] + [kombify_parent]


@dataclass(frozen=True)
class _Loaded:
    """What the agent's import loaded: its top-level packages and every module file."""

    tops: list[Path]
    files: frozenset[Path]


def _top_levels(files: list[str]) -> _Loaded:
    """The top-level packages (directories) or modules (files) the loaded files belong to."""
    roots = _roots()
    tops: set[Path] = set()
    loaded: set[Path] = set()
    for name in files:
        if not name:
            continue
        path = Path(name).resolve()
        for root in roots:
            if path.is_relative_to(root):
                first = path.relative_to(root).parts[0]
                if not first.startswith(_NOT_NEEDED):
                    tops.add(root / first)
                    loaded.add(path)
                break
    return _Loaded(tops=sorted(tops), files=frozenset(loaded))


def _files(top: Path, loaded: frozenset[Path] = frozenset()) -> list[Path]:
    if top.is_file():
        return [top]
    own = top.name == _OWN_PACKAGE
    return sorted(
        p
        for p in top.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in _SKIP_SUFFIXES
        and (not own or p in loaded or _agent_side(p.relative_to(top.parent)))
    )


def _agent_side(relative: Path) -> bool:
    return relative.suffix == ".py" and relative.as_posix().startswith(_OWN_WHOLE)


def loaded_packages() -> _Loaded:
    """What the agent imports, as top-level package paths and module files on this host."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise ConfigError(
            f"cannot import the node agent to bundle it: {exc.stderr[-500:]}"
        ) from exc
    return _top_levels(json.loads(out))


def _needs_real_files(top: Path) -> bool:
    """Whether a top-level package must be unpacked rather than imported from the zip."""
    return top.name.startswith(_NEEDS_REAL_FILES)


def _compiled(file: Path, arcname: str, scratch: Path) -> bytes | None:
    """Unchecked-hash bytecode of ``file``, or None for a module that never imports on 3.11.

    Unchecked: each unpacked bundle is immutable (one directory per digest), so Python may
    trust the bytecode without comparing sources, and the files carry no timestamps. Nodes
    run the control host's Python minor version, so the magic number matches.
    """
    target = scratch / "module.pyc"
    try:
        py_compile.compile(
            str(file),
            cfile=str(target),
            dfile=arcname,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError:
        return None  # e.g. a py2 leftover in a package
    return target.read_bytes()


def _add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def control_version() -> str:
    """kombify's version on this (control) host, which the bundle carries to the node."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kombify")
    except PackageNotFoundError:
        return "0.0.0"


def _pure_zip(members: list[tuple[str, Path]], scratch: Path, version: str) -> bytes:
    """The pure-Python packages as one zip: sources, bytecode beside them (zipimport looks
    for ``module.pyc`` there, not in ``__pycache__``) and data files. Stored, not deflated:
    the tarball around it is compressed anyway, and stored members import faster.
    """
    buffer = io.BytesIO()
    # Directory entries too: zipimport finds namespace packages (``google``, which has no
    # __init__.py) only by them.
    dirs = sorted({str(parent) for name, _ in members for parent in Path(name).parents} - {"."})
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in dirs:
            archive.writestr(_zip_info(f"{name}/"), b"")
        for arcname, file in members:
            archive.writestr(_zip_info(arcname), file.read_bytes())
            if file.suffix == ".py" and (code := _compiled(file, arcname, scratch)) is not None:
                archive.writestr(_zip_info(arcname + "c"), code)
        # A node has no package metadata: the version travels as a module of its own.
        archive.writestr(_zip_info(VERSION_MODULE), f"VERSION = {version!r}\n".encode())
    return buffer.getvalue()


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
    if arcname.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10  # a directory, for unzip as for Python
    else:
        info.external_attr = 0o644 << 16
    return info


def _pack(members: list[tuple[str, Path, bool]], target: Path, version: str) -> None:
    """Write the tarball: ``lib.zip`` plus ``native/`` (see the module docstring)."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        tarfile.open(
            target,
            mode="w:gz",
            compresslevel=6,  # 13 % smaller than level 1 for 0.1 s more, once per version
        ) as tar,
    ):
        pure = [(arcname, file) for arcname, file, native in members if not native]
        _add_bytes(tar, ZIP_NAME, _pure_zip(pure, Path(scratch), version))
        for arcname, file, native in members:
            if not native:
                continue
            name = f"{NATIVE_DIR}/{arcname}"
            info = tar.gettarinfo(str(file), name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with file.open("rb") as fh:
                tar.addfile(info, fh)
            if file.suffix == ".py" and (code := _compiled(file, name, Path(scratch))) is not None:
                _add_bytes(tar, importlib.util.cache_from_source(name), code)


def build_bundle(cache_dir: Path) -> AgentBundle:
    """Pack the agent into ``cache_dir`` (reused when its content is unchanged)."""
    members: list[tuple[str, Path, bool]] = []
    loaded = loaded_packages()
    for top in loaded.tops:
        native = _needs_real_files(top)
        for file in _files(top, loaded.files):
            members.append((str(file.relative_to(top.parent)), file, native))
    members.sort()
    digest = hashlib.sha256(_LAYOUT)
    for arcname, file, native in members:
        digest.update(arcname.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
        digest.update(b"native" if native else b"pure")
    version = control_version()
    digest.update(b"version\0" + version.encode())
    hexdigest = digest.hexdigest()
    path = cache_dir / f"agent-{hexdigest[:16]}.tar.gz"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        _pack(members, tmp, version)
        tmp.replace(path)
    return AgentBundle(path=path, digest=hexdigest)


def python_path(unpacked: str) -> str:
    """The ``PYTHONPATH`` that runs the agent from a bundle unpacked at ``unpacked``."""
    return f"{unpacked}/{ZIP_NAME}:{unpacked}/{NATIVE_DIR}"
