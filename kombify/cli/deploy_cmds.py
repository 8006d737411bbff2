"""`kombify apply`, `destroy`, `approve`, `cancel`, `logs`: the main job, followed live."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kombify.cli import logs_cmds
from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.log_lines import LinePrinter
from kombify.cli.output import console, err_console, fail, print_json
from kombify.cli.params import DeploymentArg, StackArg
from kombify.cli.sse import stream_events
from kombify.cli.stacks_cmds import report_plan_limit
from kombify.errors import ConflictError, KombifyError, PaymentRequiredError
from kombify.settings import get_settings
from kombify.specs import validate_text

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
_POLL = 0.5  # progress (steps, nodes); output lines come by the log stream
_FEED_WAIT = 10.0
_ICONS = {
    "done": "[green]✓[/green]",
    "skipped": "[dim]–[/dim]",
    "failed": "[red]✗[/red]",
    "cancelled": "[yellow]✗[/yellow]",
    "pending": "[dim]·[/dim]",
    "waiting": "[yellow]?[/yellow]",
}


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _validate_locally(file: Path) -> str:
    try:
        source = file.read_text()
    except OSError as exc:
        fail(f"cannot read `{file}`: {exc.strerror}")
    problems = validate_text(source, filename=str(file))
    if problems:
        for problem in problems:
            err_console.print(problem.format(str(file)), markup=False, soft_wrap=True)
        fail(f"`{file}` is not valid: {len(problems)} problem(s); nothing was changed")
    return source


def _store_stack(client: ApiClient, file: Path, source: str) -> tuple[str, str | None]:
    """The stack's name, and the source the run must store (None: creating it stored it).

    An existing stack's new file travels with the deployment request, so a refused run (one
    already in progress) stores nothing.
    """
    body = {"source": source, "filename": str(file)}
    try:
        stack: dict[str, Any] = client.request("POST", "/v1/stacks", json=body)
    except ConflictError:
        from kombify.specs import load_kombination

        return load_kombination(source, filename=str(file)).metadata.name, source
    return str(stack["name"]), None


# Distinct from failure (1) and usage (2): the run is alive and waits for `kombify approve`.
EXIT_WAITING_APPROVAL = 3


def _step_row(step: dict[str, Any]) -> tuple[Any, str, str]:
    state = step["state"]
    icon: Any = (
        Spinner("dots", style="cyan")
        if state == "running"
        else Text.from_markup(_ICONS.get(state, state))
    )
    return icon, step["name"], step.get("detail") or ""


def _render(run: dict[str, Any]) -> Group:
    progress = run.get("progress") or {}
    steps = Table.grid(padding=(0, 1))
    for step in progress.get("steps", []):
        steps.add_row(*_step_row(step))
    nodes = Table(box=None, pad_edge=False, show_header=bool(progress.get("nodes")))
    for column in ("node", "state", "services"):
        nodes.add_column(column)
    for node in progress.get("nodes", []):
        services = ", ".join(
            f"{name} {state}" for name, state in sorted(node.get("services", {}).items())
        )
        nodes.add_row(node["name"], node["state"], services or "-")
    title = Text(f"{run['kind']} {run['stack']} (revision {run['revision']}): ", style="bold")
    title.append(progress.get("state", run["state"]))
    plan = Text("\n".join(f"  {line}" for line in progress.get("plan_lines") or []), style="dim")
    return Group(title, steps, plan, nodes) if plan else Group(title, steps, nodes)


def _ask_approval(client: ApiClient, run: dict[str, Any]) -> bool:
    plan = (run.get("progress") or {}).get("plan") or {}
    summary = (
        f"{plan.get('add', 0)} to add, {plan.get('change', 0)} to change, "
        f"{plan.get('destroy', 0)} to destroy"
    )
    for node in (run.get("progress") or {}).get("nodes", []):
        if node.get("host_key"):
            console.print(f"node {node['name']}: SSH host key {node['host_key']} (pinned)")
    for line in (run.get("progress") or {}).get("plan_lines") or []:
        console.print(line, markup=False, highlight=False)
    if not sys.stdin.isatty():
        err_console.print(
            f"waiting for approval of the plan ({summary}): run `kombify approve {run['id']}` "
            f"(or `kombify cancel {run['id']}`)",
            markup=False,
            soft_wrap=True,
        )
        return False
    answer = typer.confirm(f"Plan: {summary}. Apply it?", default=False)
    if answer:
        client.request("POST", api_path("v1", "deployments", run["id"], "approve"))
    else:
        client.request("POST", api_path("v1", "deployments", run["id"], "cancel"))
    return True


class _LineFeed(threading.Thread):
    """The run's output lines, printed as the API streams them (``apply -v``)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(name="kombify-line-feed", daemon=True)
        self.run_id = run_id
        self.error: KombifyError | None = None

    def run(self) -> None:
        client = _client()  # its own connection: the progress polls go on beside it
        try:
            logs_cmds.follow_deployment(client, self.run_id, LinePrinter())
        except KombifyError as exc:
            self.error = exc
        finally:
            client.close()


