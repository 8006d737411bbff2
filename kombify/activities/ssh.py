"""SSH to nodes for the deploy activities: run commands, copy files, tunnel to the agent.

The agent listens on the node's loopback only; the control plane reaches it through an SSH
local forward, so a homelab opens no extra port and the mTLS session runs inside SSH.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shlex
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from kombify.activities.hostkeys import changed_message, known_hosts, read_host_key
from kombify.contracts.deploy import NodeTarget
from kombify.errors import HostKeyChangedError, SshError
from kombify.hostkeys import HostKey

_CONNECT_TIMEOUT = 20.0
# AES-GCM first: asyncssh's ChaCha20-Poly1305 makes new cipher objects for every packet and
# cost the control host 5-7 times the CPU per packet (measured: 16-21 against 2-4 us), which
# a deploy's bundle and image copies to every node add up; both are OpenSSH's defaults.
_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")


@dataclass(frozen=True)
class CommandResult:
    """A finished remote command."""

    exit_status: int
    stdout: str
    stderr: str


class NodeSession:
    """One SSH connection to one node."""

    def __init__(self, node: NodeTarget, connection: asyncssh.SSHClientConnection) -> None:
        self.node = node
        self._conn = connection

    async def run(self, command: str, *, check: bool = True, sudo: bool = False) -> CommandResult:
        """Run a shell command; SshError with the stderr tail when ``check`` and it fails."""
        if sudo and self.node.user != "root":
            # HOME stays the login user's, so staged uploads in it are found.
            command = f'sudo -n HOME="$HOME" sh -c {shlex.quote(command)}'
        try:
            result = await self._conn.run(command, check=False)
        except (OSError, asyncssh.Error) as exc:
            raise SshError(f"node `{self.node.name}`: `{command}` failed: {exc}") from exc
        out = _text(result.stdout)
        err = _text(result.stderr)
        status = result.exit_status if result.exit_status is not None else -1
        if check and status != 0:
            tail = "\n".join(err.strip().splitlines()[-5:])
            raise SshError(
                f"node `{self.node.name}`: `{command}` exited {status}: {tail or out[-300:]}"
            )
        return CommandResult(status, out, err)

    async def upload(self, local: Path) -> str:
        """Copy a local file into the login user's home; its remote path. Not for secrets.

        The path is spelled ``$HOME/...`` for later commands, sudo'd ones included (they keep
        the login user's HOME); the caller removes the file. Secrets go through
        :meth:`write_files`, which never leaves them readable. Copied with scp as the login
        user: piping into a sudo'd command's standard input instead was several times slower
        on fresh nodes (0.5 s against 0.1 s for 3 MB, measured).
        """
        name = f".kombify-upload-{secrets.token_hex(8)}"
        try:
            await asyncssh.scp(str(local), (self._conn, name))
        except (OSError, asyncssh.Error) as exc:
            raise SshError(f"node `{self.node.name}`: copying {local.name} failed: {exc}") from exc
        return f"$HOME/{name}"

    async def write(self, remote: str, data: bytes, *, mode: int = 0o600) -> None:
        """Write ``data`` to a root-owned file on the node atomically, created with ``mode``."""
        await self.write_files([(remote, data, mode)])

    async def write_files(self, files: Sequence[tuple[str, bytes, int]]) -> None:
        """Write several root-owned files, each atomically, as ``(path, data, mode)``.

        The bytes go to private files in the login user's home first (SFTP runs as that
        user, one session for all), then one command ``install``s them into place as root
        with their final modes.
        """
        staged = [(f".kombify-upload-{secrets.token_hex(8)}", f) for f in files]
        try:
            async with self._conn.start_sftp_client() as sftp:
                attrs = asyncssh.SFTPAttrs(permissions=0o600)
                for name, (_, data, _) in staged:
                    async with sftp.open(name, "wb", attrs=attrs) as fh:
                        await fh.write(data)
        except (OSError, asyncssh.Error) as exc:
            where = ", ".join(remote for remote, _, _ in files)
            raise SshError(f"node `{self.node.name}`: writing {where} failed: {exc}") from exc
        moves = " && ".join(
            f'install -m {mode:o} -D "$HOME/{name}" {shlex.quote(remote)}.kombify-tmp '
            f"&& mv -f {shlex.quote(remote)}.kombify-tmp {shlex.quote(remote)}"
            for name, (remote, _, mode) in staged
        )
        cleanup = " ".join(f'"$HOME/{name}"' for name, _ in staged)
        await self.run(f"{moves}; rc=$?; rm -f {cleanup}; exit $rc", sudo=True)

    @staticmethod
    def inline_files(files: Sequence[tuple[str, bytes, int]]) -> str:
        """Shell lines that write small files that are not secret, each atomically, as
        ``(path, data, mode)``, to run as root in front of a command.

        Saves :meth:`write_files`' SFTP session and its extra command when a script follows
        anyway; the contents are visible in the node's process list while they are written,
        so secrets always go through :meth:`write_files`.
        """
        lines = []
        for remote, data, mode in files:
            path = shlex.quote(remote)
            encoded = base64.b64encode(data).decode()
            lines.append(
                f"mkdir -p $(dirname {path}) && printf %s {encoded} | base64 -d "
                f"> {path}.kombify-tmp && chmod {mode:o} {path}.kombify-tmp "
                f"&& mv -f {path}.kombify-tmp {path} || exit 1"
            )
        return "\n".join(lines) + "\n"

    async def port_open(self, remote_port: int) -> bool:
        """Whether something on the node accepts connections on 127.0.0.1:remote_port.

        One SSH channel request, nothing else: the cheap way to wait for a port to listen.
        """
        try:
            _, writer = await self._conn.open_connection("127.0.0.1", remote_port)
        except asyncssh.ChannelOpenError:
            return False
        except (OSError, asyncssh.Error) as exc:
            where = f"node `{self.node.name}`: cannot reach port {remote_port}"
            raise SshError(f"{where}: {exc}") from exc
        writer.close()
        return True

    @asynccontextmanager
    async def tunnel(self, remote_port: int) -> AsyncIterator[int]:
        """Forward a free port on 127.0.0.1 to the node's 127.0.0.1:remote_port."""
        try:
            listener = await self._conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", remote_port)
        except (OSError, asyncssh.Error) as exc:
            raise SshError(f"node `{self.node.name}`: cannot open a tunnel: {exc}") from exc
        try:
            yield int(listener.get_port())
        finally:
            listener.close()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


