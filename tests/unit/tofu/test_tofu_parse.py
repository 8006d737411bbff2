"""Parsing of the CLI's JSON documents, ``-json`` event streams and human-readable error
blocks (samples are real, from Terraform 1.11)."""

from __future__ import annotations

import json

import pytest

from kombify.tofu.models import Diagnostic, PlanSummary
from kombify.tofu.parse import (
    TofuOutputError,
    load_json,
    parse_change_summary,
    parse_diagnostic_events,
    parse_human_diagnostics,
    parse_outputs_json,
    parse_plan_json,
    parse_validate_json,
)

VALIDATE_INVALID = {
    "format_version": "1.0",
    "valid": False,
    "error_count": 2,
    "warning_count": 0,
    "diagnostics": [
        {
            "severity": "error",
            "summary": "Unsupported argument",
            "detail": 'An argument named "foo" is not expected here.',
            "range": {
                "filename": "main.tf",
                "start": {"line": 3, "column": 3, "byte": 52},
                "end": {"line": 3, "column": 6, "byte": 55},
            },
        },
        {"severity": "warning", "summary": "Deprecated thing", "detail": ""},
    ],
}


def _change(address: str, actions: list[str], **extra: object) -> dict[str, object]:
    kind, name = address.rsplit(".", 1)
    return {
        "address": address,
        "type": kind,
        "name": name,
        "change": {"actions": actions, "before": {"secret": "x"}, "after": {"secret": "y"}},
        **extra,
    }


def test_validate_diagnostics_keep_file_line_and_column() -> None:
    diagnostics = parse_validate_json(VALIDATE_INVALID)
    assert diagnostics == [
        Diagnostic(
            severity="error",
            summary="Unsupported argument",
            detail='An argument named "foo" is not expected here.',
            file="main.tf",
            line=3,
            column=3,
        ),
        Diagnostic(severity="warning", summary="Deprecated thing"),
    ]
    assert str(diagnostics[0]).startswith("main.tf:3: error: Unsupported argument")


def test_validate_without_diagnostics_is_empty() -> None:
    assert parse_validate_json({"valid": True, "diagnostics": []}) == []


def test_plan_counts_follow_the_cli_including_replace() -> None:
    document = {
        "resource_changes": [
            _change("terraform_data.a", ["create"]),
            _change("terraform_data.b", ["update"]),
            _change("terraform_data.c", ["delete"]),
            _change("terraform_data.d", ["delete", "create"], action_reason="replace_by_triggers"),
            _change("terraform_data.e", ["create", "delete"]),
            _change("terraform_data.f", ["no-op"]),
            _change("data.x.y", ["read"]),
        ],
        "output_changes": {
            "ip": {"actions": ["create"]},
            "same": {"actions": ["no-op"]},
        },
    }
    summary = parse_plan_json(document)
    assert (summary.add, summary.change, summary.destroy) == (3, 1, 3)
    assert [r.action for r in summary.resources] == [
        "create",
        "update",
        "delete",
        "replace",
        "replace",
        "read",
    ]
    assert summary.resources[3].action_reason == "replace_by_triggers"
    assert summary.output_changes == ["ip"]
    assert summary.has_changes
    assert summary.describe() == "Plan: 3 to add, 1 to change, 3 to destroy."
    # Attribute values (which may be secrets) are not carried along.
    assert "secret" not in repr(summary)


def test_plan_with_only_no_ops_has_no_changes() -> None:
    document = {
        "resource_changes": [_change("terraform_data.a", ["no-op"])],
        "output_changes": {"a": {"actions": ["no-op"]}},
    }
    summary = parse_plan_json(document)
    assert summary == PlanSummary(add=0, change=0, destroy=0)
    assert not summary.has_changes
    assert summary.describe() == "No changes."


def test_plan_with_only_an_output_change_has_changes() -> None:
    summary = parse_plan_json({"output_changes": {"a": {"actions": ["update"]}}})
    assert summary.has_changes and summary.add == 0


def test_destroy_plan_is_marked() -> None:
    document = {"resource_changes": [_change("terraform_data.a", ["delete"])]}
    assert parse_plan_json(document, destroy_plan=True).destroy_plan


def test_outputs_split_sensitive_from_values() -> None:
    document = {
        "a": {"sensitive": False, "type": "string", "value": "hello"},
        "tok": {"sensitive": True, "type": "string", "value": "s3cr3t"},
        "n": {"sensitive": False, "type": "number", "value": 3},
    }
    values, sensitive = parse_outputs_json(document)
    assert values == {"a": "hello", "n": 3}
    assert sensitive == ["tok"]


