"""WireGuard on the node: its key pair, one interface, its peers (run by the agent as root).

The private key is made on the node with ``wg genkey`` and kept in the agent's state
directory (0600); only its public half ever leaves this module. The interface is kernel
WireGuard where ``ip link add … type wireguard`` works, else userspace ``wireguard-go -f``
started by the agent (measured on KombiSim: its self-daemonising mode left ``wg set``
failing). Configuration goes through ``wg syncconf``, fed on stdin, so a peer that is not in
the wanted set is removed and peers that did not change keep their sessions.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("kombify.agent")

_INTERFACE = re.compile(r"^[A-Za-z0-9_.=+-]{1,15}$")
_ENDPOINT = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})$")
_USERSPACE_WAIT = 5.0


class VpnRefused(ValueError):
    """A request that cannot be applied as given; the message says why."""


class VpnFailed(RuntimeError):
    """A command on the node failed; the message names it and its stderr tail."""


@dataclass(frozen=True)
class Peer:
    """One peer as the agent applies it (public key only)."""

    public_key: str
    allowed_ips: list[str]
    endpoint: str = ""
    persistent_keepalive: int = 0


@dataclass(frozen=True)
class Tunnel:
    """What one interface is to be: the node's address, its port, its peers."""

    interface: str
    address: str
    listen_port: int
    peers: list[Peer] = field(default_factory=list)

    def check(self) -> None:
        """Refuse what ``wg``/``ip`` would choke on, before the node is touched.

        Raises:
            VpnRefused: With the field at fault.
        """
        check_interface(self.interface)
        try:
            ipaddress.IPv4Interface(self.address)
        except ValueError as exc:
            raise VpnRefused(f"address `{self.address}` is not an IPv4 address/prefix") from exc
        if not 1 <= self.listen_port <= 65535:
            raise VpnRefused(f"listen port {self.listen_port} is not a port")
        seen: set[str] = set()
        for peer in self.peers:
            _check_key(peer.public_key)
            if peer.public_key in seen:
                raise VpnRefused(f"peer {peer.public_key} is listed twice")
            seen.add(peer.public_key)
            for cidr in peer.allowed_ips:
                try:
                    ipaddress.ip_network(cidr)
                except ValueError as exc:
                    raise VpnRefused(f"allowed ip `{cidr}` is not a network") from exc
            if peer.endpoint and not _ENDPOINT.match(peer.endpoint):
                raise VpnRefused(f"endpoint `{peer.endpoint}` is not host:port")
            if not 0 <= peer.persistent_keepalive <= 65535:
                raise VpnRefused(f"keepalive {peer.persistent_keepalive} is out of range")


def check_interface(name: str) -> None:
    """Refuse an interface name Linux would not take (or that could be an option).

    Raises:
        VpnRefused: It is not 1-15 plain characters.
    """
    if not _INTERFACE.match(name) or name.startswith("-"):
        raise VpnRefused(f"interface name `{name}` must be 1-15 letters, digits or _.=+-")


def _check_key(key: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError as exc:
        raise VpnRefused(f"public key `{key}` is not base64") from exc
    if len(raw) != 32:
        raise VpnRefused(f"public key `{key}` is not a WireGuard key (32 bytes)")


def _run(
    argv: Sequence[str], *, stdin: str | None = None, check: bool = True, secret: str = ""
) -> str:
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=30
    )
    if check and done.returncode != 0:
        # wg quotes a configuration line it rejects: never let the private key out with it.
        tail = done.stderr.replace(secret, "(hidden)") if secret else done.stderr
        raise VpnFailed(f"`{' '.join(argv)}` exited {done.returncode}: {tail.strip()[-300:]}")
    return done.stdout


