"""The stack diagram's data: elements (nodes, services, networks, routes) and edges.

This is the JSON form ``GET /v1/stacks/{name}/graph`` answers and ``kombify graph --format
json`` prints (docs/graph.md describes it field by field); the Mermaid and SVG renderers draw
it. ``version`` changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

GRAPH_VERSION: Literal[1] = 1

ElementKind = Literal["node", "service", "network", "route"]
EdgeKind = Literal["placement", "network", "route", "vpn-link"]
Source = Literal["deployed", "current"]


class GraphElement(BaseModel):
    """One box of the diagram."""

    id: str = Field(
        description="Stable id: `node:<name>`, `service:<name>`, `network:<name>` (a swarm "
        "overlay), `network:<node>/<name>` (a network on one node) or `route:<host>`."
    )
    kind: ElementKind
    label: str = Field(description="What the diagram shows as its name.")
    state: str = Field(description="Its live state (docs/graph.md lists the words).")
    detail: str | None = Field(
        default=None, description="Why it is in that state, in words (a node's error …)."
    )
    attrs: dict[str, Any] = Field(
        default_factory=dict, description="Kind-specific facts (docs/graph.md)."
    )


class GraphEdge(BaseModel):
    """One line of the diagram, from ``source`` to ``target`` (element ids)."""

    id: str = Field(
        description="Stable id: `<kind>:<source>-><target>` (`vpn-link:<a>--<b>` for VPN links)."
    )
    kind: EdgeKind
    source: str
    target: str
    label: str = Field(description="What the diagram writes on the line (may be empty).")
    state: str
    detail: str | None = None
    replicas: int | None = Field(
        default=None,
        description="Placement: replicas wanted on that node (null: the swarm decides).",
    )
    running: int | None = Field(
        default=None, description="Placement: replicas running there now (null: not asked)."
    )
    attrs: dict[str, Any] = Field(default_factory=dict)


class GraphVpn(BaseModel):
    """The stack's VPN, whose links are the ``vpn-link`` edges."""

    provider: str = Field(description="wireguard (kombify's mesh) or headscale.")
    subnet: str
    interface: str = Field(description="The interface on each node (wg-kombify, tailscale0).")


class StackGraph(BaseModel):
    """A stack as a graph: what its revision wants, with the state its nodes report now."""

    version: Literal[1] = GRAPH_VERSION
    stack: str
    revision: int = Field(description="The revision drawn.")
    source: Source = Field(
        description="`deployed` (the revision the last deploy rolled out) or `current` "
        "(never deployed, or destroyed since: the newest stored revision)."
    )
    stackkit: str
    platform: str = Field(description="docker (each node's agent) or swarm.")
    domain: str
    live: bool = Field(description="Whether the nodes were asked now (states are theirs).")
    observed_at: str | None = Field(description="When they were asked (UTC, RFC 3339).")
    error: str | None = Field(description="Why the nodes could not be asked at all.")
    vpn: GraphVpn | None = None
    elements: list[GraphElement]
    edges: list[GraphEdge]

    def element(self, element_id: str) -> GraphElement:
        """The element with this id (KeyError when there is none)."""
        for found in self.elements:
            if found.id == element_id:
                return found
        raise KeyError(element_id)

    def of_kind(self, kind: str) -> list[GraphElement]:
        """Elements of one kind, in the graph's order."""
        return [e for e in self.elements if e.kind == kind]

    def edges_of(self, kind: str) -> list[GraphEdge]:
        """Edges of one kind, in the graph's order."""
        return [e for e in self.edges if e.kind == kind]
