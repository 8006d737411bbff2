"""``kombify incidents``, ``drift`` and ``heal``: what healing recorded, found and did."""

from __future__ import annotations

import contextlib
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, print_json
from kombify.cli.params import StackArg
from kombify.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
# `kombify drift --exit-code` with differences found (as `terraform plan -detailed-exitcode`).
EXIT_DRIFT = 2
# The API waits up to 5 minutes for a heal pass or a drift check; the CLI a little longer.
_RUN_TIMEOUT = 330.0


class IncidentState(StrEnum):
    """The states ``--state`` accepts."""

    open = "open"
    recovered = "recovered"
    given_up = "given-up"


def _client(timeout: float = 30.0) -> ApiClient:
    return ApiClient(get_settings(), timeout=timeout)


def _when(at: str | None) -> str:
    return at.replace("T", " ")[:19] if at else "-"


def _ttr(seconds: float | None) -> str:
    return f"{seconds:.1f} s" if seconds is not None else "-"


def print_incidents(incidents: list[dict[str, Any]]) -> None:
    """The incidents as a table, newest first (as the API lists them)."""
    table = Table(box=None, pad_edge=False)
    columns = ("id", "node", "service", "kind", "detected", "action", "recovered", "state", "ttr")
    for column in columns:
        table.add_column(column)
    for i in incidents:
        table.add_row(
            str(i["id"]),
            i["node"],
            i["service"] or "-",
            i["kind"],
            _when(i["detected_at"]),
            i["action"] or "-",
            _when(i["recovered_at"]),
            i["state"],
            _ttr(i["time_to_recovery_s"]),
        )
    console.print(table, markup=False)


def incidents(
    stack: StackArg,
    state: Annotated[
        IncidentState | None, typer.Option("--state", help="Only incidents in this state.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List a stack's incidents, newest first: what failed, what was done, time to recovery."""
    params = {"state": state.value} if state is not None else {}
    found: list[dict[str, Any]] = _client().request(
        "GET", api_path("v1", "stacks", stack, "incidents"), params=params
    )
    if json_output:
        print_json(found)
    elif not found:
        which = f" {state.value}" if state is not None else ""
        console.print(f"no{which} incidents for stack `{stack}`", markup=False)
    else:
        print_incidents(found)


def drift_lines(items: list[dict[str, Any]]) -> list[str]:
    """One line per difference: where, what kind, and what differs."""
    lines = []
    for item in items:
        where = "/".join(p for p in (item["node"] or "stack", item["service"]) if p)
        if item["container"]:
            where += f" ({item['container']})"
        detail = f": {item['detail']}" if item["detail"] else ""
        lines.append(f"{where}: {item['kind']}{detail}")
    return lines


def drift(
    stack: StackArg,
    json_output: JsonOpt = False,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help=f"Exit {EXIT_DRIFT} when drift is found (0 when none)."),
    ] = False,
) -> None:
    """Compare what runs on the stack's nodes (and OpenTofu's plan) with the spec, now."""
    found: dict[str, Any] = _client(_RUN_TIMEOUT).request(
        "GET", api_path("v1", "stacks", stack, "drift")
    )
    items = found["items"]
    if json_output:
        print_json(found)
    elif not items:
        console.print(f"no drift ({stack}, checked at {_when(found['checked_at'])})", markup=False)
    else:
        for line in drift_lines(items):
            console.print(line, markup=False, soft_wrap=True)
    if exit_code and items:
        raise typer.Exit(EXIT_DRIFT)


def heal_lines(result: dict[str, Any]) -> list[str]:
    """What one heal pass found and did, a line each."""
    if result["skipped"]:
        return [f"skipped: {result['skipped']}"]
    lines = [f"node down: {n}" for n in result["nodes_down"]]
    lines += [f"problem: {p}" for p in result["problems"]]
    lines += [f"drift: {line}" for line in drift_lines(result["drift"])]
    lines += [f"did: {a}" for a in result["actions"]]
    if result["incidents"]:
        lines.append("incidents: " + ", ".join(str(i) for i in result["incidents"]))
    return lines or ["nothing to heal: every node answered and runs what the spec says"]


def heal(stack: StackArg, json_output: JsonOpt = False) -> None:
    """Run one heal pass on the stack now and print what it found and did."""
    showing = console.is_terminal and not json_output
    with console.status(f"healing {stack}…") if showing else contextlib.nullcontext():
        result: dict[str, Any] = _client(_RUN_TIMEOUT).request(
            "POST", api_path("v1", "stacks", stack, "heal")
        )
    if json_output:
        print_json(result)
        return
    for line in heal_lines(result):
        console.print(line, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the healing commands to the main app."""
    app.command()(incidents)
    app.command()(drift)
    app.command()(heal)