def follow(client: ApiClient, run: dict[str, Any], *, json_output: bool, verbose: bool) -> int:
    """Show a run live until it ends; the exit code (0 only when it succeeded).

    Returns:
        0 when it succeeded, 1 when it failed, :data:`EXIT_WAITING_APPROVAL` when it waits
        for an approval no terminal can give.
    """
    run_id = run["id"]
    if not json_output:
        # The id `kombify logs`, `approve` and `cancel` need, before anything can go wrong.
        console.print(
            f"deployment {run_id} of `{run['stack']}`: "
            f"`kombify logs -f {run_id}` follows its output",
            markup=False,
            soft_wrap=True,
        )
    asked = False
    feed = _LineFeed(run_id) if verbose and not json_output else None
    if feed is not None:
        feed.start()
    with Live(console=console, transient=True, refresh_per_second=8, redirect_stdout=False) as live:
        while True:
            run = client.request("GET", api_path("v1", "deployments", run_id))
            if not json_output:
                live.update(_render(run))
            state = (run.get("progress") or {}).get("state") or run["state"]
            if state == "waiting-approval" and not asked:
                live.stop()
                asked = True
                if not _ask_approval(client, run):
                    return EXIT_WAITING_APPROVAL
                live.start()
            if run["state"] != "running":
                break
            time.sleep(_POLL)
        if feed is not None:
            feed.join(_FEED_WAIT)  # its `end` event comes right after the run's outcome
    if feed is not None and feed.error is not None:
        err_console.print(f"output lines stopped: {feed.error.message}", markup=False)
    if json_output:
        print_json(run)
    else:
        console.print(_render(run))
    if run["state"] == "succeeded":
        if not json_output:
            console.print(f"[green]{run['kind']} of `{run['stack']}` succeeded[/green]")
        return 0
    error = (run.get("summary") or {}).get("error") or (run.get("progress") or {}).get("error")
    err_console.print(f"error: {run['kind']} of `{run['stack']}` {run['state']}: {error}")
    return 1


