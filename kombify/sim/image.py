"""Building KombiSim's images offline: the node image and the tiny test httpd image.

The node image is built in two stages so that a recipe change rebuilds in seconds:

1. a *base* image ``kombify/sim-base:<hash>``: a Debian root filesystem with the node packages,
   made by ``debootstrap`` (tarball cached under the shared cache directory) and ``docker
   import``-ed, or, where the engine can pull, ``debian:<suite>`` plus ``apt-get install``;
2. the *node* image ``kombify/sim-node:<version>-<hash>``: ``docker build`` on top of the base
   (a local image, so nothing is pulled) adding the boot script, the sshd settings and the
   per-image setup from :mod:`kombify.sim.bootfiles`.

Both tags carry a hash of everything that shapes them, so an existing tag is always current
and a second :func:`ensure_node_image` returns at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

import kombify
from kombify.errors import ConfigError, DockerError
from kombify.sim import bootfiles

log = logging.getLogger(__name__)

NODE_REPOSITORY = "kombify/sim-node"
BASE_REPOSITORY = "kombify/sim-base"
HTTPD_IMAGE = "kombify-test/httpd:1"
CADDY_IMAGE = "kombify-test/caddy:2"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
NODE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",
    "docker.io",
    "iproute2",
    "sudo",
    "ca-certificates",
    # small conveniences an operator expects on a server; cheap next to docker.io
    "procps",
    "curl",
    # mDNS on the simulation's LAN (started for `local` nodes only): `<node>.local` resolves
    # through nss-mdns; avahi-utils (avahi-resolve, avahi-browse) talk to it over D-Bus.
    "avahi-daemon",
    "avahi-utils",
    "libnss-mdns",
    "dbus",
    # A WireGuard mesh between nodes (kombify/agent/vpn.py): the kernel here has no WireGuard
    # module, so the userspace implementation on /dev/net/tun; iptables makes a home node
    # refuse connections from the simulated internet (NAT, see kombify/sim/internet.py).
    "wireguard-go",
    "wireguard-tools",
    "iptables",
)
LABEL_RECIPE = "io.kombify.sim.recipe"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodeImageRecipe:
    """What the node image is made of; its hash names the image.

    Attributes:
        suite: Debian suite of the root filesystem.
        packages: Packages installed on top of debootstrap's ``minbase`` variant.
        mirror: Debian mirror debootstrap downloads from (not part of the hash: any mirror
            serves the same packages).
    """

    suite: str = "bookworm"
    packages: tuple[str, ...] = NODE_PACKAGES
    mirror: str = field(default=DEFAULT_MIRROR, compare=False)

    def base_hash(self) -> str:
        """Hash of what the base root filesystem holds."""
        return _digest({"suite": self.suite, "packages": sorted(self.packages)})

    def node_hash(self) -> str:
        """Hash of the whole recipe: base plus every file added on top."""
        return _digest(
            {
                "base": self.base_hash(),
                "init": bootfiles.NODE_INIT,
                "supervisor": bootfiles.AGENT_SUPERVISOR,
                "sshd": bootfiles.SSHD_CONFIG,
                "setup": bootfiles.SETUP,
                "dockerfile": bootfiles.DOCKERFILE,
            }
        )

    @property
    def base_tag(self) -> str:
        """Tag of the base image."""
        return f"{BASE_REPOSITORY}:{self.suite}-{self.base_hash()}"

    @property
    def node_tag(self) -> str:
        """Tag of the node image: kombify's version plus the recipe hash."""
        return f"{NODE_REPOSITORY}:{_tag_safe(kombify.__version__)}-{self.node_hash()}"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def _tag_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def cache_dir() -> Path:
    """Where root filesystem tarballs are kept, shared by every ``KOMBIFY_HOME``.

    It follows ``XDG_CACHE_HOME`` rather than ``KOMBIFY_HOME`` so that tests, which use a fresh
    home each, still reuse one debootstrap download.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "kombify" / "sim"
    path.mkdir(parents=True, exist_ok=True)
    return path


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (it is known to be reachable), or the default."""
    candidates: list[Path] = [sources_dir / "sources.list"]
    listing = sources_dir / "sources.list.d"
    if listing.is_dir():
        candidates += sorted(listing.glob("*.list")) + sorted(listing.glob("*.sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for found in re.findall(r"(https?://\S+)", text):
            url = str(found).rstrip("/")
            if url.endswith("/debian") and "security" not in url:
                return url
    return DEFAULT_MIRROR


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """Serialise builds across processes (two test sessions, a CLI and a worker)."""
    lock_path = cache_dir() / f"{name}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise DockerError(f"cannot inspect image `{tag}`: {exc}") from exc
    return True


def ensure_node_image(
    client: Any,
    *,
    recipe: NodeImageRecipe | None = None,
    progress: Progress | None = None,
) -> str:
    """Make sure the node image exists and return its tag; builds it when missing.

    Args:
        client: A ``docker.DockerClient``.
        recipe: What to build; default: bookworm with :data:`NODE_PACKAGES`, from this
            machine's apt mirror.
        progress: Called with one short line per build step (for a CLI status line).

    Returns:
        The image tag, e.g. ``kombify/sim-node:0.1.0-0123456789ab``.

    Raises:
        DockerError: The engine failed a step.
        ConfigError: No way to build here (not root for debootstrap, and no pull).
    """
    recipe = recipe or NodeImageRecipe(mirror=apt_mirror())
    if _image_exists(client, recipe.node_tag):
        return recipe.node_tag
    say = progress or (lambda _line: None)
    with _build_lock("node-image"):
        if _image_exists(client, recipe.node_tag):  # another process built it meanwhile
            return recipe.node_tag
        if not _image_exists(client, recipe.base_tag):
            _build_base(client, recipe, say)
        say(f"building {recipe.node_tag}")
        _build_node(client, recipe)
    return recipe.node_tag


def _build_base(client: Any, recipe: NodeImageRecipe, say: Progress) -> None:
    if _image_exists(client, f"debian:{recipe.suite}") or not _can_debootstrap():
        # An engine that already has (or can pull) debian gets the Dockerfile path.
        if _try_pull_base(client, recipe, say):
            return
    if not _can_debootstrap():
        raise ConfigError(
            "cannot build the node image: the engine cannot pull `debian:"
            f"{recipe.suite}` and debootstrap needs root and the `debootstrap` package "
            "(scripts/ensure-sim-tools.sh installs it)"
        )
    tarball = _rootfs_tarball(recipe, say)
    say(f"importing {tarball.name} as {recipe.base_tag}")
    repository, tag = recipe.base_tag.split(":", 1)
    try:
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    except docker.errors.APIError as exc:
        raise DockerError(f"docker import of {tarball} failed: {exc}") from exc


def _can_debootstrap() -> bool:
    return os.geteuid() == 0 and shutil.which("debootstrap") is not None


def _try_pull_base(client: Any, recipe: NodeImageRecipe, say: Progress) -> bool:
    """The Dockerfile path: ``FROM debian:<suite>`` plus apt-get; False when it cannot pull."""
    source = f"debian:{recipe.suite}"
    if not _image_exists(client, source):
        say(f"pulling {source}")
        try:
            client.images.pull("debian", tag=recipe.suite)
        except docker.errors.DockerException as exc:
            log.info("cannot pull %s (%s); using debootstrap", source, exc)
            return False
    say(f"building {recipe.base_tag} from {source}")
    dockerfile = bootfiles.PULL_BASE_DOCKERFILE.format(
        suite=recipe.suite, packages=" ".join(recipe.packages)
    )
    _docker_build(client, {"Dockerfile": dockerfile}, recipe.base_tag)
    return True


def _rootfs_tarball(recipe: NodeImageRecipe, say: Progress) -> Path:
    """The debootstrap root filesystem as a tarball, cached by the base hash."""
    tarball = cache_dir() / f"rootfs-{recipe.suite}-{recipe.base_hash()}.tar"
    if tarball.exists():
        return tarball
    workdir = Path(tempfile.mkdtemp(prefix="kombify-rootfs-", dir=cache_dir()))
    rootfs = workdir / "rootfs"
    try:
        say(f"debootstrap {recipe.suite} from {recipe.mirror} (about a minute)")
        started = time.monotonic()
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(recipe.packages)}",
                recipe.suite,
                str(rootfs),
                recipe.mirror,
            ]
        )
        log.info("debootstrap took %.1f s", time.monotonic() - started)
        # Package caches are large and useless in an image; apt-get update refills lists.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return tarball


