"""``kombify graph STACK``: the stack drawn as Mermaid, SVG or JSON, with live states.

The CLI asks the API for the JSON form (docs/graph.md) and draws it here: Mermaid in Python,
SVG with graphviz's ``dot`` (``apt-get install graphviz``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import err_console, fail
from kombify.cli.params import StackArg
from kombify.operate.graph import GRAPH_VERSION, StackGraph, to_mermaid, to_svg
from kombify.settings import get_settings

FormatOpt = Annotated[
    Literal["mermaid", "svg", "json"],
    typer.Option("--format", "-f", help="mermaid (flowchart text), svg (needs `dot`) or json."),
]
OutOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
NoLiveOpt = Annotated[
    bool, typer.Option("--no-live", help="Do not ask the nodes: the desired graph only.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The same as --format json.")]


def graph(
    stack: StackArg,
    fmt: FormatOpt = "mermaid",
    output: OutOpt = None,
    no_live: NoLiveOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Draw the stack: nodes, services (replicas), networks, routes and VPN links, each with
    the state its node reports now (the deployed revision, else the current one)."""
    if json_output and fmt not in ("json", "mermaid"):
        fail(f"`--json` and `--format {fmt}` disagree: give one", code=2)
    if json_output:
        fmt = "json"
    params = {"format": "json", "live": "false" if no_live else "true"}
    data = ApiClient(get_settings()).request(
        "GET", api_path("v1", "stacks", stack, "graph"), params=params, timeout=120
    )
    if not isinstance(data, dict) or data.get("version") != GRAPH_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        fail(f"the API answered graph version {version!r}; this CLI reads {GRAPH_VERSION}")
    try:
        drawn = StackGraph.model_validate(data)
    except ValidationError as exc:
        fail(f"the API's graph does not read as version {GRAPH_VERSION}: {exc.errors()[0]}")
    if fmt == "json":
        text = drawn.model_dump_json(indent=2) + "\n"
    elif fmt == "svg":
        text = to_svg(drawn)
    else:
        text = to_mermaid(drawn)
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)
    if drawn.error:
        err_console.print(f"note: {drawn.error}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``graph`` to the main app."""
    app.command("graph")(graph)
