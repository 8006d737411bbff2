"""The graph as SVG, laid out by graphviz's ``dot`` (Debian's ``graphviz`` package).

The graph is written as DOT with every label a quoted string (backslash and double quote
escaped, so no name can end it), then ``dot -Tsvg`` runs with a time limit. ``dot`` escapes
the text it writes into the SVG itself.
"""

from __future__ import annotations

import shutil
import subprocess

from kombify.errors import KombifyError, ServiceUnavailableError
from kombify.operate.graph.model import StackGraph
from kombify.operate.graph.style import colours, edge_text, element_lines

DOT_TIMEOUT_S = 30.0
GRAPHVIZ_PACKAGE = "graphviz"
_SHAPES = {"node": "box3d", "service": "box", "network": "hexagon", "route": "cds"}
_EDGE_STYLES = {
    "placement": "solid",
    "network": "dashed",
    "route": "bold",
    "vpn-link": "dotted",
}


class RenderError(KombifyError):
    """``dot`` failed to draw a graph."""

    code = "render-failed"
    status = 500


def quote(text: str) -> str:
    """A DOT quoted string holding ``text`` (lines broken with centred ``\\n``)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r", "").replace("\n", "\\n")
    return f'"{body}"'


def to_dot(graph: StackGraph) -> str:
    """The DOT source of the graph (ids ``n0``, ``n1`` …; names only inside quoted labels)."""
    ids = {e.id: f"n{i}" for i, e in enumerate(graph.elements)}
    title = f"{graph.stack} r{graph.revision} ({graph.source})"
    lines = [
        "digraph kombify {",
        "  rankdir=LR;",
        f"  label={quote(title)}; labelloc=t; fontname=Helvetica;",
        '  node [fontname=Helvetica, fontsize=11, style="filled,rounded"];',
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    for element in graph.elements:
        fill, stroke = colours(element.state)
        label = "\n".join(element_lines(element))
        lines.append(
            f"  {ids[element.id]} [label={quote(label)}, shape={_SHAPES[element.kind]}, "
            f'fillcolor="{fill}", color="{stroke}", id={quote(element.id)}];'
        )
    for edge in graph.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        _, stroke = colours(edge.state)
        extra = ", dir=both" if edge.kind == "vpn-link" else ""
        extra += ", arrowhead=none" if edge.kind == "network" else ""
        lines.append(
            f"  {ids[edge.source]} -> {ids[edge.target]} [label={quote(edge_text(edge))}, "
            f'style={_EDGE_STYLES[edge.kind]}, color="{stroke}", id={quote(edge.id)}{extra}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_binary() -> str:
    """Where ``dot`` is.

    Raises:
        ServiceUnavailableError: It is not installed.
    """
    found = shutil.which("dot")
    if found is None:
        raise ServiceUnavailableError(
            "drawing SVG needs graphviz's `dot`, which is not on this machine: "
            f"apt-get install {GRAPHVIZ_PACKAGE} (or use format mermaid or json)"
        )
    return found


def to_svg(graph: StackGraph, *, timeout: float = DOT_TIMEOUT_S) -> str:
    """The graph drawn by ``dot -Tsvg``.

    Raises:
        ServiceUnavailableError: ``dot`` is not installed.
        RenderError: ``dot`` failed or did not finish within ``timeout`` seconds.
    """
    command = [dot_binary(), "-Tsvg"]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command; the graph goes to stdin
            command,
            input=to_dot(graph).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"`dot -Tsvg` did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-500:]
        raise RenderError(f"`dot -Tsvg` exited with {done.returncode}: {tail}")
    return done.stdout.decode()
