"""How the CLI prints log lines of kombify's streams (a deployment's, a service's containers').

On a terminal: time, source, level and message, one colour per source. Piped: the same fields
as plain text, one unwrapped line per log line (``time source level message``), for grep and
awk. With ``--json``: one JSON object per line, as the stream carries it.
"""

from __future__ import annotations

import json
import sys
import zlib
from typing import Any

from rich.console import Console
from rich.text import Text

from kombify.cli.output import console as default_console
from kombify.logstream.timefmt import rfc3339

# Distinct on dark and light terminals; a source keeps its colour from run to run.
_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
_LEVEL_STYLE = {"warning": "yellow", "error": "bold red"}


def source_style(source: str) -> str:
    """The colour of ``source``: the same for every line (and every run) of that source."""
    return _PALETTE[zlib.crc32(source.encode()) % len(_PALETTE)]


def _one_line(message: str) -> str:
    return message.replace("\r", "\\r").replace("\n", "\\n")


class LinePrinter:
    """Prints log lines (dicts with ``time``, ``source``, ``level``, ``message``).

    Args:
        json_output: One JSON object per line.
        console: Where coloured lines go on a terminal (the CLI's stdout console).
    """

    def __init__(self, *, json_output: bool = False, console: Console | None = None) -> None:
        self.console = console or default_console
        self.json_output = json_output
        self.terminal = self.console.is_terminal

    def __call__(self, line: dict[str, Any]) -> None:
        """Print one line."""
        if self.json_output:
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        time, source = str(line.get("time", "")), str(line.get("source", ""))
        level, message = str(line.get("level", "info")), str(line.get("message", ""))
        if not self.terminal:
            sys.stdout.write(f"{time} {source} {level} {_one_line(message)}\n")
            sys.stdout.flush()
            return
        clock = time[11:23] if len(time) >= 19 else time  # HH:MM:SS.mmm of RFC 3339
        text = Text.assemble((clock, "dim"), " ", (f"{source:<14}", source_style(source)), " ")
        if level != "info":
            text.append(f"{level} ", _LEVEL_STYLE.get(level, "bold"))
        text.append(message, _LEVEL_STYLE.get(level, ""))
        self.console.print(text, soft_wrap=True)


def from_stored(event: dict[str, Any]) -> dict[str, Any]:
    """A stored line as ``GET …/logs`` returns it (JSON), in the stream's shape."""
    return {
        "id": event["id"],
        "time": rfc3339(event["created_at"]),
        "source": event["source"],
        "level": event["level"],
        "message": event["message"],
    }