def _run(command: list[str]) -> None:
    try:
        # A root filesystem is read by every user of the image, whatever the umask of the
        # kombify process building it (its worker runs with a private one).
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, umask=0o022
        )
    except OSError as exc:
        raise DockerError(f"`{command[0]}` could not run: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise DockerError(f"`{' '.join(command)}` exited {result.returncode}:\n{tail}")


def _build_node(client: Any, recipe: NodeImageRecipe) -> None:
    files = {
        "Dockerfile": bootfiles.DOCKERFILE.format(base=recipe.base_tag),
        "kombify-node-init": bootfiles.NODE_INIT,
        "kombify-agent-supervisor": bootfiles.AGENT_SUPERVISOR,
        "sshd-kombify.conf": bootfiles.SSHD_CONFIG,
        "setup.sh": bootfiles.SETUP,
    }
    _docker_build(client, files, recipe.node_tag, labels={LABEL_RECIPE: recipe.node_hash()})


def _docker_build(
    client: Any, files: dict[str, str], tag: str, *, labels: dict[str, str] | None = None
) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(("init", ".sh")) else 0o644
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        client.images.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            labels=labels or {},
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)[-2000:]
        raise DockerError(f"building `{tag}` failed: {exc.msg}\n{tail}") from exc
    except docker.errors.APIError as exc:
        raise DockerError(f"building `{tag}` failed: {exc}") from exc


