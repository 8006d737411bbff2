"""The dataclasses that cross the boundary of the ApplyRoutes activity.

Names, paths and host names only; the proxy's root certificate (public) is written to the
stack's directory by the activity, never carried here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kombify.contracts.deploy import NodeTarget


@dataclass(frozen=True)
class RoutesInput:
    """A stack's routes to load into its proxy: the plan's work dir and the stack's nodes."""

    deployment_id: str
    stack_id: str
    workdir: str
    nodes: list[NodeTarget]


@dataclass(frozen=True)
class RoutesResult:
    """What the proxy routes after the activity.

    ``state``: ``done`` (routes loaded) or ``skipped`` (no proxy in the stack, or no service
    exposed; a proxy still holding routes of an earlier apply is cleared first).
    """

    state: str
    detail: str
    proxy_node: str = ""
    hosts: list[str] = field(default_factory=list)