def apply(
    file: Annotated[Path, typer.Argument(help="The kombination.yaml to deploy.")],
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Do not stop for plan approval.")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start the run and return; follow it later.")
    ] = False,
    simulate: Annotated[
        bool,
        typer.Option("--simulate", help="Rehearse on simulated nodes of the same names and roles."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show OpenTofu and agent output lines.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Deploy a kombination: validate, plan, apply, roll out services, wait until healthy."""
    source = _validate_locally(file)
    client = _client()
    try:
        name, new_source = _store_stack(client, file, source)
        options: dict[str, Any] = {"auto_approve": auto_approve, "simulate": simulate}
        if new_source is not None:
            options |= {"source": new_source, "filename": str(file)}
        run = client.request("POST", api_path("v1", "stacks", name, "deployments"), json=options)
    except PaymentRequiredError as exc:
        report_plan_limit(exc, str(file))
    stack = {"name": name}
    if detach:
        if json_output:
            print_json(run)
        else:
            console.print(
                f"deployment {run['id']} of `{stack['name']}` started; "
                f"follow it with `kombify logs -f {run['id']}` or `kombify status {stack['name']}`"
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


def destroy(
    stack: StackArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Leave nodes that cannot be reached (listed as skipped) instead of failing.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Stop and remove a stack's services and destroy what OpenTofu made for it."""
    if not yes:
        if not sys.stdin.isatty():
            fail(f"destroying `{stack}` needs confirmation: pass --yes", code=2)
        typer.confirm(f"Destroy every service of `{stack}`?", abort=True)
    client = _client()
    run = client.request("POST", api_path("v1", "stacks", stack, "destroy"), json={"force": force})
    raise typer.Exit(follow(client, run, json_output=json_output, verbose=False))


def approve(deployment: DeploymentArg) -> None:
    """Approve the plan a deployment waits on."""
    _client().request("POST", api_path("v1", "deployments", deployment, "approve"))
    console.print(f"deployment {deployment} approved")


def cancel(deployment: DeploymentArg) -> None:
    """Stop a deployment at its next safe point."""
    _client().request("POST", api_path("v1", "deployments", deployment, "cancel"))
    console.print(f"deployment {deployment} will stop at its next safe point")


def stack_status(name: str, *, json_output: bool) -> int:
    """``kombify status STACK``: what runs on the nodes now; 0 only when all of it is healthy."""
    # The nodes are asked live, through a worker: allow for a slow node.
    status = _client().request("GET", api_path("v1", "stacks", name, "status"), timeout=90)
    if json_output:
        print_json(status)
    else:
        _print_status(status)
    return 0 if _healthy(status) else 1


def watch_status(name: str, *, json_output: bool) -> int:
    """``kombify status STACK --watch``: the status again on each change, until Ctrl-C.

    Reads the live stream (docs/deploy.md, "The status, live"): the table (or one JSON
    document a line with ``--json``) first and on every change; failed observations go to
    stderr and the watch goes on. Exits 1 once the stack is deleted; on Ctrl-C, as
    ``kombify status`` would for the last status shown.
    """
    path = api_path("v1", "stacks", name, "status")
    shown: dict[str, Any] | None = None
    try:
        for event in stream_events(_client(), path, read_timeout=90):
            if event.event == "error":
                detail = event.json().get("detail", "")
                err_console.print(f"error: {detail}", markup=False, soft_wrap=True)
            elif event.event == "end":
                err_console.print(f"error: stack `{name}` was deleted", markup=False)
                return 1
            elif event.event == "status" and event.json() != shown:  # a reconnection repeats
                if shown is not None and not json_output:
                    console.print()
                shown = event.json()
                if json_output:
                    sys.stdout.write(json.dumps(shown, sort_keys=True) + "\n")
                    sys.stdout.flush()
                else:
                    _print_status(shown)
    except KeyboardInterrupt:
        pass
    return 0 if shown is not None and _healthy(shown) else 1


def _healthy(status: dict[str, Any]) -> bool:
    nodes = status["nodes"]
    swarm = status.get("swarm")
    return bool(
        status["observed"]
        and all(node["answered"] for node in nodes)
        and all(
            # A service its owner stopped is as its owner wants it (docs/services.md).
            info["healthy"] or info.get("stopped_by_owner", False)
            for node in nodes
            for info in node["services"].values()
            if info["desired_replicas"] > 0
        )
        and (swarm is None or (swarm["answered"] and swarm["quorum"]))
        and all(s["healthy"] for s in (swarm or {}).get("services", {}).values())
    )


def _print_status(status: dict[str, Any]) -> None:
    last = status.get("last_deployment")
    run = "no runs yet"
    if last:
        at = str(last["finished_at"] or last["started_at"])[:19]
        run = f"last run: {last['kind']} {last['state']} at {at}"
    deployed = status["deployed_revision"]
    if deployed is None:
        console.print(f"{status['stack']} (revision {status['revision']}): not deployed; {run}")
        return
    newer = ""
    if deployed != status["revision"]:
        newer = f", revision {status['revision']} not deployed"
    observed = max((n["observed_at"] for n in status["nodes"]), default="")[:19]
    when = f"observed at {observed}" if observed else "not observed"
    console.print(
        f"{status['stack']} (revision {deployed} deployed{newer}): {when}; {run}",
        markup=False,
        soft_wrap=True,  # one line a script can grep; the terminal folds it if it must
    )
    if status["error"]:
        err_console.print(f"error: {status['error']}", markup=False, soft_wrap=True)
    table = Table(box=None, pad_edge=False)
    for column in ("node", "service", "state", "health", "since", "containers", "reach"):
        table.add_column(column)
    for node in status["nodes"]:
        if not node["services"]:
            table.add_row(node["name"], "-", "-", "-", "-", "-", "-")
        for service, info in sorted(node["services"].items()):
            containers = ", ".join(c[:12] for c in info["containers"]) or "-"
            reach = ", ".join(e.split(" -> ")[0] for e in info["endpoints"]) or "-"
            # Since when its (first) container is in its state: UTC, to the second.
            since = next((d["since"][:19] for d in info["details"] if d["since"]), "-")
            table.add_row(
                node["name"], service, info["state"], info["health"], since, containers, reach
            )
    console.print(table)
    if status.get("swarm"):
        _print_swarm(status["swarm"])
    for node in status["nodes"]:
        if not node["answered"]:
            console.print(
                f"node {node['name']} did not answer: {node['error']}",
                markup=False,
                soft_wrap=True,
            )


def _print_swarm(swarm: dict[str, Any]) -> None:
    """A swarm kit's services, as its manager reports them: replicas, where tasks run."""
    if not swarm["answered"]:
        console.print(f"swarm did not answer: {swarm['error']}", markup=False, soft_wrap=True)
        return
    quorum = "quorum held" if swarm["quorum"] else "QUORUM LOST"
    console.print(
        f"swarm (asked {swarm['manager']}): {swarm['reachable_managers']}/{swarm['managers']} "
        f"managers reachable, {quorum}; {swarm['nodes_ready']}/{swarm['nodes']} nodes ready",
        markup=False,
        soft_wrap=True,
    )
    table = Table(box=None, pad_edge=False)
    for column in ("service", "mode", "replicas", "publish", "node", "task", "reach"):
        table.add_column(column)
    for name, info in sorted(swarm["services"].items()):
        head = [name, info["mode"], f"{info['running']}/{info['wanted']}", info["publish_mode"]]
        running = [t for t in info["tasks"] if t["state"] == "running"] or [
            {"node": "-", "state": "-"}
        ]
        for task in running:  # one row per running task: where it runs, where it answers
            reach = ", ".join(
                e.split(" -> ")[0] for e in info["endpoints"] if e.endswith(f"({task['node']})")
            )
            table.add_row(*head, task["node"] or "-", task["state"], reach or "-")
            head = ["", "", "", ""]
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the deploy commands to the main app."""
    app.command()(apply)
    app.command()(destroy)
    app.command()(approve)
    app.command()(cancel)
    app.command()(logs_cmds.logs)
