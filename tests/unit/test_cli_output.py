"""Piped CLI output keeps long lines whole (grep needs one log line per line)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_piped_output_is_not_wrapped_at_80_columns() -> None:
    line = "agent/nas " + "word " * 40 + "END"
    code = (
        "from rich.text import Text\n"
        "from kombify.cli.output import console\n"
        f"console.print(Text.assemble(('{'agent/nas':>14} ', 'dim'), {line!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "NO_COLOR": "1"},
        timeout=60, check=True,
    )
    assert result.stdout == f"{'agent/nas':>14} {line}\n"


def test_piped_tables_are_not_cut_at_80_columns() -> None:
    cells = ["box", "web", "running", "healthy", "2026-12-02T05:53:59", "fcea2bd8555f",
             "127.0.0.1:34076, 127.0.0.1:34077"]
    code = (
        "from rich.table import Table\n"
        "from kombify.cli.output import console\n"
        "table = Table(box=None, pad_edge=False)\n"
        f"for c in {cells!r}: table.add_column(c.upper())\n"
        f"table.add_row(*{cells!r})\n"
        "console.print(table)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "NO_COLOR": "1"},
        timeout=60, check=True,
    )
    row = result.stdout.splitlines()[1]
    assert row.split() == ["box", "web", "running", "healthy", "2026-12-02T05:53:59",
                           "fcea2bd8555f", "127.0.0.1:34076,", "127.0.0.1:34077"]
    assert "…" not in result.stdout
