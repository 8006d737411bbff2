"""`kombify logs` on a terminal: one colour per source (kombify/cli/log_lines.py)."""

from __future__ import annotations

import io

from rich.console import Console

from kombify.cli.log_lines import LinePrinter, source_style

LINE = {"id": 1, "time": "2026-12-02T21:40:01.123456Z", "level": "info", "message": "[ok]"}


def test_each_source_keeps_one_colour_and_the_message_is_not_markup() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=100)
    printer = LinePrinter(console=console)
    printer({**LINE, "source": "tofu"})
    printer({**LINE, "source": "agent/nas", "level": "error", "message": "down"})
    printer({**LINE, "source": "tofu", "message": "again"})
    tofu, nas, again = out.getvalue().splitlines()
    assert tofu == "\x1b[2m21:40:01.123\x1b[0m \x1b[32mtofu          \x1b[0m [ok]"
    assert again == "\x1b[2m21:40:01.123\x1b[0m \x1b[32mtofu          \x1b[0m again"
    assert "\x1b[33magent/nas" in nas and "\x1b[1;31merror \x1b[0m\x1b[1;31mdown" in nas
    assert (source_style("tofu"), source_style("agent/nas")) == ("green", "yellow")
