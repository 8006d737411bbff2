"""``kombify workflow …``: validate an owner's workflow file, run it, follow and list runs.

``validate`` works offline with the exit codes and JSON shape of ``kombify validate``
(0 valid, 1 problems, 2 unreadable file; ``--json`` prints ``[{"path", "line", "message"}]``).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, fail, print_json
from kombify.cli.validate_cmds import report
from kombify.errors import SpecError
from kombify.settings import get_settings
from kombify.specs.source import read_document
from kombify.userwf.load import schema_text, workflow_problems

workflow_app = typer.Typer(help="Your own YAML workflows (kind: Workflow): validate and run them.")

FileArg = Annotated[Path, typer.Argument(help="The workflow file (kind: Workflow).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
RunArg = Annotated[str, typer.Argument(help="The run's id, as `kombify workflow runs` lists it.")]
_POLL = 0.5
_MARKS = {"running": "▸", "succeeded": "✓", "failed": "✗", "skipped": "–", "pending": "·"}


def read_workflow(path: Path) -> str:
    """The file's text; a missing, unreadable, oversized or binary file exits 2."""
    try:
        return read_document(path, what="a workflow")
    except FileNotFoundError:
        fail(f"`{path}` does not exist", code=2)
    except SpecError as exc:
        fail(exc.message, code=2)


@workflow_app.command("validate")
def validate(file: FileArg, as_json: JsonOpt = False) -> None:
    """Check a workflow file: schema, one action per step, and every reference."""
    report(file, workflow_problems(read_workflow(file), str(file)), as_json=as_json)


@workflow_app.command("schema")
def schema() -> None:
    """Print the workflow file JSON Schema (draft 2020-12), e.g. for yaml-language-server."""
    sys.stdout.write(schema_text())


def _inputs(values: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            fail(f"--input `{value}`: expected NAME=VALUE", code=2)
        parsed[name] = text
    return parsed


def _seconds(step: dict[str, Any]) -> str:
    if not step.get("started_at") or not step.get("finished_at"):
        return ""
    spent = datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])
    return f"{spent.total_seconds():.1f}s"


def _step_line(step: dict[str, Any]) -> str:
    state = step["state"]
    line = f"{_MARKS.get(state, '?')} {step['id']} ({step['kind']}) {state}"
    if state in ("succeeded", "failed"):
        attempts = step.get("attempts") or 1
        extra = [_seconds(step)] + ([f"{attempts} attempts"] if attempts > 1 else [])
        line += f" in {', '.join(x for x in extra if x)}" if any(extra) else ""
    if state == "failed" and step.get("error"):
        line += f": {step['error']}"
    if state == "skipped" and step.get("log"):
        line += f" ({step['log'][-1].removeprefix('skipped: ')})"
    return line


def _follow(client: ApiClient, run_id: str, *, as_json: bool) -> int:
    shown: dict[str, str] = {}
    while True:
        run = client.request("GET", api_path("v1", "workflow-runs", run_id))
        if not as_json:
            for step in run.get("steps", []):
                if shown.get(step["id"]) != step["state"] and step["state"] != "pending":
                    shown[step["id"]] = step["state"]
                    typer.echo(_step_line(step))
        if run["state"] != "running":
            break
        time.sleep(_POLL)
    if as_json:
        print_json(run)
    elif run["state"] == "succeeded":
        typer.echo(f"run {run_id} succeeded")
    else:
        typer.echo(f"run {run_id} {run['state']}: {run.get('error') or ''}".rstrip(": "), err=True)
    return 0 if run["state"] == "succeeded" else 1


@workflow_app.command("run")
def run(
    file: FileArg,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Show the steps as they change; exit 1 if it fails."),
    ] = False,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="A value of the file's spec.inputs: NAME=VALUE."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a workflow file and start a run of it; prints the run's id."""
    source = read_workflow(file)
    problems = workflow_problems(source, str(file))
    if problems:
        report(file, problems, as_json=as_json)
    client = ApiClient(get_settings())
    body = {"source": source, "filename": file.name, "inputs": _inputs(inputs or [])}
    started = client.request("POST", "/v1/workflow-runs", json=body)
    if not follow:
        if as_json:
            print_json(started)
        else:
            typer.echo(started["id"])
        return
    if not as_json:
        typer.echo(f"run {started['id']} of `{started['workflow']}`")
    raise typer.Exit(_follow(client, started["id"], as_json=as_json))


@workflow_app.command("runs")
def runs(as_json: JsonOpt = False) -> None:
    """The organisation's workflow runs, newest first."""
    listed = ApiClient(get_settings()).request("GET", "/v1/workflow-runs")
    if as_json:
        print_json(listed)
        return
    if not listed["data"]:
        typer.echo("no workflow runs yet: start one with `kombify workflow run FILE`")
        return
    table = Table("RUN", "WORKFLOW", "STATE", "STARTED", "BY", box=None, pad_edge=False)
    for item in listed["data"]:
        started = str(item["started_at"])[:19].replace("T", " ")
        table.add_row(item["id"], item["workflow"], item["state"], started, item["triggered_by"])
    console.print(table)


@workflow_app.command("show")
def show(run_id: RunArg, as_json: JsonOpt = False) -> None:
    """One run: every step's state, attempts, time, outputs and last log line."""
    found = ApiClient(get_settings()).request("GET", api_path("v1", "workflow-runs", run_id))
    if as_json:
        print_json(found)
        return
    typer.echo(f"run {found['id']} of `{found.get('workflow', '')}`: {found['state']}")
    if found.get("error"):
        typer.echo(f"error: {found['error']}")
    table = Table("STEP", "KIND", "STATE", "ATTEMPTS", "TIME", "DETAIL", box=None, pad_edge=False)
    for step in found.get("steps", []):
        detail = step.get("error") or (step["log"][-1] if step.get("log") else "")
        table.add_row(
            step["id"],
            step["kind"],
            step["state"],
            str(step.get("attempts") or ""),
            _seconds(step),
            detail,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``workflow`` to the main ``kombify`` app."""
    app.add_typer(workflow_app, name="workflow")
