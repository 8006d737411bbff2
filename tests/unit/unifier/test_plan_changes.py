"""Per-node plan lines: what OpenTofu does to each node and why."""

from __future__ import annotations

from kombify.tofu.models import PlanSummary, ResourceChange
from kombify.unifier.changes import SERVICES_LINE, node_changes, plan_lines


def _rc(address: str, action: str, **extra: object) -> ResourceChange:
    kind, name = address.split(".", 1)
    actions = {"replace": ["delete", "create"]}.get(action, [action])
    return ResourceChange(address, kind, name, actions, action, **extra)  # type: ignore[arg-type]


def test_a_node_the_plan_leaves_alone_says_no_change() -> None:
    lines = plan_lines(PlanSummary(0, 0, 0), ["box"])
    assert lines == ["node box: no change", SERVICES_LINE]


def test_a_replace_says_which_trigger_changed() -> None:
    summary = PlanSummary(
        1,
        0,
        1,
        [
            _rc(
                "terraform_data.node_box",
                "replace",
                action_reason="replace_because_cannot_update",
                replaced_by=["triggers_replace.bootstrap"],
            ),
            _rc("terraform_data.node_worker_a", "create"),
        ],
    )
    assert [str(c) for c in node_changes(summary, ["box", "worker-a", "nas"])] == [
        "node box: re-bootstrap (bootstrap script changed)",
        "node worker-a: create",
        "node nas: no change",
    ]


def test_removed_nodes_tainted_bootstraps_and_cloud_updates() -> None:
    summary = PlanSummary(
        1,
        1,
        3,
        [
            _rc("terraform_data.node_a", "replace", action_reason="replace_because_tainted"),
            _rc("hcloud_firewall.node_b", "update"),
            _rc("terraform_data.node_old_one", "delete"),
            _rc("hcloud_server.node_old_one", "delete"),
            _rc("terraform_data.node_c", "replace", replaced_by=["triggers_replace.machine"]),
            _rc("hcloud_server.node_c", "replace", replaced_by=["image"]),
            _rc("aws_vpc.kombify_eu", "create"),
        ],
    )
    assert plan_lines(summary, ["a", "b", "c"]) == [
        "node a: re-bootstrap (an earlier bootstrap did not finish)",
        "node b: update (hcloud_firewall update)",
        "node c: re-bootstrap (new server)",
        "node old-one: destroy (no longer in the kombination)",
        "stack: create aws_vpc.kombify_eu",
        SERVICES_LINE,
    ]
