"""Helpers of the node agent tests: the throwaway PKI, a running agent, a busybox rootfs."""

from __future__ import annotations

import asyncio
import io
import shutil
import signal
import sys
import tarfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombify.agent.client import AgentClient
from kombify.agent.server import AgentServer
from kombify.errors import AgentError
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


@dataclass
class AgentProcess:
    """An agent running as ``python -m kombify.agent``: the process and its first Health."""

    proc: asyncio.subprocess.Process
    health: Any


@asynccontextmanager
async def agent_subprocess(
    pki: Pki,
    workdir: Path,
    *,
    node: str,
    port: int,
    python_flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    within: float = 15.0,
) -> AsyncIterator[AgentProcess]:
    """``python -m kombify.agent`` in a subprocess, once it answers Health.

    On exit the agent gets SIGTERM and must stop cleanly (exit code 0), unless the test
    killed it already.
    """
    cert, key, ca = pki.ca.issue_server(node, ip_addresses=["127.0.0.1"]).write(workdir, "agent")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *python_flags,
        "-m",
        "kombify.agent",
        f"--listen=127.0.0.1:{port}",
        f"--cert={cert}",
        f"--key={key}",
        f"--ca={ca}",
        f"--state-dir={workdir / 'state'}",
        f"--container-prefix=kt-{node.split('.')[0]}-",
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    try:
        client = AgentClient.with_cert(f"127.0.0.1:{port}", node, pki.control_plane, timeout=5)
        async with client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within  # the interpreter needs a moment for its imports
            while True:
                try:
                    reply = await client.health()
                    break
                except AgentError:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        yield AgentProcess(proc=proc, health=reply)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=15) == 0


@asynccontextmanager
async def agent_process(
    pki: Pki,
    workdir: Path,
    *,
    node: str,
    port: int,
    python_flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    within: float = 15.0,
) -> AsyncIterator[Any]:
    """``python -m kombify.agent`` in a subprocess, once it answers Health: its reply.

    On exit the agent gets SIGTERM and must stop cleanly (exit code 0).
    """
    async with agent_subprocess(
        pki,
        workdir,
        node=node,
        port=port,
        python_flags=python_flags,
        env=env,
        cwd=cwd,
        within=within,
    ) as running:
        yield running.health
