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


@dataclass(frozen=True)
class RoutesQuery:
    """Which deployed revision of which stack to ask the proxy about (``kombify routes``)."""

    organisation: str
    stack: str
    revision: int
    simulate: bool = False


@dataclass(frozen=True)
class RouteSeen:
    """One route the deployed revision wants, and whether the proxy routes it now.

    ``state``: ``routed`` (the proxy has it), ``missing`` (wanted, not loaded), ``unknown``
    (the proxy did not answer) or ``not-wanted`` (loaded, no longer in the revision).
    """

    url: str
    service: str
    upstreams: list[str]
    state: str


@dataclass(frozen=True)
class RoutesSeen:
    """What the stack's proxy answered, asked now.

    ``https``: where this machine reaches the proxy's port 443 (a simulated node's port is
    published on 127.0.0.1; ``curl --resolve <host>:<port>:127.0.0.1``), else the proxy
    node's address. ``root_ca_pem``: the proxy's local CA root (public) for internal TLS.
    """

    proxy_node: str
    proxy_service: str
    answered: bool
    error: str
    issuer: str
    https: str
    routes: list[RouteSeen] = field(default_factory=list)
    root_ca_pem: str = ""
