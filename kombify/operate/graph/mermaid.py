"""The graph as a Mermaid flowchart (text), for Markdown, GitHub and the Mermaid live editor.

Every name drawn comes from a user's file or a node's answer, so labels are written as quoted
strings with every character outside a small safe set as a Mermaid entity code (``#34;``):
no name can end a label, open a link, a ``click`` callback or HTML. Ids are generated
(``n0``, ``n1`` …), never taken from names.
"""

from __future__ import annotations

import re

from kombify.operate.graph.model import GraphEdge, StackGraph
from kombify.operate.graph.style import COLOURS, colours, edge_text, element_lines

_SAFE = re.compile(r"[A-Za-z0-9 .,:/_()@+=-]")
# Box shapes by kind: open and close around the quoted label.
_SHAPES = {
    "node": ("[", "]"),
    "service": ("(", ")"),
    "network": ("{{", "}}"),
    "route": (">", "]"),
}
_ARROWS = {"placement": "-->", "network": "-.-", "route": "==>", "vpn-link": "<-.->"}


def escape(text: str) -> str:
    """``text`` with everything but letters, digits and plain punctuation as entity codes."""
    return "".join(c if _SAFE.fullmatch(c) else f"#{ord(c)};" for c in text)


def state_class(state: str) -> str:
    """The class name a state's boxes get (``state-x`` is no valid class name)."""
    return "st_" + re.sub(r"[^a-z0-9]", "_", state.lower())


def _label(lines: list[str]) -> str:
    return '"' + "<br>".join(escape(line) for line in lines) + '"'


def _edge(ids: dict[str, str], edge: GraphEdge) -> str:
    arrow = _ARROWS[edge.kind]
    text = edge_text(edge)
    middle = f"{arrow}|{_label([text])}|" if text else arrow
    return f"    {ids[edge.source]} {middle} {ids[edge.target]}"


def to_mermaid(graph: StackGraph) -> str:
    """The flowchart (``flowchart LR``), one box per element, coloured by state."""
    ids = {e.id: f"n{i}" for i, e in enumerate(graph.elements)}
    title = f"{graph.stack} r{graph.revision} ({graph.source})"
    lines = ["---", f'title: "{escape(title)}"', "---", "flowchart LR"]
    for element in graph.elements:
        opening, closing = _SHAPES[element.kind]
        lines.append(f"    {ids[element.id]}{opening}{_label(element_lines(element))}{closing}")
    for edge in graph.edges:
        if edge.source in ids and edge.target in ids:
            lines.append(_edge(ids, edge))
    used = sorted({e.state for e in graph.elements})
    for state in used:
        fill, stroke = colours(state)
        lines.append(f"    classDef {state_class(state)} fill:{fill},stroke:{stroke},color:#212121")
    for state in used:
        members = ",".join(ids[e.id] for e in graph.elements if e.state == state)
        lines.append(f"    class {members} {state_class(state)}")
    return "\n".join(lines) + "\n"


__all__ = ["COLOURS", "escape", "state_class", "to_mermaid"]
