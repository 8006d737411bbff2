"""Owners' schedules: a workflow file run by a Temporal Schedule, on a cron or an interval.

The schedule itself (spec, overlap policy, pause state, recent and upcoming runs) lives in
Temporal, which keeps firing it while kombify's API and workers restart. A ``schedule`` row
records which organisation owns it, so every route checks ownership in the database before
it asks Temporal anything, and another organisation's schedule is answered like a missing
one. Each action starts ``RunUserWorkflow`` by name with the file's text
(:mod:`kombify.contracts.user_workflow`), so a schedule outlives changes to the interpreter.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from kombify.contracts.deploy import ORGANISATION, RUN_KIND
from kombify.contracts.user_workflow import (
    USER_WORKFLOW_NAME,
    UserWorkflowInput,
    user_workflow_id_prefix,
)
from kombify.db.models import Organisation
from kombify.db.schedule_tables import ScheduleRow
from kombify.errors import ConflictError, NotFoundError, ServiceUnavailableError, SpecError
from kombify.names import ScheduleName, check_schedule_name
from kombify.operate.user_runs import RUN_KIND_WORKFLOW

_T = TypeVar("_T")
Overlap = Literal["skip", "buffer", "allow"]
OVERLAP_POLICIES: dict[str, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow": ScheduleOverlapPolicy.ALLOW_ALL,
}
_OVERLAP_NAMES = {policy: name for name, policy in OVERLAP_POLICIES.items()}
UPCOMING = 5
# Shorter intervals would start runs faster than a worker can record them.
EVERY_MIN = timedelta(seconds=1)
EVERY_MAX = timedelta(days=366)
JITTER_MAX = timedelta(days=1)
_DURATION = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_NAMES = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class ScheduleCreate(BaseModel):
    """A schedule of a workflow file: exactly one of ``cron`` and ``every``."""

    name: ScheduleName
    source: str = Field(max_length=1_000_000, description="The workflow file's text.")
    filename: str = Field(default="workflow.yaml", max_length=255)
    cron: str | None = Field(
        default=None, max_length=200, description='Five cron fields, e.g. "0 3 * * *" (UTC).'
    )
    every: str | None = Field(
        default=None, max_length=20, description="An interval: 30s, 5m, 6h or 1d."
    )
    overlap: Overlap = Field(
        default="skip",
        description="A run still going when the next is due: skip the new one, buffer one "
        "to start after it, or allow both.",
    )
    jitter: str | None = Field(
        default=None, max_length=20, description="Start each run up to this much later (5m)."
    )
    inputs: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="Values of the file's spec.inputs."
    )


class ScheduleNote(BaseModel):
    """Why a schedule is paused or resumed (shown by ``kombify schedule show``)."""

    note: str = Field(default="", max_length=500)


class ScheduleRun(BaseModel):
    """One run a schedule started."""

    workflow_id: str
    run_id: str
    scheduled_at: datetime
    started_at: datetime
    status: str | None = Field(
        default=None,
        description="running, completed, failed, … as Temporal reports it (None: not asked).",
    )


class SchedulePublic(BaseModel):
    """A schedule as Temporal describes it now."""

    name: str
    schedule_id: str
    workflow: str = Field(description="Filename of the workflow file it runs.")
    inputs: dict[str, str] = Field(description="The values of spec.inputs each run gets.")
    cron: str | None
    every: str | None
    jitter: str | None
    overlap: str
    paused: bool
    note: str
    actions: int = Field(description="Runs started so far.")
    skipped_overlap: int = Field(description="Runs skipped because one was still going.")
    running: list[str] = Field(description="Workflow ids of its runs still going.")
    next_runs: list[datetime]
    recent_runs: list[ScheduleRun]
    created_at: datetime
    created_by: str
    lost: bool = Field(
        default=False,
        description="Recorded by kombify but gone from Temporal (its data was reset): the "
        "note says so; delete it and create it again.",
    )


class SchedulesPublic(BaseModel):
    """The organisation's schedules, by name."""

    data: list[SchedulePublic]
    count: int


def schedule_id(organisation: str, name: str) -> str:
    """The schedule's id in Temporal (``/`` cannot occur in either name: no two collide)."""
    return f"kombify-schedule/{organisation}/{name}"


def run_id_prefix(organisation: str, name: str) -> str:
    """Workflow ids of the runs a schedule starts (Temporal appends the scheduled time)."""
    return user_workflow_id_prefix(organisation) + name


def _invalid(path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}", errors=[{"path": path, "message": message}])


