"""The Temporal schedule that runs ``ReportUsage`` every hour, a quarter past.

Every worker makes sure of it at start when billing is on: the first creates it, the others
bring it up to date (task queue, interval), keeping a pause an operator set. Overlapping runs
are skipped: a run still going reports the same hours.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from kombify.billing.usage import REPORT_SETTLE
from kombify.contracts.usage import SCHEDULE_ID, WORKFLOW_ID, ReportUsageInput
from kombify.settings import Settings
from kombify.workflows.usage import ReportUsage

EVERY = timedelta(hours=1)
# Past the hour by more than the settle time, so each run has a new hour to report.
OFFSET = REPORT_SETTLE + timedelta(minutes=5)


def usage_schedule(settings: Settings) -> Schedule:
    """The schedule as this worker's settings want it."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReportUsage.run,
            ReportUsageInput(),
            id=WORKFLOW_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY, offset=OFFSET)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_usage_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule, or update the one there (its pause state is kept)."""
    wanted = usage_schedule(settings)
    try:
        await client.create_schedule(SCHEDULE_ID, wanted)
        return
    except ScheduleAlreadyRunningError:
        pass

    def update(found: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state = found.description.schedule.state
        return ScheduleUpdate(schedule=wanted)

    await client.get_schedule_handle(SCHEDULE_ID).update(update)