class WireGuard:
    """The node's WireGuard: keys under ``state_dir/vpn``, interfaces it brings up.

    Args:
        state_dir: The agent's state directory.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "vpn"
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ---- keys and addresses -------------------------------------------------------------
    def public_key(self, interface: str) -> str:
        """The public key of ``interface``'s key pair, made on first use."""
        check_interface(interface)
        private = self._private_key(interface)
        return _run(["wg", "pubkey"], stdin=private, secret=private).strip()

    def _private_key(self, interface: str) -> str:
        path = self.dir / f"{interface}.key"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = _run(["wg", "genkey"]).strip()
            tmp = path.with_suffix(".key.tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key + "\n")
            os.replace(tmp, path)  # a second caller racing us keeps one key, not two
        return path.read_text().strip()

    @staticmethod
    def addresses() -> dict[str, list[str]]:
        """IPv4 addresses (CIDR) of every interface but loopback, by interface name."""
        found: dict[str, list[str]] = {}
        for link in json.loads(_run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
            name = str(link.get("ifname", ""))
            if name == "lo":
                continue
            for info in link.get("addr_info") or []:
                found.setdefault(name, []).append(f"{info['local']}/{info['prefixlen']}")
        return found

    # ---- one interface --------------------------------------------------------------------
    def apply(self, tunnel: Tunnel) -> tuple[bool, str]:
        """Bring ``tunnel.interface`` to exactly ``tunnel``; (changed, implementation).

        Raises:
            VpnRefused: The request is invalid.
            VpnFailed: A command failed.
        """
        tunnel.check()
        name = tunnel.interface
        changed = False
        implementation = self._implementation(name)
        if not implementation:
            implementation = self._create(name)
            changed = True
        have = self._interface_addresses(name)
        if have != [tunnel.address]:
            for address in have:
                _run(["ip", "addr", "del", address, "dev", name])
            _run(["ip", "addr", "add", tunnel.address, "dev", name])
            changed = True
        if "UP" not in self._flags(name):
            _run(["ip", "link", "set", name, "up"])
            changed = True
        # Configured while up: a peer given a persistent keepalive is greeted at once, so a
        # node behind NAT opens its tunnel now rather than at its first packet.
        if self._config_differs(tunnel):
            _run(
                ["wg", "syncconf", name, "/dev/stdin"],
                stdin=self._config_text(tunnel),
                secret=self._private_key(name),
            )
            changed = True
        self._save(tunnel)
        return changed, implementation

    def down(self, interface: str) -> bool:
        """Remove ``interface`` (a userspace process ends with it); whether it was there."""
        check_interface(interface)
        (self.dir / f"{interface}.json").unlink(missing_ok=True)
        there = bool(self._implementation(interface))
        if there:
            _run(["ip", "link", "del", interface])
        child = self._children.pop(interface, None)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        return there

    def saved(self) -> list[Tunnel]:
        """The tunnels last applied (public data only), to bring back after a reboot."""
        tunnels: list[Tunnel] = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                data = json.loads(path.read_text())
                peers = [Peer(**p) for p in data.pop("peers", [])]
                tunnels.append(Tunnel(**data, peers=peers))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("vpn: ignoring unreadable %s: %s", path, exc)
        return tunnels

    def restore(self) -> list[str]:
        """Apply every saved tunnel whose interface is gone (a reboot, a killed wireguard-go)."""
        brought: list[str] = []
        for tunnel in self.saved():
            if not self._implementation(tunnel.interface):
                self.apply(tunnel)
                brought.append(tunnel.interface)
        return brought

    def _save(self, tunnel: Tunnel) -> None:
        path = self.dir / f"{tunnel.interface}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(tunnel), sort_keys=True))
        os.replace(tmp, path)

    def _implementation(self, name: str) -> str:
        """ "kernel", "wireguard-go", or "" when the interface does not exist."""
        shown = _run(["ip", "-d", "-j", "link", "show", "dev", name], check=False)
        if not shown.strip():
            return ""
        kind = ((json.loads(shown)[0].get("linkinfo") or {}).get("info_kind")) or ""
        return "kernel" if kind == "wireguard" else "wireguard-go"

    def _create(self, name: str) -> str:
        added = subprocess.run(
            ["ip", "link", "add", name, "type", "wireguard"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if added.returncode == 0:
            return "kernel"
        binary = shutil.which("wireguard-go")
        if binary is None:
            raise VpnFailed(
                f"this node has no kernel WireGuard ({added.stderr.strip()}) and no wireguard-go"
            )
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / f"{name}.log", "ab") as out:
            # Its own session: an agent restart (upgrade) leaves the tunnel up; the interface's
            # presence is what the agent watches, not this process.
            child = subprocess.Popen(  # noqa: S603 - fixed argv
                [binary, "-f", name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self._children[name] = child
        deadline = time.monotonic() + _USERSPACE_WAIT
        while time.monotonic() < deadline:
            if self._implementation(name) and child.poll() is None:
                return "wireguard-go"
            if child.poll() is not None:
                break
            time.sleep(0.05)
        tail = (self.dir / f"{name}.log").read_text(errors="replace")[-300:]
        raise VpnFailed(f"wireguard-go did not bring up `{name}`: {tail.strip()}")

    def _dump(self, name: str) -> list[list[str]]:
        return [line.split("\t") for line in _run(["wg", "show", name, "dump"]).splitlines()]

    def _config_differs(self, tunnel: Tunnel) -> bool:
        rows = self._dump(tunnel.interface)
        if not rows:
            return True
        own, peers = rows[0], rows[1:]
        if own[0] != self._private_key(tunnel.interface) or own[2] != str(tunnel.listen_port):
            return True
        have = {
            row[0]: (row[2], sorted(row[3].split(",")) if row[3] != "(none)" else [], row[7])
            for row in peers
        }
        want = {p.public_key: p for p in tunnel.peers}
        if set(have) != set(want):
            return True
        for key, peer in want.items():
            endpoint, allowed, keepalive = have[key]
            # A peer without a configured endpoint gets one by roaming: not a difference.
            if peer.endpoint and endpoint != _resolved(peer.endpoint):
                return True
            if allowed != sorted(peer.allowed_ips):
                return True
            if keepalive != (
                str(peer.persistent_keepalive) if peer.persistent_keepalive else "off"
            ):
                return True
        return False

    def _config_text(self, tunnel: Tunnel) -> str:
        lines = [
            "[Interface]",
            f"PrivateKey = {self._private_key(tunnel.interface)}",
            f"ListenPort = {tunnel.listen_port}",
        ]
        for peer in tunnel.peers:
            lines += ["", "[Peer]", f"PublicKey = {peer.public_key}"]
            if peer.allowed_ips:
                lines.append(f"AllowedIPs = {', '.join(peer.allowed_ips)}")
            if peer.endpoint:
                lines.append(f"Endpoint = {peer.endpoint}")
            if peer.persistent_keepalive:
                lines.append(f"PersistentKeepalive = {peer.persistent_keepalive}")
        return "\n".join(lines) + "\n"

    def _interface_addresses(self, name: str) -> list[str]:
        return self.addresses().get(name, [])

    def _flags(self, name: str) -> list[str]:
        shown = json.loads(_run(["ip", "-j", "link", "show", "dev", name]) or "[{}]")
        return list(shown[0].get("flags") or [])


def _resolved(endpoint: str) -> str:
    """``endpoint`` as ``wg show`` prints it: ``wg`` resolves a host name when it is set."""
    host, _, port = endpoint.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            return f"{socket.gethostbyname(host)}:{port}"
        except OSError:
            return endpoint  # unresolvable now: wg would fail to set it, and says so
    return endpoint
