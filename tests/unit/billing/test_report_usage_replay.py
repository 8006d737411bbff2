"""A recorded ReportUsage run (two organisations, deploy minutes measured, three events sent)
replays against today's workflow code: a change that would break runs in flight fails here."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from kombify.workflows.usage import ReportUsage

HISTORY = Path(__file__).parents[2] / "data" / "histories" / "ReportUsage.json"


async def test_recorded_report_replays() -> None:
    text = HISTORY.read_text()
    kinds = [e.get("eventType") for e in json.loads(text)["events"]]
    assert kinds.count("EVENT_TYPE_ACTIVITY_TASK_COMPLETED") == 4  # measure, list, 2 reports
    history = WorkflowHistory.from_json("billing/report-usage", text)

    result = await Replayer(workflows=[ReportUsage]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None
