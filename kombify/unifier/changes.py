"""What an OpenTofu plan does to each node, and why, in the user's words.

The unifier names every resource of a node ``node_<name>`` (see :mod:`.config`), so a plan's
resource changes group by node. Services are not among them: they reach a node through its
agent in the rollout step. Pure functions of the plan summary (no I/O), so the deploy
workflow can call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from kombify.tofu.models import PlanSummary, ResourceChange
from kombify.unifier.canonical import ident
from kombify.unifier.config import TRIGGER_REASONS

SERVICES_LINE = "services: changed through the node agent in the rollout step, not by OpenTofu"
_NODE_RESOURCE = "terraform_data"
_REASONS = {
    "replace_because_tainted": "an earlier bootstrap did not finish",
    "replace_by_request": "replacement requested",
}


@dataclass(frozen=True)
class NodeChange:
    """One node's part of a plan.

    Attributes:
        node: The node's name.
        action: ``no change``, ``create``, ``re-bootstrap``, ``update`` or ``destroy``.
        reason: Why, when it is not obvious (``bootstrap script changed``).
    """

    node: str
    action: str
    reason: str = ""

    def __str__(self) -> str:
        text = f"node {self.node}: {self.action}"
        return f"{text} ({self.reason})" if self.reason else text

    def as_dict(self) -> dict[str, str]:
        """The JSON form (``--json`` output)."""
        return asdict(self)


def node_changes(summary: PlanSummary, nodes: Sequence[str]) -> list[NodeChange]:
    """Per node, what ``summary`` does to it: every node of ``nodes``, in order, then the
    nodes the plan removes (no longer in the kombination)."""
    by_node: dict[str, list[ResourceChange]] = {}
    for change in summary.resources:
        if change.name.startswith("node_"):
            by_node.setdefault(change.name, []).append(change)
    result = [_one(name, by_node.pop(ident("node", name), [])) for name in nodes]
    # Node names are DNS labels (no "_"), so the resource name gives the name back.
    result += [_one(key[len("node_") :].replace("_", "-"), by_node[key]) for key in sorted(by_node)]
    return result


def plan_lines(summary: PlanSummary, nodes: Sequence[str]) -> list[str]:
    """The plan as the user reads it: one line per node, then where service changes go."""
    lines = [str(c) for c in node_changes(summary, nodes)]
    others = [c for c in summary.resources if not c.name.startswith("node_")]
    lines += [f"stack: {c.action} {c.address}" for c in others]
    return [*lines, SERVICES_LINE]


def _one(node: str, changes: list[ResourceChange]) -> NodeChange:
    if not changes:
        return NodeChange(node, "no change")
    main = next((c for c in changes if c.type == _NODE_RESOURCE), None)
    if all(c.action == "delete" for c in changes):
        return NodeChange(node, "destroy", "no longer in the kombination")
    if main is not None and main.action == "create":
        return NodeChange(node, "create")
    if main is not None and main.action == "replace":
        return NodeChange(node, "re-bootstrap", _why(main))
    return NodeChange(node, "update", ", ".join(f"{c.type} {c.action}" for c in changes))


def _why(change: ResourceChange) -> str:
    reasons = []
    for path in change.replaced_by:
        key = path.removeprefix("triggers_replace.")
        reason = TRIGGER_REASONS.get(key, f"{path} changed")
        if reason not in reasons:
            reasons.append(reason)
    if reasons:
        return ", ".join(reasons)
    return _REASONS.get(change.action_reason or "", change.action_reason or "")