def parse_duration(text: str, *, field: str) -> timedelta:
    """A duration like ``30s``, ``5m``, ``6h`` or ``1d``.

    Raises:
        SpecError: ``text`` is not one (the error names ``field``).
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise _invalid(
            field,
            f"`{text[:40]}` is not a duration: expected a whole number and a unit, "
            "s, m, h or d (30s, 5m, 6h, 1d)",
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


def format_duration(value: timedelta) -> str:
    """``value`` in the largest unit that divides it (``6h``, ``90s``)."""
    seconds = int(value.total_seconds())
    for unit, size in _UNIT_NAMES:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0s"


_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())),
    ("day of week", 0, 7, ("SUN MON TUE WED THU FRI SAT".split())),
)


def _cron_value(text: str, low: int, high: int, names: Sequence[str]) -> bool:
    upper = text.upper()
    if upper in names:
        return True
    return text.isdigit() and low <= int(text) <= high


def _cron_part(part: str, low: int, high: int, names: Sequence[str]) -> bool:
    base, _, step = part.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True
    first, dash, last = base.partition("-")
    if dash:
        return _cron_value(first, low, high, names) and _cron_value(last, low, high, names)
    return _cron_value(base, low, high, names)


def check_cron(text: str) -> str:
    """``text`` if it is a five-field cron expression (minute hour day month weekday).

    Raises:
        SpecError: Naming ``cron`` and the field at fault.
    """
    fields = text.split()
    if len(fields) != 5:
        raise _invalid(
            "cron",
            f"`{text[:60]}` has {len(fields)} fields: expected 5, minute hour day-of-month "
            'month day-of-week (e.g. "0 3 * * *", daily at 03:00 UTC)',
        )
    for value, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        if not all(_cron_part(p, low, high, names) for p in value.split(",")):
            raise _invalid(
                "cron",
                f"`{value[:20]}` is not a valid {what}: expected *, a number from {low} to "
                f"{high}, a range a-b, a list a,b or a step */n",
            )
    return " ".join(fields)


def check_workflow_source(source: str, filename: str, inputs: dict[str, str]) -> str:
    """The file's ``metadata.name``; refused with the problems ``kombify workflow validate``
    reports, or when an input is unknown or a required one is missing.

    Raises:
        WorkflowFileError: A :class:`SpecError` listing every problem (path and line).
        SpecError: A bad input (naming ``inputs``).
    """
    from kombify.userwf.load import load_workflow, resolve_inputs

    model = load_workflow(source, filename)
    try:
        resolve_inputs(model, inputs)
    except SpecError as exc:
        raise _invalid("inputs", exc.message) from None
    return model.name


def _spec(body: ScheduleCreate) -> tuple[ScheduleSpec, str | None, str | None]:
    """Temporal's spec for the request, with the cron and interval as the owner wrote them."""
    if (body.cron is None) == (body.every is None):
        raise _invalid("every", "give exactly one of cron and every")
    jitter = parse_duration(body.jitter, field="jitter") if body.jitter else None
    if jitter is not None and jitter > JITTER_MAX:
        raise _invalid("jitter", f"`{body.jitter}` is longer than {format_duration(JITTER_MAX)}")
    if body.cron is not None:
        cron = check_cron(body.cron)
        return ScheduleSpec(cron_expressions=[cron], jitter=jitter), cron, None
    assert body.every is not None
    every = parse_duration(body.every, field="every")
    if not EVERY_MIN <= every <= EVERY_MAX:
        raise _invalid(
            "every",
            f"`{body.every}` is outside {format_duration(EVERY_MIN)} to "
            f"{format_duration(EVERY_MAX)}",
        )
    if jitter is not None and jitter >= every:
        raise _invalid("jitter", f"`{body.jitter}` must be shorter than every ({body.every})")
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)], jitter=jitter)
    return spec, None, format_duration(every)


def _org_attributes(organisation: str, *, run: bool) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[str]] = [SearchAttributePair(ORGANISATION, organisation)]
    if run:
        pairs.append(SearchAttributePair(RUN_KIND, RUN_KIND_WORKFLOW))
    return TypedSearchAttributes(pairs)


def _temporal_schedule(
    org: str, body: ScheduleCreate, spec: ScheduleSpec, task_queue: str, workflow: str
) -> Schedule:
    triggered_by = f"schedule:{body.name}"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            USER_WORKFLOW_NAME,
            UserWorkflowInput(
                organisation=org,
                source=body.source,
                filename=body.filename,
                triggered_by=triggered_by,
                inputs=dict(body.inputs),
            ),
            id=run_id_prefix(org, body.name),
            task_queue=task_queue,
            # As kombify.operate.user_runs starts a run: `kombify workflow runs` names it.
            memo={"workflow": workflow, "triggered_by": triggered_by},
            typed_search_attributes=_org_attributes(org, run=True),
        ),
        spec=spec,
        policy=SchedulePolicy(overlap=OVERLAP_POLICIES[body.overlap]),
        state=ScheduleState(note=""),
    )


