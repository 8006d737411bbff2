"""Helpers of the node agent tests: the throwaway PKI, a running agent, a busybox rootfs."""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kombify.agent.client import AgentClient
from kombify.agent.server import AgentServer
from kombify.pki import CertificateAuthority, IssuedCert

BUSYBOX_APPLETS = ("sh", "httpd", "wget", "echo", "sleep", "mkdir", "cat", "true", "env")


def busybox_rootfs() -> bytes:
    """A tar of a root filesystem with busybox-static and a few applet links."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "www", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


@dataclass(frozen=True)
class Pki:
    """The test session's CA and the control plane's client certificate."""

    ca: CertificateAuthority
    control_plane: IssuedCert


@dataclass
class RunningAgent:
    """An agent serving in-process on 127.0.0.1."""

    server: AgentServer
    identity: str
    address: str
    state_dir: Path
    files_root: Path
    pki: Pki

    def client(self, *, identity: str | None = None, cert: IssuedCert | None = None) -> AgentClient:
        """A client dialling this agent (as the control plane unless ``cert`` says otherwise)."""
        return AgentClient.with_cert(
            self.address, identity or self.identity, cert or self.pki.control_plane, timeout=20
        )
