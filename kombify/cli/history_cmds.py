"""`kombify history`, `diff`, `rollback`: a stack's revisions, what changes, going back."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.deploy_cmds import follow
from kombify.cli.output import console, err_console, print_json
from kombify.cli.params import StackArg
from kombify.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
_MAX_REVISION = 2**31 - 1
ToOpt = Annotated[
    int | None,
    typer.Option("--to", min=1, max=_MAX_REVISION, help="Revision number (`kombify history`)."),
]
_SIGNS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _runs(revision: dict[str, Any]) -> str:
    """``succeeded``, ``failed, succeeded``, ``succeeded, destroy succeeded``: oldest first."""
    words = [
        run["state"] if run["kind"] == "deploy" else f"{run['kind']} {run['state']}"
        for run in revision["runs"]
    ]
    return ", ".join(words) or "never deployed"


def _marks(revision: dict[str, Any]) -> str:
    marks = [word for word in ("deployed", "current") if revision[word]]
    return ", ".join(marks)


def history(
    stack: StackArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="Show this many revisions.")
    ] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List a stack's revisions: when, their runs' outcomes, what each changed."""
    page = _client().request(
        "GET", api_path("v1", "stacks", stack, "revisions"), params={"limit": limit}
    )
    if json_output:
        print_json(page)
        return
    deployed = page["deployed_revision"]
    console.print(
        f"{page['stack']}: revision {page['current_revision']} current, "
        + (f"revision {deployed} deployed" if deployed is not None else "nothing deployed")
        + f"; {page['count']} revision(s)",
        markup=False,
        soft_wrap=True,
    )
    table = Table(box=None, pad_edge=False)
    for column in ("rev", "created", "runs", "now", "changes"):
        table.add_column(column, overflow="fold")
    for revision in page["data"]:
        runs = _runs(revision)
        if revision["rollback_of"] is not None:
            runs = f"rollback of {revision['rollback_of']}: {runs}"
        table.add_row(
            str(revision["revision"]),
            str(revision["created_at"])[:19].replace("T", " "),
            runs,
            _marks(revision),
            revision["summary"],
        )
    console.print(table)


def _diff_lines(text: str) -> Text:
    out = Text()
    for line in text.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        out.append(line + "\n", style=style)
    return out


def print_diff(diff: dict[str, Any]) -> None:
    """The changes one by one, then the masked text diff; coloured on a terminal."""
    start = diff["from_revision"]
    console.print(
        Text(
            f"{diff['stack']}: "
            + (f"revision {start}" if start is not None else "nothing deployed")
            + f" → revision {diff['to_revision']}: {diff['summary']}",
            style="bold",
        ),
        soft_wrap=True,
    )
    for change in diff["changes"]:
        sign, colour = _SIGNS[change["kind"]]
        what = "" if change["object"] == "setting" else f"{change['object']} "
        console.print(Text(f"{sign} {what}{change['name']}", style=colour), soft_wrap=True)
        for detail in change["details"]:
            console.print(f"    {detail}", markup=False, soft_wrap=True)
    if diff["text"]:
        console.print()
        console.print(_diff_lines(diff["text"]), end="", soft_wrap=True)


def diff(
    stack: StackArg,
    to: ToOpt = None,
    from_: Annotated[
        int | None,
        typer.Option(
            "--from",
            min=1,
            max=_MAX_REVISION,
            help="Compare from this revision. Default: the deployed one.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show what deploying a revision would change (default: what the next apply would).

    Without --to: the deployed revision against the current one. With --to: the deployed
    revision against that one (what `kombify rollback --to` would change). env values and
    secret-looking values are never shown.
    """
    params = {k: v for k, v in (("to", to), ("from", from_)) if v is not None}
    found = _client().request("GET", api_path("v1", "stacks", stack, "diff"), params=params)
    if json_output:
        print_json(found)
    else:
        print_diff(found)


def rollback(
    stack: StackArg,
    to: ToOpt = None,
    auto_approve: Annotated[
        bool,
        typer.Option("--yes", "-y", "--auto-approve", help="Do not stop for plan approval."),
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start the run and return; follow it later.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show OpenTofu and agent output lines.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Deploy an earlier revision again (default: the newest earlier one that succeeded).

    Its file is stored as the stack's next revision and deployed like `kombify apply` does:
    plan, approval (unless --yes), rollout behind the health gate.
    """
    client = _client()
    if not json_output and to is not None:
        found = client.request("GET", api_path("v1", "stacks", stack, "diff"), params={"to": to})
        print_diff(found)
    body: dict[str, Any] = {"auto_approve": auto_approve}
    if to is not None:
        body["to"] = to
    run = client.request("POST", api_path("v1", "stacks", stack, "rollback"), json=body)
    if not json_output:
        rolled = run["summary"].get("options", {}).get("rollback_of")
        console.print(
            f"rollback of `{stack}` to revision {rolled}, deployed as revision {run['revision']}",
            markup=False,
            soft_wrap=True,
        )
    if detach:
        if json_output:
            print_json(run)
        else:
            console.print(
                f"deployment {run['id']} of `{stack}` started; "
                f"follow it with `kombify logs {run['id']}` or `kombify status {stack}`",
                markup=False,
                soft_wrap=True,
            )
        return
    try:
        code = follow(client, run, json_output=json_output, verbose=verbose)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped following; the run goes on. `kombify cancel {run['id']}` stops it."
        )
        code = 130
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the history commands to the main app."""
    app.command()(history)
    app.command()(diff)
    app.command()(rollback)
