"""A real worker on a real Temporal dev server answers kombify's self-check."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from kombify.settings import Settings
from kombify.workers.main import run_worker
from kombify.workflows.selfcheck import SelfCheckInput, SelfCheckResult, SelfCheckWorkflow


async def test_selfcheck_round_trip_through_a_worker(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, temporal_address=temporal_address, task_queue=task_queue)
    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        client = await Client.connect(temporal_address)
        result: SelfCheckResult = await client.execute_workflow(
            SelfCheckWorkflow.run,
            SelfCheckInput(requested_by="test"),
            id=f"selfcheck/{task_queue}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=20),
        )
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)

    assert result.worker.pid == os.getpid()
    assert result.worker.database_ok is True
    assert result.worker.database_error is None
