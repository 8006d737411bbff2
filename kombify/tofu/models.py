"""Values the OpenTofu wrapper hands back: diagnostics, plan summaries, apply results.

They are frozen dataclasses of plain types so they cross the Temporal boundary as they are.
None of them carries attribute values from the plan or state: those may hold secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning the CLI reported about a configuration.

    Attributes:
        severity: ``"error"`` or ``"warning"``.
        summary: The one-line summary (``Unsupported argument``).
        detail: The longer explanation, possibly empty.
        file: The file the problem is in, relative to the work directory, if known.
        line: The 1-based line of the problem, if known.
        column: The 1-based column of the problem, if known.
    """

    severity: str
    summary: str
    detail: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        text = f"{where}{self.severity}: {self.summary}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class ResourceChange:
    """What a plan does to one resource instance.

    Attributes:
        address: Full address (``module.x.terraform_data.node["a"]``).
        type: Resource type (``terraform_data``).
        name: Resource name in its module.
        actions: The CLI's action list (``["create"]``, ``["delete", "create"]``, ``["no-op"]``).
        action: One word for the change: create, update, delete, replace, read or no-op.
        action_reason: Why a replace or delete happens (``replace_by_triggers``), if given.
        replaced_by: For a replace, the attributes that force it, down to the changed keys
            of a map (``triggers_replace.bootstrap``): names only, never values.
    """

    address: str
    type: str
    name: str
    actions: list[str]
    action: str
    action_reason: str | None = None
    replaced_by: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanSummary:
    """The counts and resource list of one saved plan, read from ``show -json``.

    Attributes:
        add: Resources to create (a replace counts here and in ``destroy``, as the CLI counts).
        change: Resources to update in place.
        destroy: Resources to delete.
        resources: Every resource change except no-ops, in the CLI's order.
        output_changes: Names of root outputs whose value changes.
        destroy_plan: Whether this was planned with ``-destroy``.
    """

    add: int
    change: int
    destroy: int
    resources: list[ResourceChange] = field(default_factory=list)
    output_changes: list[str] = field(default_factory=list)
    destroy_plan: bool = False

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would change any resource or output."""
        return bool(self.add or self.change or self.destroy or self.output_changes)

    def describe(self) -> str:
        """The CLI's own summary sentence (``Plan: 1 to add, 0 to change, 0 to destroy.``)."""
        if not self.has_changes:
            return "No changes."
        return f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did and the root outputs it left.

    Attributes:
        added: Resources created, from the CLI's ``change_summary`` event.
        changed: Resources updated in place.
        destroyed: Resources deleted.
        outputs: Values of the non-sensitive root outputs.
        sensitive_outputs: Names of outputs left out because they are sensitive.
    """

    added: int = 0
    changed: int = 0
    destroyed: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    sensitive_outputs: list[str] = field(default_factory=list)
