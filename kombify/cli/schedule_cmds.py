"""``kombify schedule …``: run a workflow file on a cron or an interval, durably (Temporal).

``create`` checks the file first, offline, and reports its problems exactly as
``kombify workflow validate`` does (exit 1); the API checks it again.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, print_json
from kombify.cli.params import ScheduleArg
from kombify.cli.validate_cmds import report
from kombify.cli.workflow_cmds import read_workflow
from kombify.settings import get_settings
from kombify.userwf.load import workflow_problems

schedule_app = typer.Typer(
    help="Run a workflow file on a cron or an interval: create, list, show, pause, resume, "
    "trigger, delete."
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
NoteOpt = Annotated[str, typer.Option("--note", help="Why (shown by `kombify schedule show`).")]


class Overlap(StrEnum):
    """What happens when a run is due while the last one still goes."""

    skip = "skip"
    buffer = "buffer"
    allow = "allow"


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _when(at: str | None) -> str:
    return at.replace("T", " ")[:19] + " UTC" if at else "-"


def _spec(s: dict[str, Any]) -> str:
    if s.get("lost"):
        return "-"
    text = f"cron {s['cron']}" if s["cron"] else f"every {s['every']}"
    return text + (f" (jitter {s['jitter']})" if s["jitter"] else "")


def _state(s: dict[str, Any]) -> str:
    return "lost" if s.get("lost") else "paused" if s["paused"] else "active"


def print_schedules(schedules: list[dict[str, Any]]) -> None:
    """The schedules as a table: when they run and what they did last."""
    table = Table(box=None, pad_edge=False)
    for column in ("name", "workflow", "when", "overlap", "state", "next run", "last run", "runs"):
        table.add_column(column)
    for s in schedules:
        last = s["recent_runs"][0]["started_at"] if s["recent_runs"] else None
        table.add_row(
            s["name"],
            s["workflow"],
            _spec(s),
            s["overlap"],
            _state(s),
            _when(s["next_runs"][0] if s["next_runs"] and not s["paused"] else None),
            _when(last),
            str(s["actions"]),
        )
    console.print(table, markup=False)


def print_schedule(s: dict[str, Any]) -> None:
    """One schedule: spec, state, the next runs and the recent ones with their outcome."""
    lines = [
        f"schedule  {s['name']}  ({s['schedule_id']})",
        f"workflow  {s['workflow']}"
        + "".join(f" {k}={v}" for k, v in sorted(s.get("inputs", {}).items())),
        f"when      {_spec(s)}, overlap {s['overlap']}",
        f"state     {_state(s)}" + (f": {s['note']}" if s["note"] else ""),
        f"runs      {s['actions']} started, {s['skipped_overlap']} skipped (overlap)",
        "upcoming" if not s["paused"] else "upcoming (once resumed)",
    ]
    lines += [f"  {_when(at)}" for at in s["next_runs"]] or ["  -"]
    lines.append("recent")
    lines += [
        f"  {_when(r['started_at'])}  {r['status'] or '-':<10}  {r['workflow_id']}"
        for r in s["recent_runs"]
    ] or ["  -"]
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def _show(s: dict[str, Any], json_output: bool, done: str) -> None:
    if json_output:
        print_json(s)
        return
    nxt = s["next_runs"][0] if s["next_runs"] and not s["paused"] else None
    if s["paused"]:
        state = f"paused: {s['note']}" if s["note"] else "paused"
    else:
        state = f"next run {_when(nxt)}"
    console.print(f"schedule `{s['name']}` {done}: {_spec(s)}; {state}", markup=False)


def _inputs(values: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"`{value}`: expected NAME=VALUE", param_hint="--input")
        parsed[name] = text
    return parsed


@schedule_app.command("create")
def create(
    name: ScheduleArg,
    workflow: Annotated[
        Path, typer.Option("--workflow", help="The workflow file (kind: Workflow) to run.")
    ],
    cron: Annotated[
        str | None,
        typer.Option("--cron", help='Five cron fields in UTC, e.g. "0 3 * * *" (03:00 daily).'),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="An interval: 30s, 5m, 6h or 1d.")
    ] = None,
    overlap: Annotated[
        Overlap,
        typer.Option(
            "--overlap",
            help="A run still going when the next is due: skip the new one, buffer one, "
            "or allow both.",
        ),
    ] = Overlap.skip,
    jitter: Annotated[
        str | None, typer.Option("--jitter", help="Start each run up to this much later (5m).")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="A value of the file's spec.inputs: NAME=VALUE."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run a workflow file on a cron or an interval (exactly one of --cron and --every)."""
    if (cron is None) == (every is None):
        raise typer.BadParameter("give exactly one of --cron and --every", param_hint="--every")
    source = read_workflow(workflow)
    problems = workflow_problems(source, str(workflow))
    if problems:
        report(workflow, problems, as_json=False)
    body = {
        "name": name,
        "source": source,
        "filename": str(workflow)[-255:],
        "cron": cron,
        "every": every,
        "overlap": overlap.value,
        "jitter": jitter,
        "inputs": _inputs(inputs or []),
    }
    made: dict[str, Any] = _client().request("POST", "/v1/schedules", json=body)
    _show(made, json_output, "created")


@schedule_app.command("list")
def list_(json_output: JsonOpt = False) -> None:
    """The organisation's schedules: when they run, their state, next and last run."""
    page: dict[str, Any] = _client().request("GET", "/v1/schedules")
    if json_output:
        print_json(page)
    elif not page["data"]:
        console.print(
            "no schedules: `kombify schedule create NAME --workflow FILE --every 6h`", markup=False
        )
    else:
        print_schedules(page["data"])


@schedule_app.command("show")
def show(name: ScheduleArg, json_output: JsonOpt = False) -> None:
    """One schedule: spec, state, the next 5 runs and the recent runs with their outcome."""
    found: dict[str, Any] = _client().request("GET", api_path("v1", "schedules", name))
    if json_output:
        print_json(found)
    else:
        print_schedule(found)


@schedule_app.command("pause")
def pause(name: ScheduleArg, note: NoteOpt = "", json_output: JsonOpt = False) -> None:
    """Start no more runs until resumed (runs already going go on)."""
    done = _client().request(
        "POST", api_path("v1", "schedules", name, "pause"), json={"note": note}
    )
    _show(done, json_output, "paused")


@schedule_app.command("resume")
def resume(name: ScheduleArg, note: NoteOpt = "", json_output: JsonOpt = False) -> None:
    """Start runs again from the next due time (missed ones are not made up)."""
    done = _client().request(
        "POST", api_path("v1", "schedules", name, "resume"), json={"note": note}
    )
    _show(done, json_output, "resumed")


@schedule_app.command("trigger")
def trigger(name: ScheduleArg, json_output: JsonOpt = False) -> None:
    """Start a run now, as the schedule would (paused or not)."""
    done = _client().request("POST", api_path("v1", "schedules", name, "trigger"))
    _show(done, json_output, "triggered")


@schedule_app.command("delete")
def delete(name: ScheduleArg) -> None:
    """Delete the schedule (runs already going go on)."""
    _client().request("DELETE", api_path("v1", "schedules", name))
    console.print(f"schedule `{name}` deleted", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``schedule`` to the main ``kombify`` app."""
    app.add_typer(schedule_app, name="schedule")
