"""NodeSession.inline_files: the shell lines that write small files in front of a command.

Run here with the machine's own /bin/sh into a temporary directory, as a node runs them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from kombify.activities.ssh import NodeSession


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)


def test_files_arrive_byte_for_byte_with_their_modes(tmp_path: Path) -> None:
    awkward = b"#!/bin/sh\necho 'quotes' \"and\" $HOME `x` \\ %s\n\x00\xff end\n"
    target = tmp_path / "deep" / "er" / "run"
    unit = tmp_path / "unit.service"
    unit.write_text("old contents")
    script = NodeSession.inline_files(
        [(str(target), awkward, 0o755), (str(unit), b"[Unit]\n", 0o644)]
    )

    done = _run(script + "echo after")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "after\n"  # the command behind them runs
    assert target.read_bytes() == awkward
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert unit.read_bytes() == b"[Unit]\n"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["deep", "unit.service"]  # no temporary left


def test_a_file_that_cannot_be_written_stops_the_command(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    script = NodeSession.inline_files([(str(blocked / "run"), b"data", 0o755)])

    done = _run(script + "echo after")

    assert done.returncode == 1
    assert "after" not in done.stdout
