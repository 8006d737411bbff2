"""Turn the CLI's output (JSON documents and human-readable error blocks) into values.

Pure functions, no I/O, so every quirk of the formats is pinned by unit tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kombify.tofu.models import ApplyResult, Diagnostic, PlanSummary, ResourceChange

_BLOCK_START = re.compile(r"^(Error|Warning): (.*)$")
_LOCATION = re.compile(r"^\s*on (?P<file>.+?) line (?P<line>\d+)(?:, in .*)?:?\s*$")
_SNIPPET = re.compile(r"^\s*\d+:\s")
_WITH = re.compile(r"^\s*with .+,\s*$")
# The box the CLI draws around diagnostics when it thinks it has a terminal; -no-color drops
# it, but a user-supplied env may still bring it back, so it is stripped rather than trusted.
_BOX = re.compile(r"^[╷╵│] ?")
_COUNT = re.compile(r"(\d+) (added|changed|destroyed)")

STATE_LOCKED_MARKER = "Error acquiring the state lock"
PLAN_STALE_MARKER = "Saved plan is stale"


class TofuOutputError(ValueError):
    """The CLI printed something that is not the JSON document it promised."""


def load_json(text: str, *, what: str) -> Any:
    """Parse a JSON document the CLI printed.

    Args:
        text: The command's stdout.
        what: A name for the document, used in the error message.

    Raises:
        TofuOutputError: When ``text`` is not valid JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TofuOutputError(f"{what}: expected JSON from the CLI, got {text[:200]!r}") from exc


def parse_validate_json(document: Mapping[str, Any]) -> list[Diagnostic]:
    """Diagnostics from ``validate -json`` output.

    Args:
        document: The parsed JSON document (``{"valid": ..., "diagnostics": [...]}``).

    Returns:
        Every diagnostic, sorted by file, line and column, unplaced ones last (the CLI
        checks in parallel, so its own order changes from run to run).
    """
    diagnostics: list[Diagnostic] = []
    for raw in document.get("diagnostics") or []:
        rng = raw.get("range") or {}
        start = rng.get("start") or {}
        diagnostics.append(
            Diagnostic(
                severity=str(raw.get("severity", "error")),
                summary=str(raw.get("summary", "")),
                detail=str(raw.get("detail") or ""),
                file=rng.get("filename"),
                line=start.get("line"),
                column=start.get("column"),
            )
        )
    return sorted(
        diagnostics, key=lambda d: (d.file is None, d.file or "", d.line or 0, d.column or 0)
    )


def _action_of(actions: list[str]) -> str:
    if len(actions) == 2 and set(actions) == {"create", "delete"}:
        return "replace"
    return actions[0] if actions else "no-op"


def parse_plan_json(document: Mapping[str, Any], *, destroy_plan: bool = False) -> PlanSummary:
    """A summary of a saved plan from ``show -json PLANFILE``.

    Counts follow the CLI's own ``Plan:`` line: a replace adds one and destroys one; reads,
    forgets and no-ops are not counted. Attribute values are deliberately not copied, since a
    plan's before/after values may contain secrets.

    Args:
        document: The parsed JSON plan representation.
        destroy_plan: Whether the plan was made with ``-destroy`` (recorded in the summary).
    """
    add = change = destroy = 0
    resources: list[ResourceChange] = []
    for raw in document.get("resource_changes") or []:
        actions = [str(a) for a in (raw.get("change") or {}).get("actions") or []]
        action = _action_of(actions)
        if action == "no-op":
            continue
        if action == "create":
            add += 1
        elif action == "update":
            change += 1
        elif action == "delete":
            destroy += 1
        elif action == "replace":
            add += 1
            destroy += 1
        resources.append(
            ResourceChange(
                address=str(raw.get("address", "")),
                type=str(raw.get("type", "")),
                name=str(raw.get("name", "")),
                actions=actions,
                action=action,
                action_reason=raw.get("action_reason"),
            )
        )
    output_changes = sorted(
        name
        for name, raw in (document.get("output_changes") or {}).items()
        if _action_of([str(a) for a in raw.get("actions") or []]) != "no-op"
    )
    return PlanSummary(
        add=add,
        change=change,
        destroy=destroy,
        resources=resources,
        output_changes=output_changes,
        destroy_plan=destroy_plan,
    )


def parse_outputs_json(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split ``output -json`` into non-sensitive values and the names of sensitive ones."""
    values: dict[str, Any] = {}
    sensitive: list[str] = []
    for name, raw in sorted(document.items()):
        if raw.get("sensitive"):
            sensitive.append(name)
        else:
            values[name] = raw.get("value")
    return values, sensitive


def parse_apply_counts(lines: Iterable[str]) -> ApplyResult:
    """Counts from the CLI's ``Apply complete!``/``Destroy complete!`` line (0 if absent)."""
    counts = {"added": 0, "changed": 0, "destroyed": 0}
    for line in lines:
        if line.startswith(("Apply complete!", "Destroy complete!")):
            for number, kind in _COUNT.findall(line):
                counts[kind] = int(number)
    return ApplyResult(
        added=counts["added"], changed=counts["changed"], destroyed=counts["destroyed"]
    )


def parse_human_diagnostics(lines: Iterable[str]) -> list[Diagnostic]:
    """Diagnostics from the CLI's human-readable ``Error:``/``Warning:`` blocks.

    A block starts at ``Error: <summary>``; an ``on FILE line N`` line inside it gives the
    location; the source snippet and the ``with <address>,`` line are dropped; what remains
    is the detail.

    Args:
        lines: stderr (or combined output) of a command run with ``-no-color``.
    """
    diagnostics: list[Diagnostic] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is not None:
            detail = "\n".join(current["detail"]).strip()
            diagnostics.append(
                Diagnostic(
                    severity=current["severity"],
                    summary=current["summary"],
                    detail=detail,
                    file=current["file"],
                    line=current["line"],
                )
            )

    for raw in lines:
        line = _BOX.sub("", raw.rstrip())
        start = _BLOCK_START.match(line)
        if start:
            flush()
            current = {
                "severity": start.group(1).lower(),
                "summary": start.group(2).strip(),
                "file": None,
                "line": None,
                "detail": [],
            }
            continue
        if current is None:
            continue
        location = _LOCATION.match(line)
        if location and current["file"] is None:
            current["file"] = location.group("file")
            current["line"] = int(location.group("line"))
        elif _SNIPPET.match(line) or _WITH.match(line):
            continue
        elif line.strip() or current["detail"]:
            current["detail"].append(line.strip())
    flush()
    return diagnostics
