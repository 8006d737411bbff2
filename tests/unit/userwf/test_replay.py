"""Recorded runs of RunUserWorkflow replay against today's interpreter.

Recorded from `kombify workflow run` of the README's nightly-check file (a retried http step,
a skipped step, a parallel group with a sleep and a webhook; and a failed run whose
on_failure step ran). A change that would break runs in flight fails here; record anew only
for a deliberate change guarded with `workflow.patched`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from kombify.workflows.user_workflow import RunUserWorkflow

HISTORIES = Path(__file__).parents[2] / "data" / "histories"


@pytest.mark.parametrize("name", ["RunUserWorkflow", "RunUserWorkflow-failed"])
async def test_recorded_history_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    history = WorkflowHistory.from_json("kombify-userwf-local-nightly-check", text)
    replayer = Replayer(workflows=[RunUserWorkflow])

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None
    assert "example-token" not in text  # the secret's value never reached the history