def ensure_httpd_image(client: Any, *, busybox: str | None = None) -> str:
    """Make sure ``kombify-test/httpd:1`` exists (busybox httpd serving one page); its tag.

    Built offline from the host's ``busybox-static`` binary with ``docker import``.

    Raises:
        ConfigError: No static busybox on this machine.
        DockerError: The engine refused the import.
    """
    if _image_exists(client, HTTPD_IMAGE):
        return HTTPD_IMAGE
    binary = Path(busybox or shutil.which("busybox") or "/bin/busybox")
    if not binary.exists() or not _is_static(binary):
        raise ConfigError(
            "`kombify-test/httpd:1` needs a static busybox (apt-get install busybox-static)"
        )
    data = _httpd_rootfs(binary)
    repository, tag = HTTPD_IMAGE.split(":")
    changes = [
        'CMD ["/bin/busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/www"]',
        "EXPOSE 80",
    ]
    with _build_lock("httpd-image"):
        if _image_exists(client, HTTPD_IMAGE):
            return HTTPD_IMAGE
        try:
            client.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)
        except docker.errors.APIError as exc:
            raise DockerError(f"docker import of {HTTPD_IMAGE} failed: {exc}") from exc
    return HTTPD_IMAGE


def _is_static(binary: Path) -> bool:
    # A dynamic busybox would need the host's libc inside the image; a static one needs nothing.
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    return "not a dynamic executable" in (result.stdout + result.stderr) or result.returncode != 0