async def _connect(node: NodeTarget) -> asyncssh.SSHClientConnection:
    trusted = known_hosts(node)
    try:
        return await asyncssh.connect(
            node.host,
            node.port,
            username=node.user,
            client_keys=[node.identity_file],
            # The pin PrepareDeployment recorded or verified; asyncssh also asks the node for
            # a key of that type first.
            known_hosts=trusted,
            agent_path=None,
            config=[],
            connect_timeout=_CONNECT_TIMEOUT,
            keepalive_interval=15,
            keepalive_count_max=2,
            encryption_algs=_CIPHERS,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise await _changed(node) from exc
    except (OSError, asyncssh.Error) as exc:
        raise SshError(
            f"cannot ssh to node `{node.name}` at {node.user}@{node.host}:{node.port}: {exc}"
        ) from exc


async def _changed(node: NodeTarget) -> SshError:
    """The error for a node whose key changed since PrepareDeployment verified it."""
    old = HostKey.parse(node.host_key)
    try:
        new = await read_host_key(node.host, node.port, prefer=old.algorithm)
    except SshError as exc:
        return exc
    # A target does not carry its stack's name: the command shows where it goes.
    return HostKeyChangedError(changed_message(stack="<stack>", node=node.name, old=old, new=new))


_PoolKey = tuple[str, int, str, str, str]


class _ConnectionPool:
    """One SSH connection per node and event loop, shared by the activities that need it.

    A deploy reaches each node from several activities, some at once (agent install and
    image staging, then the rollout); each paid a handshake of its own, which on a small
    node costs a fork and a key exchange. SSH multiplexes channels, so they share one. A
    connection the node dropped (restarted, deleted) is replaced on the next use; keepalives
    notice a silent one within 30 s.
    """

    def __init__(self) -> None:
        self._connections: dict[_PoolKey, asyncssh.SSHClientConnection] = {}
        self._locks: dict[_PoolKey, asyncio.Lock] = {}

    @staticmethod
    def _key(node: NodeTarget) -> _PoolKey:
        # A re-trusted node (new pin) gets a new connection, verified against the new key.
        return (node.host, node.port, node.user, node.identity_file, node.host_key)

    async def get(self, node: NodeTarget) -> asyncssh.SSHClientConnection:
        key = self._key(node)
        async with self._locks.setdefault(key, asyncio.Lock()):
            current = self._connections.get(key)
            if current is not None and not current.is_closed():
                return current
            self._connections[key] = connection = await _connect(node)
            return connection

    def discard(self, node: NodeTarget, connection: asyncssh.SSHClientConnection) -> None:
        """Forget ``connection`` (after it failed) so that the next use dials again."""
        if self._connections.get(self._key(node)) is connection:
            del self._connections[self._key(node)]
        connection.close()


# Connections belong to the event loop that made them; a worker has one, tests have many.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ConnectionPool] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def node_session(node: NodeTarget) -> AsyncIterator[NodeSession]:
    """An SSH session with the node's key; SshError naming the node when it cannot connect.

    The connection is the pooled one of this event loop (see ``_ConnectionPool``); a transport
    failure inside the session drops it from the pool, so a retry dials afresh.
    """
    pool = _POOLS.setdefault(asyncio.get_running_loop(), _ConnectionPool())
    connection = await pool.get(node)
    try:
        yield NodeSession(node, connection)
    except Exception as exc:
        # A command that merely failed leaves the connection fine; a transport error does not.
        broken = (OSError, asyncssh.Error)
        if connection.is_closed() or isinstance(exc, broken) or isinstance(exc.__cause__, broken):
            pool.discard(node, connection)
        raise
