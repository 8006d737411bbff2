"""How the CLI talks to people and scripts: rich on a terminal, plain JSON with ``--json``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

from rich.console import Console

# On a pipe or in a file, lines are not wrapped at the console width: a log line must stay
# one line for grep (rich would hard-wrap at 80 columns). Tables there get room too (rich
# would cut their cells at 80 columns), unless COLUMNS says how wide.
_PIPE_WIDTH = 200


def _width(stream: Any) -> int | None:
    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else _PIPE_WIDTH


console = Console(highlight=False, soft_wrap=not sys.stdout.isatty(), width=_width(sys.stdout))
err_console = Console(
    stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty(), width=_width(sys.stderr)
)


def print_json(data: Any) -> None:
    """Machine-readable output: indented, sorted, one document, nothing else on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, *, code: int = 1) -> NoReturn:
    """One line on stderr, then exit (1 for user errors, 2 for usage)."""
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    raise SystemExit(code)


def debug_enabled() -> bool:
    """Tracebacks for unexpected errors only when KOMBIFY_DEBUG is set."""
    return os.environ.get("KOMBIFY_DEBUG", "") not in ("", "0", "false")
