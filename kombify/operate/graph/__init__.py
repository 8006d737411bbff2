"""Stack diagrams: a stack's nodes, services, networks, routes and VPN links with live states.

:mod:`.model` is the JSON form (docs/graph.md), :mod:`.build` makes it from a kombination and
what the nodes answered, :mod:`.mermaid` and :mod:`.svg` draw it.
"""

from __future__ import annotations

from kombify.operate.graph.build import Observed, build_graph
from kombify.operate.graph.mermaid import to_mermaid
from kombify.operate.graph.model import GRAPH_VERSION, GraphEdge, GraphElement, StackGraph
from kombify.operate.graph.svg import to_svg

__all__ = [
    "GRAPH_VERSION",
    "GraphEdge",
    "GraphElement",
    "Observed",
    "StackGraph",
    "build_graph",
    "to_mermaid",
    "to_svg",
]