def _summary(add: int, change: int, remove: int, operation: str) -> dict[str, object]:
    return {
        "@level": "info",
        "@message": "…",
        "type": "change_summary",
        "changes": {
            "add": add,
            "change": change,
            "import": 0,
            "remove": remove,
            "operation": operation,
        },
    }


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([_summary(2, 0, 1, "apply")], (2, 0, 1)),
        ([_summary(9, 9, 9, "plan"), _summary(3, 4, 0, "apply")], (3, 4, 0)),  # the last one
        ([_summary(0, 0, 5, "destroy")], (0, 0, 5)),
        ([{"type": "apply_complete", "@message": "Apply complete! Resources: 7 added"}], (0, 0, 0)),
    ],
)
def test_counts_come_from_the_change_summary_event(
    events: list[dict[str, object]], expected: tuple[int, int, int]
) -> None:
    result = parse_change_summary(events)
    assert (result.added, result.changed, result.destroyed) == expected


PROVISIONER_ERROR_EVENT = json.loads(
    r"""{"@level":"error","@message":"Error: local-exec provisioner error","@module":"terraform.ui",
    "diagnostic":{"severity":"error","summary":"local-exec provisioner error",
    "detail":"Error running command 'exit 3': exit status 3.",
    "address":"terraform_data.bad","range":{"filename":"main.tf.json",
    "start":{"line":2,"column":136,"byte":221},"end":{"line":2,"column":137,"byte":222}},
    "snippet":{"context":"resource.terraform_data.bad","code":"x","start_line":2,
    "highlight_start_offset":135,"highlight_end_offset":136,"values":[]}},"type":"diagnostic"}"""
)


def test_diagnostic_events_keep_place_and_detail() -> None:
    stale = {
        "type": "diagnostic",
        "diagnostic": {"severity": "error", "summary": "Saved plan is stale", "detail": "…"},
    }
    events = [{"type": "version", "@message": "Terraform 1.11.4"}, PROVISIONER_ERROR_EVENT, stale]
    assert parse_diagnostic_events(events) == [
        Diagnostic(
            severity="error",
            summary="local-exec provisioner error",
            detail="Error running command 'exit 3': exit status 3.",
            file="main.tf.json",
            line=2,
            column=136,
        ),
        Diagnostic(severity="error", summary="Saved plan is stale", detail="…"),
    ]


def test_a_replace_names_the_trigger_keys_that_changed_never_values() -> None:
    change = {
        "address": "terraform_data.node_box",
        "type": "terraform_data",
        "name": "node_box",
        "action_reason": "replace_because_cannot_update",
        "change": {
            "actions": ["delete", "create"],
            "before": {"triggers_replace": {"bootstrap": "sha256:aa", "node": "box"}},
            "after": {"triggers_replace": {"bootstrap": "sha256:bb", "node": "box"}},
            "after_unknown": {"id": True, "triggers_replace": {"machine": True}},
            "replace_paths": [["triggers_replace"]],
        },
    }
    [resource] = parse_plan_json({"resource_changes": [change]}).resources
    assert resource.action == "replace"
    assert resource.replaced_by == ["triggers_replace.bootstrap", "triggers_replace.machine"]
    assert "sha256" not in repr(resource)
    plain = {**change, "change": {**change["change"], "replace_paths": [["image"]]}}
    assert parse_plan_json({"resource_changes": [plain]}).resources[0].replaced_by == ["image"]


PROVISIONER_ERROR = """
Error: execution halted


Error: local-exec provisioner error

  with terraform_data.s,
  on main.tf line 3, in resource "terraform_data" "s":
   3:   provisioner "local-exec" {

Error running command 'echo start; sleep 30; echo end': signal: interrupt.
Output: start

"""


def test_human_diagnostics_with_location_and_detail() -> None:
    diagnostics = parse_human_diagnostics(PROVISIONER_ERROR.splitlines())
    assert diagnostics == [
        Diagnostic(severity="error", summary="execution halted"),
        Diagnostic(
            severity="error",
            summary="local-exec provisioner error",
            detail="Error running command 'echo start; sleep 30; echo end': signal: interrupt.\n"
            "Output: start",
            file="main.tf",
            line=3,
        ),
    ]


def test_human_diagnostics_inside_the_terminal_box() -> None:
    lines = [
        "╷",
        "│ Warning: Unable to open CLI configuration file",
        "│ ",
        '│ The CLI configuration file at "/root/.terraformrc" does not exist.',
        "╵",
    ]
    [diagnostic] = parse_human_diagnostics(lines)
    assert diagnostic.severity == "warning"
    assert diagnostic.summary == "Unable to open CLI configuration file"
    assert "does not exist" in diagnostic.detail


def test_text_before_the_first_block_is_ignored() -> None:
    assert parse_human_diagnostics(["Initializing the backend...", ""]) == []


def test_load_json_names_the_document_on_garbage() -> None:
    with pytest.raises(TofuOutputError, match="show -json"):
        load_json("panic: oh no", what="show -json")


def test_validate_diagnostics_are_sorted_by_place() -> None:
    def at(line: int | None) -> dict[str, object]:
        rng = {"filename": "main.tf", "start": {"line": line, "column": 1}} if line else {}
        return {"severity": "error", "summary": f"at {line}", "range": rng}

    document = {"diagnostics": [at(9), at(None), at(2)]}
    assert [d.line for d in parse_validate_json(document)] == [2, 9, None]