def _httpd_rootfs(binary: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "www", "etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(binary), arcname="bin/busybox")
        for applet in ("sh", "httpd", "wget", "ls", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text in (
            ("www/index.html", bootfiles.HTTPD_INDEX),
            ("etc/passwd", "root:x:0:0:root:/:/bin/sh\nwww:x:33:33:www:/www:/bin/sh\n"),
            ("etc/group", "root:x:0:\nwww:x:33:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# What the official caddy image does by default, minus the admin API (not needed by a probe).
CADDYFILE = """{
\tadmin off
}

:80 {
\trespond "kombify caddy: ok"
}
"""
_CADDY_APPLETS = ("sh", "cat", "echo", "printf", "sleep", "nc", "wget", "ls", "mkdir", "true")


def ensure_caddy_image(client: Any, *, busybox: str | None = None) -> str:
    """Make sure ``kombify-test/caddy:2`` exists (Debian's caddy serving :80); its tag.

    Docker Hub is out of reach, so the image is made offline like the httpd one: Debian's
    ``caddy`` package (``apt-get download``, unpacked, never installed; or ``/usr/bin/caddy``
    when installed), the shared libraries ``ldd`` names for it, and a static busybox for a
    shell. It runs like the official image: ``caddy run`` on /etc/caddy/Caddyfile, with
    ``XDG_DATA_HOME=/data`` and ``XDG_CONFIG_HOME=/config``.

    Raises:
        ConfigError: No static busybox, or no caddy package to download.
        DockerError: The engine refused the import.
    """
    if _image_exists(client, CADDY_IMAGE):
        return CADDY_IMAGE
    static = Path(busybox or shutil.which("busybox") or "/bin/busybox")
    if not static.exists() or not _is_static(static):
        raise ConfigError(
            f"`{CADDY_IMAGE}` needs a static busybox (apt-get install busybox-static)"
        )
    with _build_lock("caddy-image"):
        if _image_exists(client, CADDY_IMAGE):
            return CADDY_IMAGE
        data = _caddy_rootfs(_caddy_binary(), static)
        repository, tag = CADDY_IMAGE.split(":")
        changes = [
            'CMD ["/usr/bin/caddy", "run", "--config", "/etc/caddy/Caddyfile", '
            '"--adapter", "caddyfile"]',
            "ENV PATH=/usr/bin:/bin XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data HOME=/root",
            "EXPOSE 80 443",
        ]
        try:
            client.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)
        except docker.errors.APIError as exc:
            raise DockerError(f"docker import of {CADDY_IMAGE} failed: {exc}") from exc
    return CADDY_IMAGE


def _caddy_binary() -> Path:
    installed = shutil.which("caddy")
    if installed:
        return Path(installed)
    unpacked = cache_dir() / "caddy-deb"
    binary = unpacked / "usr" / "bin" / "caddy"
    if binary.exists():
        return binary
    download = Path(tempfile.mkdtemp(prefix="caddy-", dir=cache_dir()))
    try:
        try:
            subprocess.run(
                ["apt-get", "download", "caddy"],
                cwd=download,
                capture_output=True,
                text=True,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise ConfigError(
                f"`{CADDY_IMAGE}` is built from Debian's caddy package, and "
                f"`apt-get download caddy` failed: {detail.strip()[-300:]}"
            ) from exc
        (deb,) = download.glob("caddy_*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return binary


def _shared_libraries(binary: Path) -> list[Path]:
    """The libraries (and loader) a dynamic binary needs, as resolved on this machine."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    found = re.findall(r"(/\S+)\s+\(0x", result.stdout)
    return [Path(p) for p in found if Path(p).exists()]


def _caddy_rootfs(caddy: Path, busybox: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in (
            "bin",
            "usr",
            "usr/bin",
            "etc",
            "etc/caddy",
            "tmp",
            "data",
            "config",
            "root",
        ):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in _CADDY_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        tar.add(str(caddy), arcname="usr/bin/caddy")
        for library in _shared_libraries(caddy):
            # Parent folders first; the real file (not a symlink) under the name ldd printed.
            parts = library.parts[1:-1]
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name not in tar.getnames():
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            tar.add(str(library.resolve()), arcname=str(library).lstrip("/"))
        for name, text in (
            ("etc/caddy/Caddyfile", CADDYFILE),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
