"""The durable contract of owners' YAML workflows (``kind: Workflow``) and their schedules.

``RunUserWorkflow`` interprets one workflow file; a Temporal Schedule starts it with the same
input as ``kombify workflow run`` does. The names here are in running histories and in stored
schedules: add fields with defaults, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER_WORKFLOW_NAME = "RunUserWorkflow"
"""Temporal workflow type of the interpreter."""


@dataclass(frozen=True)
class UserWorkflowInput:
    """One run of an owner's workflow file.

    Attributes:
        organisation: Slug of the organisation the run acts in (stacks are looked up there).
        source: The workflow file's text, as validated when the run or schedule was made.
        filename: Where the text came from, for error messages ("nightly.yaml").
        triggered_by: Who or what started it: "user:<id>", "api-key:<id>", "schedule:<name>".
        inputs: Values of the file's ``spec.inputs`` (``--input name=value``); the file's
            defaults fill in the rest.
    """

    organisation: str
    source: str
    filename: str = "workflow.yaml"
    triggered_by: str = ""
    inputs: dict[str, str] = field(default_factory=dict)


def user_workflow_id_prefix(organisation: str) -> str:
    """Workflow ids of one organisation's runs start with this (runs are listed by it).

    The dots matter: organisation slugs hold only ``[a-z0-9-]``, so no organisation's prefix
    is the start of another's (with dashes, ``a``'s runs would include ``a-b``'s).
    """
    return f"kombify-userwf.{organisation}."
