"""``kombify service restart|stop|start|exec``: act on one service of a deployed stack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, fail, print_json
from kombify.cli.params import StackArg, _checked
from kombify.errors import ServiceUnavailableError
from kombify.names import check_name
from kombify.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ServiceArg = Annotated[
    str,
    typer.Argument(
        help="Service name (as in the kombination's spec.services).",
        callback=_checked(lambda v: check_name(v, what="service name")),
    ),
]
# The API waits for each container's stop grace and health check.
_ACTION_TIMEOUT = 330.0

app = typer.Typer(
    name="service",
    help="Act on one service of a deployed stack: restart, stop, start, exec.",
    no_args_is_help=True,
)


def _act(stack: str, service: str, action: str, json_output: bool) -> None:
    client = ApiClient(get_settings(), timeout=_ACTION_TIMEOUT)
    result: dict[str, Any] = client.request(
        "POST", api_path("v1", "stacks", stack, "services", service, action)
    )
    if json_output:
        print_json(result)
    else:
        word = "ok" if result["ok"] else "FAILED"
        console.print(f"{action} {stack}/{service}: {word}", markup=False)
        for r in result["replicas"]:
            if r["error"]:
                console.print(f"  {r['node']}: {r['error']}", markup=False, soft_wrap=True)
            else:
                console.print(
                    f"  {r['node']}/{r['container']}  replica {r['replica']}  "
                    f"{r['state']}  {r['health']}",
                    markup=False,
                )
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
def restart(stack: StackArg, service: ServiceArg, json_output: JsonOpt = False) -> None:
    """Restart the service's containers on every node and wait for their health check."""
    _act(stack, service, "restart", json_output)


@app.command()
def stop(stack: StackArg, service: ServiceArg, json_output: JsonOpt = False) -> None:
    """Stop the service; healing leaves it stopped until `start` or the next apply."""
    _act(stack, service, "stop", json_output)


@app.command()
def start(stack: StackArg, service: ServiceArg, json_output: JsonOpt = False) -> None:
    """Start a stopped service again and wait for its health check."""
    _act(stack, service, "start", json_output)


@contextlib.contextmanager
def _raw(fd: int, on: bool) -> Iterator[None]:
    """The local terminal in raw mode (keys go to the remote command as typed)."""
    if not on:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin_thread(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """Reads stdin on a daemon thread (a blocked read must not keep the CLI from exiting)."""

    def run() -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except RuntimeError:  # the loop closed: the command ended
                return
            if not chunk:
                return

    threading.Thread(target=run, daemon=True, name="stdin").start()


def _ws_url(base: str, stack: str, service: str, query: dict[str, Any]) -> str:
    scheme, _, rest = base.partition("://")
    ws = "wss" if scheme == "https" else "ws"
    path = api_path("v1", "stacks", stack, "services", service, "exec")
    return f"{ws}://{rest.rstrip('/')}{path}?{urlencode(query, doseq=True)}"


async def _exec(url: str, headers: dict[str, str], *, tty: bool, interactive: bool) -> int:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    loop = asyncio.get_running_loop()
    try:
        ws = await connect(url, additional_headers=headers, max_size=None)
    except (OSError, InvalidStatus) as exc:
        raise ServiceUnavailableError(f"the kombify API refused the exec at {url}: {exc}") from exc
    async with ws:
        if tty:

            def resized() -> None:
                size = shutil.get_terminal_size()
                message = {"type": "resize", "rows": size.lines, "cols": size.columns}
                asyncio.ensure_future(ws.send(json.dumps(message)))

            loop.add_signal_handler(signal.SIGWINCH, resized)

        async def forward() -> None:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            _stdin_thread(loop, queue)
            while chunk := await queue.get():
                await ws.send(chunk)
            await ws.send(json.dumps({"type": "eof"}))

        feeder = asyncio.create_task(forward()) if interactive else None
        if not interactive:
            await ws.send(json.dumps({"type": "eof"}))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    out = sys.stdout if message[:1] == b"\x01" else sys.stderr
                    out.buffer.write(message[1:])
                    out.buffer.flush()
                    continue
                control = json.loads(message)
                if control.get("type") == "exit":
                    return int(control.get("code") or 0)
                if control.get("type") == "error":
                    sys.stderr.write(f"{control.get('detail')}\n")
                    return 1
        except ConnectionClosed:
            pass
        finally:
            if feeder is not None:
                feeder.cancel()
            if tty:
                loop.remove_signal_handler(signal.SIGWINCH)
    sys.stderr.write("the connection to the kombify API ended before the command did\n")
    return 1


@app.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def exec_command(
    stack: StackArg,
    service: ServiceArg,
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
    replica: Annotated[
        int | None,
        typer.Option(
            "--replica",
            min=0,
            help="Which running container, from 0, ordered by node then replica (default 0).",
        ),
    ] = None,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive/--no-interactive",
            "-i",
            help="Send this terminal's (or pipe's) stdin to the command (default: on).",
        ),
    ] = True,
    tty: Annotated[
        bool | None,
        typer.Option(
            "--tty/--no-tty",
            "-t",
            help="Run the command on a terminal (default: when stdin and stdout are terminals).",
        ),
    ] = None,
) -> None:
    """Run a command in one of the service's containers: `kombify service exec STACK SVC -- sh`.

    With a terminal the command gets one (raw keys, resizes followed); its exit code becomes
    this command's.
    """
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        fail("give the command to run after `--`: kombify service exec STACK SERVICE -- sh", code=2)
    use_tty = tty if tty is not None else sys.stdin.isatty() and sys.stdout.isatty()
    if use_tty and not sys.stdin.isatty():
        fail("--tty needs stdin to be a terminal", code=2)
    size = shutil.get_terminal_size()
    query: dict[str, Any] = {"cmd": command, "tty": str(use_tty).lower()}
    if use_tty:
        query |= {"rows": size.lines, "cols": size.columns}
    if replica is not None:
        query["replica"] = replica
    client = ApiClient(get_settings())
    # Only who is asking: httpx's own headers (Connection: keep-alive) would spoil the upgrade.
    wanted = ("authorization", "x-kombify-org", "user-agent")
    headers = {k: v for k, v in client._http.headers.items() if k.lower() in wanted}
    url = _ws_url(client.base_url, stack, service, query)
    client.close()
    with _raw(sys.stdin.fileno(), use_tty):
        code = asyncio.run(_exec(url, headers, tty=use_tty, interactive=interactive))
    raise typer.Exit(code)


def register(root: typer.Typer) -> None:
    """Add ``kombify service …`` to the main app."""
    root.add_typer(app)
