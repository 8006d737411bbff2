"""The worker process: polls kombify's task queue and runs its workflows and activities."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from kombify.runtime.temporal_client import connect
from kombify.settings import Settings
from kombify.workers.registry import WORKFLOWS, build_activities

log = logging.getLogger(__name__)

# In-flight activities get this long to finish on shutdown before they are cancelled.
_GRACE = timedelta(seconds=10)


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Create kombify's recurring runs once; every worker tries, the first one wins."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleSpec,
    )

    from kombify.contracts.deploy import RenewInput
    from kombify.workflows.certificates import SCHEDULE_ID, WORKFLOW_ID, RenewCertificates

    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RenewCertificates.run,
            RenewInput(),
            id=WORKFLOW_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        pass
    if settings.billing_enabled:
        from kombify.billing.usage_schedule import ensure_usage_schedule

        await ensure_usage_schedule(client, settings)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (by default: SIGINT/SIGTERM), then drain and exit.

    Args:
        settings: Where Temporal is and which task queue to poll.
        stop: Set it to stop the worker; when omitted, SIGINT and SIGTERM set it.
        ready: Set once the worker polls (for tests).
    """
    client = await connect(settings)
    from kombify.activities.agent import prebuild_bundle

    prebuild_bundle(settings)
    await ensure_schedules(client, settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    # Blocking SDKs (docker, the DB) run in threads; async activities stay on the loop.
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity") as executor:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=list(WORKFLOWS),
            activities=build_activities(settings),
            activity_executor=executor,
            graceful_shutdown_timeout=_GRACE,
        )
        async with worker:
            log.info("worker polling task queue %s", settings.task_queue)
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("worker stopping")