class ScheduleLost(NotFoundError):
    """kombify records the schedule, Temporal has none of that id (its data was reset)."""

    code = "schedule-lost"


def _missing(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.NOT_FOUND


def _row(session: Session, org: Organisation, name: str) -> ScheduleRow:
    check_schedule_name(name)
    row = session.exec(
        select(ScheduleRow).where(ScheduleRow.organisation_id == org.id, ScheduleRow.name == name)
    ).first()
    if row is None:
        raise NotFoundError(f"no schedule `{name}`")
    return row


def get_row(session: Session, org: Organisation, name: str) -> ScheduleRow:
    """The organisation's schedule ``name`` (NotFoundError for any other organisation's)."""
    return _row(session, org, name)


async def _ask(row: ScheduleRow, call: Callable[[], Awaitable[_T]]) -> _T:
    """``call()``, with Temporal's answers as kombify errors naming the schedule."""
    try:
        return await call()
    except RPCError as exc:
        if _missing(exc):
            raise ScheduleLost(
                f"schedule `{row.name}` is recorded but Temporal has no schedule "
                f"`{row.schedule_id}` (was Temporal's data reset?): delete it and create it again"
            ) from exc
        raise _temporal_error(exc) from exc


def _temporal_error(exc: RPCError) -> Exception:
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return ServiceUnavailableError(f"Temporal does not answer: {exc.message}")
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return _invalid("schedule", f"Temporal refused the schedule: {exc.message}")
    return exc


async def create(
    *,
    session: Session,
    connect: Callable[[], Awaitable[Client]],
    org: Organisation,
    body: ScheduleCreate,
    task_queue: str,
    created_by: str,
) -> SchedulePublic:
    """Validate, record and create the schedule; nothing is kept when any step refuses.

    Temporal is dialled (``connect``) only once the request passed every check.

    Raises:
        SpecError: A bad cron, interval, jitter or workflow file (naming the field).
        ConflictError: The organisation has a schedule of that name.
    """
    spec, cron, every = _spec(body)
    workflow = check_workflow_source(body.source, body.filename, body.inputs)
    if session.exec(
        select(ScheduleRow.id).where(
            ScheduleRow.organisation_id == org.id, ScheduleRow.name == body.name
        )
    ).first():
        raise _taken(body.name)
    client = await connect()
    row = ScheduleRow(
        organisation_id=org.id,
        name=body.name,
        schedule_id=schedule_id(org.slug, body.name),
        filename=body.filename,
        created_by=created_by[:320],
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise _taken(body.name) from exc
    session.refresh(row)
    try:
        await client.create_schedule(
            row.schedule_id,
            _temporal_schedule(org.slug, body, spec, task_queue, workflow),
            memo={"organisation": org.slug, "name": body.name, "cron": cron, "every": every},
            search_attributes=_org_attributes(org.slug, run=False),
        )
    except BaseException as exc:
        session.delete(row)
        session.commit()
        if isinstance(exc, ScheduleAlreadyRunningError):
            raise ConflictError(
                f"name: Temporal already has a schedule `{row.schedule_id}` that kombify does "
                "not know (left from an earlier database?): delete it there, or choose another"
            ) from exc
        if isinstance(exc, RPCError):
            raise _temporal_error(exc) from exc
        raise
    return await describe(client=client, row=row, outcomes=False)


def _taken(name: str) -> ConflictError:
    return ConflictError(f"name: a schedule `{name}` exists; choose another name, or delete it")


def _handle(client: Client, row: ScheduleRow) -> ScheduleHandle:
    return client.get_schedule_handle(row.schedule_id)


async def _outcome(client: Client, workflow_id: str, run_id: str) -> str:
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as exc:
        if _missing(exc):
            return "unknown"
        raise
    return described.status.name.lower() if described.status is not None else "unknown"


async def _inputs_of(found: ScheduleDescription) -> dict[str, str]:
    action = found.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
        return {}
    given = await found.data_converter.decode([action.args[0]], [UserWorkflowInput])
    return dict(given[0].inputs)


async def _public(
    client: Client, row: ScheduleRow, found: ScheduleDescription, *, outcomes: bool
) -> SchedulePublic:
    memo = await found.memo()
    spec = found.schedule.spec
    every = memo.get("every")
    if every is None and spec.intervals:
        every = format_duration(spec.intervals[0].every)
    policy = found.schedule.policy.overlap
    inputs = await _inputs_of(found)
    state = found.schedule.state
    recent = []
    for done in found.info.recent_actions[-10:]:
        action = done.action
        workflow_id = getattr(action, "workflow_id", "")
        run_id = getattr(action, "first_execution_run_id", "")
        recent.append(
            ScheduleRun(
                workflow_id=workflow_id,
                run_id=run_id,
                scheduled_at=done.scheduled_at,
                started_at=done.started_at,
            )
        )
    if outcomes and recent:
        statuses = await asyncio.gather(
            *(_outcome(client, r.workflow_id, r.run_id) for r in recent)
        )
        recent = [r.model_copy(update={"status": s}) for r, s in zip(recent, statuses, strict=True)]
    return SchedulePublic(
        name=row.name,
        schedule_id=row.schedule_id,
        workflow=row.filename,
        inputs=inputs,
        cron=memo.get("cron"),
        every=every,
        jitter=format_duration(spec.jitter) if spec.jitter else None,
        overlap=_OVERLAP_NAMES.get(policy, policy.name.lower()),
        paused=state.paused,
        note=state.note or "",
        actions=found.info.num_actions,
        skipped_overlap=found.info.num_actions_skipped_overlap,
        running=[getattr(a, "workflow_id", "") for a in found.info.running_actions],
        next_runs=list(found.info.next_action_times[:UPCOMING]),
        recent_runs=list(reversed(recent)),
        created_at=row.created_at,
        created_by=row.created_by,
    )


async def describe(*, client: Client, row: ScheduleRow, outcomes: bool = True) -> SchedulePublic:
    """The schedule as Temporal describes it; ``outcomes`` asks each recent run's status."""
    found = await _ask(row, _handle(client, row).describe)
    return await _public(client, row, found, outcomes=outcomes)


def list_rows(session: Session, org: Organisation) -> list[ScheduleRow]:
    """The organisation's schedule records, by name."""
    query = (
        select(ScheduleRow)
        .where(ScheduleRow.organisation_id == org.id)
        .order_by(col(ScheduleRow.name))
    )
    return list(session.exec(query))


async def describe_all(*, client: Client, rows: list[ScheduleRow]) -> SchedulesPublic:
    """Each of ``rows`` as Temporal describes it now."""

    async def one(row: ScheduleRow) -> SchedulePublic:
        try:
            return await describe(client=client, row=row, outcomes=False)
        except ScheduleLost as exc:  # listed as lost, so it can be seen and deleted
            return SchedulePublic(
                name=row.name, schedule_id=row.schedule_id, workflow=row.filename, inputs={},
                cron=None,
                every=None, jitter=None, overlap="", paused=False, note=exc.message, actions=0,
                skipped_overlap=0, running=[], next_runs=[], recent_runs=[],
                created_at=row.created_at, created_by=row.created_by, lost=True,
            )  # fmt: skip

    data = await asyncio.gather(*(one(r) for r in rows))
    return SchedulesPublic(data=list(data), count=len(data))


async def pause(*, client: Client, row: ScheduleRow, note: str) -> SchedulePublic:
    """Stop starting runs (runs already going go on) until resumed."""
    await _ask(row, lambda: _handle(client, row).pause(note=note or "paused"))
    return await describe(client=client, row=row, outcomes=False)


async def resume(*, client: Client, row: ScheduleRow, note: str) -> SchedulePublic:
    """Start runs again from the next due time (missed ones are not made up)."""
    await _ask(row, lambda: _handle(client, row).unpause(note=note or "resumed"))
    return await describe(client=client, row=row, outcomes=False)


async def trigger(*, client: Client, row: ScheduleRow) -> SchedulePublic:
    """Start a run now, as the schedule would (also while paused).

    Raises:
        ConflictError: With overlap ``skip``, a run is still going: Temporal would start none.
    """
    found = await _ask(row, _handle(client, row).describe)
    running = found.info.running_actions
    if found.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP and running:
        ids = ", ".join(getattr(a, "workflow_id", "") for a in running)
        raise ConflictError(
            f"schedule `{row.name}` skips overlapping runs and one is still going ({ids}): "
            "nothing was started"
        )
    await _ask(row, _handle(client, row).trigger)
    return await describe(client=client, row=row, outcomes=False)


async def delete(*, session: Session, client: Client, row: ScheduleRow) -> None:
    """Delete the schedule in Temporal (runs already going go on), then its record."""
    try:
        await _handle(client, row).delete()
    except RPCError as exc:
        if not _missing(exc):  # already gone in Temporal: forgetting the record is all
            raise
    session.delete(row)
    session.commit()
