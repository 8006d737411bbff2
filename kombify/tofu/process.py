"""Run one CLI command: stream its lines as they come, stop it cleanly when cancelled.

With ``json_events`` the command's stdout is read as the CLI's machine-readable stream (one
JSON object a line, from ``plan``/``apply``/``destroy -json``): every string in it is masked,
the callback receives the readable ``@message`` (never the raw JSON), and the events of the
types asked for are kept for the caller to parse.

The CLI runs in a session (and process group) of its own. That keeps a Ctrl-C meant for the
worker away from it, and lets a stop reach the whole tree: ``local-exec`` and ssh children
included, just as a terminal's Ctrl-C would. The stop is the CLI's documented one: SIGINT,
upon which it stops starting new work, writes and unlocks its state and exits; SIGKILL
follows only if it has not exited after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombify.settings import PRIVATE_UMASK

LineCallback = Callable[[str], None]
Event = dict[str, Any]

# Lines longer than this (a huge JSON blob in a provisioner's output) are cut, not buffered.
_LINE_LIMIT = 1 << 20
# After the CLI exits, a child it left behind may still hold the pipes open; do not wait on it.
_DRAIN_SECONDS = 2.0
TAIL_LINES = 40


@dataclass(frozen=True)
class Completed:
    """What a finished command left.

    Attributes:
        args: The argument vector that ran.
        exit_code: The exit status (negative: killed by that signal).
        stdout: Captured stdout, when capture was asked for ("" otherwise).
        stdout_lines: Every streamed stdout line (masked), when not captured.
        stderr_tail: The last stderr lines, masked.
        events: The kept JSON events (masked), in order, when ``json_events`` was given.
    """

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stdout_lines: tuple[str, ...]
    stderr_tail: tuple[str, ...]
    events: tuple[Event, ...] = ()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGINT the process group, wait ``grace`` seconds, then SIGKILL what is left."""
    try:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=grace)
    finally:
        # Also after a clean exit: a provisioner's child may have outlived the CLI.
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()


def _mask_data(data: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return mask(data)
    if isinstance(data, list):
        return [_mask_data(v, mask) for v in data]
    if isinstance(data, dict):
        return {k: _mask_data(v, mask) for k, v in data.items()}
    return data


def event_lines(event: Event) -> list[str]:
    """What a user reads of one JSON event: its ``@message``, and a diagnostic's detail.

    The source snippet of a diagnostic is left out (it quotes configuration, not news).
    """
    lines = str(event.get("@message", "")).splitlines() or [""]
    if event.get("type") == "diagnostic":
        detail = str((event.get("diagnostic") or {}).get("detail") or "")
        lines += [f"  {line}" for line in detail.splitlines() if line.strip()]
    return lines


class _JsonLines:
    """Turns each stdout line of a ``-json`` command into readable, masked lines."""

    def __init__(self, mask: Callable[[str], str], kinds: Collection[str]) -> None:
        self.mask = mask
        self.kinds = kinds
        self.events: list[Event] = []

    def __call__(self, text: str) -> list[str]:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):  # not part of the stream (a crash, a warning)
            return [self.mask(text)]
        # Parsed first, masked after: a secret escaped inside JSON is matched as its value.
        event = _mask_data(event, self.mask)
        if event.get("type") in self.kinds:
            self.events.append(event)
        return event_lines(event)


async def _pump(
    stream: asyncio.StreamReader,
    *,
    render: Callable[[str], list[str]],
    on_line: LineCallback | None,
    keep: deque[str] | list[str],
) -> None:
    overlong = False
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # longer than _LINE_LIMIT: the reader dropped what it had buffered
            overlong = True
            continue
        if overlong:  # ``raw`` is the rest of that line
            overlong = False
            raw = b"[kombify: line too long, left out]\n"
        if not raw:
            return
        for line in render(raw.decode("utf-8", errors="replace").rstrip("\r\n")):
            keep.append(line)
            if on_line is not None:
                on_line(line)


async def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    mask: Callable[[str], str],
    on_line: LineCallback | None = None,
    capture_stdout: bool = False,
    json_events: Collection[str] | None = None,
    grace: float = 10.0,
) -> Completed:
    """Run a command to completion, streaming masked output lines to ``on_line``.

    Args:
        args: Binary and arguments.
        cwd: Working directory.
        env: The complete environment of the child.
        mask: Applied to every line before it is kept or handed out.
        on_line: Called with each stdout/stderr line as soon as it is read.
        capture_stdout: Collect stdout whole instead of streaming it (JSON documents); it is
            then neither masked nor handed to ``on_line``, so only use it for output that is
            parsed, never shown.
        json_events: Read stdout as the CLI's JSON stream: ``on_line`` gets each event's
            masked ``@message``; events of these types are kept in ``Completed.events``.
        grace: Seconds between SIGINT and SIGKILL when the run is cancelled.

    Returns:
        The exit code and output; a non-zero exit is not an error here.

    Raises:
        FileNotFoundError: When the binary cannot be executed.
        asyncio.CancelledError: After the child was stopped, when the caller was cancelled.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=_LINE_LIMIT,
        umask=PRIVATE_UMASK,  # the state file holds every value of the configuration
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs, see above
    stdout_lines: list[str] = []
    stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)

    def plain(text: str) -> list[str]:
        return [mask(text)]

    stream = _JsonLines(mask, json_events) if json_events is not None else None
    out_task: asyncio.Future[Any]
    if capture_stdout:
        out_task = asyncio.ensure_future(proc.stdout.read())
    else:
        out_task = asyncio.ensure_future(
            _pump(proc.stdout, render=stream or plain, on_line=on_line, keep=stdout_lines)
        )
    err_task: asyncio.Future[Any] = asyncio.ensure_future(
        _pump(proc.stderr, render=plain, on_line=on_line, keep=stderr_tail)
    )
    wait_task: asyncio.Future[Any] = asyncio.ensure_future(proc.wait())
    readers = {out_task, err_task}
    try:
        pending: set[asyncio.Future[Any]] = {out_task, err_task, wait_task}
        while not wait_task.done():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failing callback stops the run like a cancellation
        if pending:
            done, pending = await asyncio.wait(pending, timeout=_DRAIN_SECONDS)
            for task in done:
                task.result()
    except BaseException:
        await _stop(proc, grace)
        raise
    finally:
        for task in (*readers, wait_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(*readers, wait_task, return_exceptions=True)
    stdout = out_task.result() if capture_stdout and not out_task.cancelled() else b""
    return Completed(
        args=tuple(args),
        exit_code=proc.returncode if proc.returncode is not None else -1,
        stdout=stdout.decode("utf-8", errors="replace") if isinstance(stdout, bytes) else "",
        stdout_lines=tuple(stdout_lines),
        stderr_tail=tuple(stderr_tail),
        events=tuple(stream.events) if stream is not None else (),
    )
