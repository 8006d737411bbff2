"""Prerequisite checks for ``stackkit prepare``: CLI present, nodes reachable, keys readable.

Reachability is an SSH banner read from each node's address, then its host key (no login):
the fingerprint shown is the one the first deploy pins, or must equal a stated
``ssh.hostKey``.
``probe`` narrows that: ``all`` (the default: a user asks whether their machines are ready),
``loopback`` (only 127.0.0.0/8, ::1 and ``localhost``, which never leaves this machine; what
kombify's own tests use) or ``none``. Nodes not probed are reported as skipped, never passed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from kombify.errors import ConfigError
from kombify.specs.models import Kombination, Node

Status = Literal["pass", "fail", "skipped"]
Probe = Literal["all", "loopback", "none"]
NOT_PROBED = "skipped: not probed from this machine"


@dataclass(frozen=True)
class Check:
    """One row of the prerequisite table."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON shape for ``--json``."""
        return asdict(self)


def loopback_host(host: str) -> str | None:
    """The literal loopback address to connect to for ``host``, or ``None`` if not loopback.

    ``localhost`` maps to ``127.0.0.1`` without a DNS lookup, so no resolver is asked either.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


def probe_ssh(host: str, port: int, *, timeout: float = 2.0) -> tuple[bool, str]:
    """Connect over TCP to ``host:port`` and read the SSH banner."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            banner = sock.recv(256)
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"
    first = banner.split(b"\n", 1)[0].strip().decode("ascii", "replace")
    if first.startswith("SSH-"):
        return True, f"{host}:{port}: {first}"
    return False, f"{host}:{port}: answers, but not with an SSH banner"


def check_tofu() -> Check:
    """Is an OpenTofu-compatible CLI installed?"""
    from kombify.tofu import find_tofu_binary  # the wrapper owns the lookup rules

    try:
        return Check("OpenTofu CLI", "pass", find_tofu_binary())
    except ConfigError as exc:
        return Check("OpenTofu CLI", "fail", "not found", exc.message)


def check_node(node: Node, *, timeout: float, probe: Probe = "all") -> Check:
    """Reachability of one node over SSH, within ``probe`` (see the module docstring)."""
    name = f"node {node.name}: ssh"
    if node.is_cloud:
        return Check(name, "skipped", "created by `stackkit apply`")
    if node.host is None:
        return Check(name, "skipped", "sim node: KombiSim assigns its address when it starts")
    target = loopback_host(node.host)
    if probe == "none":
        return Check(name, "skipped", f"{NOT_PROBED} (--probe none)")
    if target is None:
        if probe == "loopback":
            return Check(name, "skipped", f"{NOT_PROBED} ({node.host} is not loopback)")
        target = node.host
    ok, detail = probe_ssh(target, node.ssh_port, timeout=timeout)
    if not ok:
        fix = f"start sshd on {node.host}:{node.ssh_port} or fix `address`/`ssh.port`"
        return Check(name, "fail", detail, fix)
    return _check_host_key(name, node, target, detail, timeout=timeout)


def _check_host_key(name: str, node: Node, target: str, banner: str, *, timeout: float) -> Check:
    """The node's host key fingerprint (what the first deploy pins), held to ``ssh.hostKey``."""
    import asyncio

    from kombify.activities.hostkeys import read_host_key
    from kombify.errors import SshError
    from kombify.hostkeys import HostKey

    stated = HostKey.parse(node.ssh.host_key) if node.ssh.host_key else None
    prefer = stated.algorithm if stated else None
    try:
        key = asyncio.run(read_host_key(target, node.ssh_port, prefer=prefer, timeout=timeout))
    except SshError as exc:
        return Check(name, "fail", f"{banner}; {exc.message}", "check that it is sshd answering")
    detail = f"{banner}, host key {key.fingerprint} ({key.algorithm})"
    if stated is not None and key != stated:
        return Check(
            name,
            "fail",
            f"{detail}, but ssh.hostKey states {stated.fingerprint}",
            "check the key on the node (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), "
            "then fix ssh.hostKey",
        )
    return Check(name, "pass", detail + (", as ssh.hostKey states" if stated else ""))


def check_key(node: Node, managed_key: Path) -> Check:
    """Can the node's private key be read (and would ssh accept its permissions)?"""
    name = f"node {node.name}: key"
    if node.ssh.identity_file is None:
        if managed_key.exists():
            return Check(name, "pass", f"managed key {managed_key}")
        return Check(name, "pass", "managed key; `stackkit generate` creates it")
    path = Path(node.ssh.identity_file).expanduser()
    if not path.is_file():
        return Check(
            name, "fail", f"{path} does not exist", f"create it: ssh-keygen -t ed25519 -f {path}"
        )
    if not os.access(path, os.R_OK):
        return Check(name, "fail", f"{path} is not readable", f"chmod 600 {path} (as its owner)")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check(
            name, "fail", f"{path} is readable by others; ssh refuses it", f"chmod 600 {path}"
        )
    return Check(name, "pass", str(path))


def prerequisite_checks(
    k: Kombination, *, managed_key: Path, timeout: float = 2.0, probe: Probe = "all"
) -> list[Check]:
    """Every check for ``k``, in table order."""
    checks = [check_tofu()]
    for node in k.spec.nodes:
        checks.append(check_node(node, timeout=timeout, probe=probe))
        checks.append(check_key(node, managed_key))
    return checks
