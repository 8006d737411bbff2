"""Fixtures for tests that run the real OpenTofu/Terraform CLI (built-in resources only)."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kombify.tofu import TofuNotFound, TofuRunner, find_tofu_binary

GOOD_CONFIG = """\
resource "terraform_data" "a" {
  input = "alpha"
}

resource "terraform_data" "b" {
  input = "beta"
}

output "a" {
  value = terraform_data.a.output
}
"""

BROKEN_CONFIG = """\
resource "terraform_data" "a" {
  input = "alpha"
  colour = "blue"
}

output "x" {
  value = terraform_data.nope.output
}
"""


@pytest.fixture
def tofu_binary() -> str:
    """The CLI on this machine; these tests need the real one."""
    try:
        return find_tofu_binary()
    except TofuNotFound as exc:  # pragma: no cover - the CI image ships terraform
        pytest.skip(exc.message)


@pytest.fixture
def runner(tofu_binary: str) -> TofuRunner:
    """A runner with a short kill grace, so a broken stop shows up as a slow test."""
    return TofuRunner(binary=tofu_binary, kill_grace=5.0)


StackFactory = Callable[..., Path]


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    """``make_stack(config, name=..., **files)``: a work directory holding ``main.tf``."""

    def make(config: str, *, name: str = "stack", **files: str) -> Path:
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "main.tf").write_text(textwrap.dedent(config))
        for filename, text in files.items():
            (workdir / filename.replace("__", ".")).write_text(text)
        return workdir

    return make


def processes_left(directory: Path, *, within: float = 3.0) -> list[int]:
    """``processes_in`` once they had ``within`` seconds to finish dying (SIGKILL is async)."""
    deadline = time.monotonic() + within
    while (found := processes_in(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def processes_in(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is ``directory`` (or below)."""
    found = []
    target = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, a zombie, or not ours to look at
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            found.append(int(entry.name))
    return found
