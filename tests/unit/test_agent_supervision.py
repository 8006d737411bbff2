"""What the agent install writes for the node's supervisor is well-formed.

The KombiSim path (node init supervising the start script) runs end to end in
tests/e2e/test_rollout_faults.py; systemd does not run here as pid 1, so its unit is checked
with systemd's own verifier.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kombify.activities.agent import (
    _START_AGENT,
    _UNINSTALL_AGENT,
    REMOTE_RUN,
    run_script,
    systemd_unit,
)
from kombify.sim.bootfiles import AGENT_SUPERVISOR, NODE_INIT


def test_systemd_verifies_the_unit(tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    start = tmp_path / "run"
    start.write_text(run_script())
    start.chmod(0o755)
    unit = tmp_path / "kombify-agent.service"
    unit.write_text(systemd_unit().replace(REMOTE_RUN, str(start)))

    result = subprocess.run(
        [verify, "verify", str(unit)], capture_output=True, text=True, check=False
    )

    # It warns (exit 0) about directives it cannot parse: any output is a mistake.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert "Restart=always" in systemd_unit() and "WantedBy=multi-user.target" in systemd_unit()


@pytest.mark.parametrize(
    "script",
    [run_script(), AGENT_SUPERVISOR, NODE_INIT, _START_AGENT, _UNINSTALL_AGENT],
    ids=["run", "supervisor", "init", "start", "uninstall"],
)
def test_shell_scripts_parse(script: str) -> None:
    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
