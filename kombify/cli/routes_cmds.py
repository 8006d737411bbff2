"""``kombify routes STACK``: every exposed service's URL, as the stack's reverse proxy routes it.

Asked live from the proxy (through a worker and the proxy node's agent), beside what the
deployed revision wants; ``--ca FILE`` saves the proxy's root certificate, which browsers and
curl need to trust the internal issuer's certificates (docs/routes.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, err_console, fail, print_json
from kombify.cli.params import StackArg
from kombify.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="Write the proxy's root certificate (PEM) to this file."),
]


def routes(stack: StackArg, json_output: JsonOpt = False, ca: CaOpt = None) -> None:
    """The URL of every exposed service and whether the proxy routes it now (exit 1 if not)."""
    seen: dict[str, Any] = ApiClient(get_settings()).request(
        "GET", api_path("v1", "stacks", stack, "routes"), timeout=90
    )
    if ca is not None:
        if not seen.get("root_ca_pem"):
            fail(f"`{stack}`: the proxy gave no root certificate ({_why_no_root(seen)})")
        ca.write_text(seen["root_ca_pem"])
    if json_output:
        print_json(seen)
    else:
        _print(seen, ca)
    healthy = seen["answered"] and all(r["state"] == "routed" for r in seen["routes"])
    raise typer.Exit(0 if healthy else 1)


def _why_no_root(seen: dict[str, Any]) -> str:
    if seen.get("error"):
        return str(seen["error"])
    if seen.get("issuer") == "acme":
        return "its certificates come from ACME, which browsers trust already"
    return "nothing is exposed yet"


def _print(seen: dict[str, Any], ca: Path | None) -> None:
    if seen["proxy_node"]:
        where = f"proxy `{seen['proxy_service']}` on {seen['proxy_node']}"
        if seen["https"]:
            where += f", HTTPS at {seen['https']}"
        console.print(f"{seen['stack']}: {where}, TLS {seen['issuer']}", markup=False)
    table = Table(box=None, pad_edge=False)
    for column in ("url", "service", "upstream", "state"):
        table.add_column(column)
    for route in seen["routes"]:
        table.add_row(
            route["url"],
            route["service"] or "-",
            ", ".join(route["upstreams"]) or "-",
            route["state"],
        )
    if seen["routes"]:
        console.print(table)
    else:
        console.print("no routes: no service says `expose`", markup=False)
    if seen["error"]:
        err_console.print(f"error: {seen['error']}", markup=False, soft_wrap=True)
    if ca is not None:
        console.print(f"root certificate written to {ca}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``routes`` to the main app."""
    app.command("routes")(routes)
