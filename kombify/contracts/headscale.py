"""The dataclasses of the Headscale activities (public data only: no pre-auth key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kombify.contracts.deploy import NodeTarget


@dataclass(frozen=True)
class HeadscaleInput:
    """A stack's Headscale: ``prepare`` (before rollout) or ``enroll`` (after it)."""

    deployment_id: str
    stack_id: str
    workdir: str
    nodes: list[NodeTarget]


@dataclass(frozen=True)
class HeadscaleResult:
    """Where the server runs, and which nodes were enrolled now or already were."""

    server: str
    server_url: str
    enrolled: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
