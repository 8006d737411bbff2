"""`kombify logs`: a deployment's output, or a service's container logs, printed or followed.

One argument is a deployment id (32 hexadecimal digits, as ``apply`` prints it); two are a
stack and one of its services. Following reads the API's Server-Sent Events stream
(:mod:`kombify.cli.sse`), never polls, and resumes with ``Last-Event-ID`` if cut.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.log_lines import LinePrinter, from_stored
from kombify.cli.output import err_console
from kombify.cli.sse import stream_events
from kombify.names import InvalidName, check_deployment_id, check_name
from kombify.settings import get_settings

_PAGE = 1000


def _client() -> ApiClient:
    return ApiClient(get_settings())


def print_stored(client: ApiClient, deployment: str, printer: LinePrinter) -> None:
    """Every stored line of a deployment, page by page."""
    cursor = 0
    while True:
        page = client.request(
            "GET",
            api_path("v1", "deployments", deployment, "logs"),
            params={"after": cursor, "limit": _PAGE},
        )
        for event in page["data"]:
            printer(from_stored(event))
        if len(page["data"]) < _PAGE:
            return
        cursor = int(page["next"])


def follow_deployment(client: ApiClient, deployment: str, printer: LinePrinter) -> str | None:
    """Print a deployment's lines as they come until it ends; its final state (None when the
    stream closed without saying)."""
    path = api_path("v1", "deployments", deployment, "logs")
    for event in stream_events(client, path):
        if event.event == "line":
            printer(event.json())
        elif event.event == "end":
            return str(event.json().get("state"))
    return None


def _service_logs(
    client: ApiClient,
    stack: str,
    service: str,
    printer: LinePrinter,
    *,
    follow: bool,
    since: str | None,
    tail: int | None,
) -> None:
    params: dict[str, str | int] = {"follow": int(follow)}
    if since is not None:
        params["since"] = since
    if tail is not None:
        params["tail"] = tail
    path = api_path("v1", "stacks", stack, "services", service, "logs")
    for event in stream_events(client, path, params=params):
        if event.event == "line":
            printer(event.json())
        elif event.event == "end":
            return


def _usage(message: str) -> typer.BadParameter:
    return typer.BadParameter(message)


def logs(
    target: Annotated[
        str,
        typer.Argument(
            help="A deployment id (its OpenTofu and agent output), or a stack name followed by "
            "SERVICE (that service's container logs).",
            metavar="DEPLOYMENT|STACK",
        ),
    ],
    service: Annotated[
        str | None,
        typer.Argument(
            help="A service of STACK: its containers' logs, replicas merged.", metavar="SERVICE"
        ),
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Service logs only: lines since a duration ago (10m, 2h) or a time (RFC 3339).",
        ),
    ] = None,
    tail: Annotated[
        int | None,
        typer.Option("--tail", min=0, help="Service logs only: the last N lines of each replica."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (id, time, source, ...).")
    ] = False,
) -> None:
    """Print a deployment's output, or a service's container logs; -f follows them live.

    Following a deployment ends when the run does, with exit code 0 only if it succeeded.
    """
    printer = LinePrinter(json_output=json_output)
    client = _client()
    try:
        if service is None:
            try:
                deployment = check_deployment_id(target)
            except InvalidName as exc:
                raise _usage(
                    f"{exc.message}; for a service's container logs give STACK SERVICE"
                ) from None
            if since is not None or tail is not None:
                raise _usage(
                    "--since and --tail apply to a service's container logs "
                    "(`kombify logs STACK SERVICE`), not to a deployment's output"
                )
            if not follow_:
                print_stored(client, deployment, printer)
                return
            state = follow_deployment(client, deployment, printer)
            if state is not None and state != "succeeded":
                err_console.print(f"deployment {deployment} {state}", markup=False)
                raise typer.Exit(1)
            return
        try:
            stack = check_name(target, what="stack name")
            name = check_name(service, what="service name")
        except InvalidName as exc:
            raise _usage(exc.message) from None
        _service_logs(client, stack, name, printer, follow=follow_, since=since, tail=tail)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except BrokenPipeError:  # `kombify logs … | head`: the reader had enough
        raise typer.Exit(0) from None
    finally:
        client.close()
