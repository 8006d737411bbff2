"""Running kombify: ``server``, ``temporal``, ``worker``, ``api`` and ``status``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.output import console, fail, print_json
from kombify.cli.params import stack_name_callback
from kombify.errors import KombifyError
from kombify.runtime.supervisor import Endpoints, Supervisor
from kombify.settings import Settings, get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _show_endpoints(endpoints: Endpoints, parts: tuple[str, ...]) -> None:
    if "api" in parts:
        console.print(f"  dashboard     {endpoints.api}/")
        console.print(f"  API           {endpoints.api}")
        console.print(f"  API docs      {endpoints.docs}")
    console.print(f"  Temporal      {endpoints.temporal}")
    if endpoints.temporal_ui:
        console.print(f"  Temporal UI   {endpoints.temporal_ui}")
    if "api" in parts or "worker" in parts:
        console.print(f"  database      {endpoints.database}")
    console.print(f"  logs          {endpoints.logs}/")


def _supervise(parts: tuple[str, ...]) -> None:
    settings = get_settings()
    supervisor = Supervisor(settings, say=lambda line: console.print(f"[dim]{line}[/dim]"))
    try:
        endpoints = supervisor.start(parts)
    except BaseException:
        supervisor.stop()
        raise
    console.print("[bold green]kombify is running[/bold green] (Ctrl-C stops everything)")
    _show_endpoints(endpoints, parts)
    code = supervisor.run_forever()
    console.print("stopped")
    raise typer.Exit(code)


def server() -> None:
    """Run Temporal (embedded dev server), the worker and the API in one command."""
    _supervise(("temporal", "worker", "api"))


def temporal() -> None:
    """Run the embedded Temporal dev server with the settings in temporal-dev.yml."""
    if get_settings().temporal_address:
        fail("KOMBIFY_TEMPORAL_ADDRESS points at an external Temporal; nothing to start")
    _supervise(("temporal",))


def worker() -> None:
    """Run a worker that polls kombify's task queue (scale out by running more)."""
    from kombify.db.migrate import upgrade
    from kombify.workers.main import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    upgrade(settings.resolved_database_url)
    asyncio.run(run_worker(settings))


def api() -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from kombify.api.app import create_app
    from kombify.gateway.request_log import log_to_stderr

    settings = get_settings()
    log_to_stderr()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        # kombify.requests logs each request as JSON, without the query string (which may
        # hold a token) that uvicorn's access log would print.
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@dataclass(frozen=True)
class PartStatus:
    """Whether one part of kombify answers, and where it is."""

    name: str
    where: str
    ok: bool
    detail: str


async def _temporal_and_worker(settings: Settings) -> tuple[PartStatus, PartStatus]:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    from kombify.runtime.temporal_client import connect, temporal_address
    from kombify.workflows.selfcheck import SelfCheckInput, SelfCheckResult, SelfCheckWorkflow

    address = temporal_address(settings)
    queue = f"task queue {settings.task_queue}"
    try:
        client = await asyncio.wait_for(connect(settings), 5)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except (KombifyError, TimeoutError) as exc:
        detail = str(exc) or "no answer within 5s"
        return (
            PartStatus("temporal", address, False, detail.splitlines()[0]),
            PartStatus("worker", queue, False, "unknown: Temporal does not answer"),
        )
    temporal = PartStatus("temporal", address, True, f"server {info.server_version or 'up'}")
    try:
        result: SelfCheckResult = await client.execute_workflow(
            SelfCheckWorkflow.run,
            SelfCheckInput(requested_by="kombify status"),
            id=f"selfcheck/{uuid.uuid4().hex[:12]}",
            task_queue=settings.task_queue,
            execution_timeout=timedelta(seconds=5),
        )
    except Exception as exc:  # the workflow timing out is the usual answer: no worker polls
        cause = exc.__cause__ or exc
        return temporal, PartStatus("worker", queue, False, f"no worker answered ({cause})")
    probe = result.worker
    detail = f"pid {probe.pid} on {probe.host}"
    if not probe.database_ok:
        detail += f"; cannot reach the database: {probe.database_error}"
    return temporal, PartStatus("worker", queue, probe.database_ok, detail)


def _api_status(settings: Settings) -> PartStatus:
    import httpx

    url = settings.resolved_api_url
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return PartStatus("api", url, False, "not answering")
    if response.status_code == 200:
        return PartStatus("api", url, True, "ready")
    return PartStatus("api", url, False, str(response.json().get("detail", response.status_code)))


def _database_status(settings: Settings) -> PartStatus:
    from sqlalchemy.engine import make_url

    from kombify.db.engine import check_database

    url = settings.resolved_database_url
    shown = make_url(url).render_as_string(hide_password=True)
    error = check_database(url)
    return PartStatus("database", shown, error is None, error or "answers")


def status(
    stack: Annotated[
        str | None,
        typer.Argument(
            help="A stack: show its nodes and services instead.", callback=stack_name_callback
        ),
    ] = None,
    json_output: JsonOpt = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="With a stack: show it again on each change (a JSON document a line with "
            "--json), until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Show what runs where (API, worker, Temporal, database), or a stack's nodes and services."""
    if stack is not None:
        from kombify.cli.deploy_cmds import stack_status, watch_status

        show = watch_status if watch else stack_status
        raise typer.Exit(show(stack, json_output=json_output))
    if watch:
        fail("--watch needs a stack: `kombify status STACK --watch`", code=2)
    settings = get_settings()
    temporal_part, worker_part = asyncio.run(_temporal_and_worker(settings))
    parts = [_api_status(settings), worker_part, temporal_part, _database_status(settings)]
    if json_output:
        data: dict[str, Any] = {p.name: asdict(p) for p in parts}
        print_json(data)
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("part", "where", "state", "detail"):
            table.add_column(column)
        for p in parts:
            state = "[green]up[/green]" if p.ok else "[red]down[/red]"
            table.add_row(p.name, p.where, state, p.detail)
        console.print(table)
    if not all(p.ok for p in parts):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the main app."""
    for command in (server, temporal, worker, api, status):
        app.command()(command)
