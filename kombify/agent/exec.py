"""Exec: a command in one of a service's containers, attached to the caller (``docker exec``).

The caller's first message says what to run (service, container, argv, TTY and its size,
environment); stdin chunks, an end of stdin and terminal resizes follow. The agent sends the
command's output as it comes (stdout and stderr apart unless a TTY merges them) and, last, its
exit code. The caller going away ends the command's connection; Docker then closes its stdin.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from contextlib import suppress
from typing import Any

from grpclib.const import Status

from kombify.agent.auth import abort
from kombify.agent.engine import Engine, Managed
from kombify.agent.proto import pb
from kombify.errors import DockerError

_READ = 32 * 1024
# After the output ended, Docker may say "running" a moment longer: ask again this often.
_EXIT_POLL = 0.05
_EXIT_WAIT = 10.0


async def _engine(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except DockerError as exc:
        abort(Status.UNAVAILABLE, exc.message)


def _pick(items: list[Managed], start: pb.ExecStart) -> Managed:
    if start.container_id:
        for item in items:
            if item.id == start.container_id or item.id.startswith(start.container_id):
                if not item.running:
                    abort(
                        Status.FAILED_PRECONDITION,
                        f"container `{item.name}` of service `{start.service}` is {item.state}",
                    )
                return item
        abort(
            Status.NOT_FOUND,
            f"no container {start.container_id[:12]} of service `{start.service}` here",
        )
    running = sorted((i for i in items if i.running), key=lambda i: (i.replica, i.name))
    if not running:
        abort(
            Status.FAILED_PRECONDITION,
            f"no container of service `{start.service}` is running here",
        )
    return running[0]


def _read_plain(sock: socket.socket, put: Any) -> None:
    while chunk := sock.recv(_READ):
        put(pb.ExecOutput(stdout=chunk))


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _read_frames(sock: socket.socket, put: Any) -> None:
    """Docker's multiplexed stream: [kind, 0, 0, 0, size (4 bytes, big endian)] then data."""
    while len(header := _read_exact(sock, 8)) == 8:
        kind, size = struct.unpack(">BxxxL", header)
        data = _read_exact(sock, size)
        if kind == 2:
            put(pb.ExecOutput(stderr=data))
        else:
            put(pb.ExecOutput(stdout=data))


def _reader(sock: socket.socket, tty: bool, out: asyncio.Queue[Any], loop: Any) -> None:
    def put(message: Any) -> None:
        loop.call_soon_threadsafe(out.put_nowait, message)

    try:
        (_read_plain if tty else _read_frames)(sock, put)
    except OSError:  # closed under us: the caller went away
        pass
    finally:
        try:
            put(None)
        except RuntimeError:  # the loop has closed
            pass


async def _feed(engine: Engine, stream: Any, exec_id: str, sock: socket.socket) -> None:
    """The caller's stdin and resizes, until its side ends."""
    while (message := await stream.recv_message()) is not None:
        if message.stdin:
            await asyncio.to_thread(sock.sendall, message.stdin)
        if message.HasField("resize") and message.resize.rows and message.resize.cols:
            try:
                await asyncio.to_thread(
                    engine.exec_resize, exec_id, message.resize.rows, message.resize.cols
                )
            except DockerError:
                pass  # a resize racing the command's end
        if message.stdin_eof:
            break
    # End of stdin (asked, or the caller's side closed): the command reads end-of-file.
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


async def _exit_code(engine: Engine, exec_id: str) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _EXIT_WAIT
    while True:
        running, code = await _engine(engine.exec_result, exec_id)
        if not running and code is not None:
            return int(code)
        if loop.time() > deadline:
            abort(Status.UNAVAILABLE, "the command's output ended but Docker says it still runs")
        await asyncio.sleep(_EXIT_POLL)


async def run_exec(engine: Engine, stream: Any) -> None:
    """Serves one Exec call on ``stream`` (the caller is already known to be allowed)."""
    first = await stream.recv_message()
    if first is None or not first.HasField("start"):
        abort(Status.INVALID_ARGUMENT, "the first message must say what to run (start)")
    start = first.start
    if not start.service or not list(start.argv):
        abort(Status.INVALID_ARGUMENT, "start: service and argv are required")
    items: list[Managed] = await _engine(engine.containers, start.service)
    if not items:
        abort(Status.NOT_FOUND, f"no service `{start.service}`")
    item = _pick(items, start)
    exec_id, sock = await _engine(
        engine.exec_open,
        item.id,
        list(start.argv),
        tty=start.tty,
        stdin=start.stdin,
        env=dict(start.env),
    )
    try:
        if start.tty and start.size.rows and start.size.cols:
            # Docker sizes an exec's terminal only once it started: a quick command may have
            # ended already, which is no error.
            with suppress(DockerError):
                await asyncio.to_thread(
                    engine.exec_resize, exec_id, start.size.rows, start.size.cols
                )
        out: asyncio.Queue[Any] = asyncio.Queue()
        threading.Thread(
            target=_reader,
            args=(sock, start.tty, out, asyncio.get_running_loop()),
            name=f"exec-{exec_id[:8]}",
            daemon=True,
        ).start()
        feeder = asyncio.create_task(_feed(engine, stream, exec_id, sock)) if start.stdin else None
        await stream.send_message(pb.ExecOutput(container_id=item.id))
        try:
            while (message := await out.get()) is not None:
                await stream.send_message(message)
        finally:
            if feeder is not None:
                feeder.cancel()
        code = await _exit_code(engine, exec_id)
        await stream.send_message(pb.ExecOutput(exited=True, exit_code=code))
    finally:
        sock.close()
