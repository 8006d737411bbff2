"""Recorded histories of real runs replay against today's workflow code.

A workflow change that would break runs in flight (a different order of activities, a new
timer without `workflow.patched`) fails here before it reaches a running homelab. The files
were recorded from a real deploy and destroy of docs/examples/rehearsal.yaml on KombiSim;
record new ones only for a deliberate, versioned change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from kombify.workflows.deploy import DeployKombination, DestroyKombination

HISTORIES = Path(__file__).parents[1] / "data" / "histories"


@pytest.mark.parametrize("name", ["DeployKombination", "DestroyKombination"])
async def test_recorded_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(
        f"deploy/local/replay-demo/{name}", (HISTORIES / f"{name}.json").read_text()
    )
    replayer = Replayer(workflows=[DeployKombination, DestroyKombination])

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None
