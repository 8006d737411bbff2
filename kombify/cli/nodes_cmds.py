"""``kombify nodes``: a stack's nodes with their pinned SSH host keys; re-trust a changed one.

``kombify nodes STACK`` is short for ``kombify nodes list STACK``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, fail, print_json
from kombify.cli.params import NodeArg, StackArg
from kombify.settings import get_settings


class _ListByDefault(TyperGroup):
    """Reads ``nodes STACK`` as ``nodes list STACK``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


nodes_app = typer.Typer(
    cls=_ListByDefault,
    help="A stack's nodes and the SSH host keys kombify pinned for them.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
SimulateOpt = Annotated[
    bool | None,
    typer.Option(
        "--simulate/--real",
        help="The node's simulated stand-in, or the real node (default: as last deployed).",
    ),
]


def _client() -> ApiClient:
    return ApiClient(get_settings())


@nodes_app.command("list")
def list_(
    stack: StackArg, json_output: JsonOpt = False
) -> None:
    """List the stack's nodes: address, pinned host key fingerprint, how it was pinned."""
    page: dict[str, Any] = _client().request("GET", api_path("v1", "stacks", stack, "nodes"))
    if json_output:
        print_json(page)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("node", "address", "host key", "pinned"):
        table.add_column(column)
    for row in page["data"]:
        name = row["node"] + (" (simulated)" if row["simulated"] else "")
        if row["fingerprint"]:
            key = f"{row['fingerprint']} ({row['algorithm']})"
            pinned = f"{row['source']} {str(row['recorded_at'])[:19]}"
        else:
            key, pinned = "-", "not contacted yet"
        table.add_row(name, row["address"] or "-", key, pinned)
    console.print(table)


@nodes_app.command("trust")
def trust(
    stack: StackArg,
    node: NodeArg,
    fingerprint: Annotated[
        str | None,
        typer.Option(help="The SHA256:... fingerprint you checked on the node; no question."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Trust the key shown without asking.")
    ] = False,
    simulate: SimulateOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Read the node's host key again and pin it, after showing the old and new fingerprint.

    Check the new fingerprint on the node first (`ssh-keygen -lf
    /etc/ssh/ssh_host_ed25519_key.pub` on its console): a key that changed without a reason
    is what an impersonated node looks like.
    """
    client = _client()
    params = {} if simulate is None else {"simulate": simulate}
    check: dict[str, Any] = client.request(
        "GET", api_path("v1", "stacks", stack, "nodes", node, "host-key"), params=params
    )
    if not json_output:
        console.print(f"node `{node}` of `{stack}` at {check['address']}", markup=False)
        console.print(f"  pinned:    {check['pinned'] or '(nothing yet)'}", markup=False)
        console.print(
            f"  presented: {check['presented']} ({check['algorithm']})", markup=False
        )
    if check["pinned"] == check["presented"]:
        if json_output:
            print_json(check)
        else:
            console.print("the node presents its pinned key: nothing to do")
        return
    if fingerprint is None:
        if not yes:
            if not sys.stdin.isatty():
                fail(
                    f"trusting `{node}`'s new key needs confirmation: pass --fingerprint "
                    f"{check['presented']} after checking it on the node",
                    code=2,
                )
            typer.confirm("Did you check this fingerprint on the node? Trust it?", abort=True)
        fingerprint = check["presented"]
    result = client.request(
        "POST",
        api_path("v1", "stacks", stack, "nodes", node, "trust"),
        params=params,
        json={"fingerprint": fingerprint},
    )
    if json_output:
        print_json(result)
    else:
        console.print(f"node `{node}`: now trusting {result['presented']}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``kombify nodes`` to the main app."""
    app.add_typer(nodes_app, name="nodes")
