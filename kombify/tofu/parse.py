"""Turn the CLI's output into values: its JSON documents and ``-json`` event streams.

Counts and errors come from the machine-readable output only (``change_summary`` and
``diagnostic`` events, ``show -json``, ``validate -json``). The human-readable ``Error:``
blocks are parsed only for what the CLI prints outside a JSON stream (``init``, which has no
``-json`` before Terraform 1.9 / OpenTofu 1.9, and messages printed before the stream starts).

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
    diagnostics = [_diagnostic(raw) for raw in document.get("diagnostics") or []]
    return sorted(
        diagnostics, key=lambda d: (d.file is None, d.file or "", d.line or 0, d.column or 0)
    )


def _diagnostic(raw: Mapping[str, Any]) -> Diagnostic:
    """One diagnostic in the shape ``validate -json`` and ``diagnostic`` events share."""
    rng = raw.get("range") or {}
    start = rng.get("start") or {}
    return Diagnostic(
        severity=str(raw.get("severity", "error")),
        summary=str(raw.get("summary", "")),
        detail=str(raw.get("detail") or ""),
        file=rng.get("filename"),
        line=start.get("line"),
        column=start.get("column"),
    )


def parse_diagnostic_events(events: Iterable[Mapping[str, Any]]) -> list[Diagnostic]:
    """The errors and warnings of a ``-json`` stream (its ``diagnostic`` events), in order."""
    return [
        _diagnostic(event.get("diagnostic") or {})
        for event in events
        if event.get("type") == "diagnostic"
    ]


def parse_change_summary(events: Iterable[Mapping[str, Any]]) -> ApplyResult:
    """Counts from the last ``change_summary`` event of an apply or destroy (0 if none).

    ``{"changes": {"add": 1, "change": 0, "remove": 0, "operation": "apply"}}``.
    """
    changes: Mapping[str, Any] = {}
    for event in events:
        if event.get("type") == "change_summary":
            changes = event.get("changes") or {}
    return ApplyResult(
        added=int(changes.get("add", 0)),
        changed=int(changes.get("change", 0)),
        destroyed=int(changes.get("remove", 0)),
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
                replaced_by=_replaced_by(raw.get("change") or {}) if action == "replace" else [],
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


def _replaced_by(change: Mapping[str, Any]) -> list[str]:
    """The attributes forcing a replace; for a map (``triggers_replace``), its changed keys.

    Only names leave this function: the values may be secrets.
    """
    before = change.get("before") or {}
    after = change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    found: list[str] = []
    for path in change.get("replace_paths") or []:
        name = ".".join(str(p) for p in path)
        old, new = _at(before, path), _at(after, path)
        if isinstance(old, dict) and isinstance(new, dict):
            # after_unknown marks values known only after apply: {"key": true}.
            later = _at(unknown, path)
            pending = {k for k, v in (later if isinstance(later, dict) else {}).items() if v}
            keys = sorted(
                k for k in set(old) | set(new) | pending if k in pending or old.get(k) != new.get(k)
            )
            if keys:
                found += [f"{name}.{k}" for k in keys]
                continue
        found.append(name)
    return found


def _at(data: Any, path: list[Any]) -> Any:
    for step in path:
        if isinstance(data, dict) and isinstance(step, str):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


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
