"""What changes between two kombination files: a semantic diff and a masked text diff.

Both are shown to anyone who may read a stack's history, so neither carries a value that may be
a secret. The rules (docs/history.md):

- env values are never shown, in either form: any of them may be a password. The semantic
  diff names the keys that were added, removed or changed; the text diff shows ``****``.
- A value whose key looks secret (``password``, ``secret``, ``token``, ``key``,
  ``credential``, as :func:`kombify.agent.drift.is_secret` decides) is ``****`` everywhere.
- Inside any other text (a command, a URL): ``NAME=value`` / ``--name value`` where NAME looks
  secret, and the password of ``scheme://user:password@host``, become ``****``.
- A service's ``command`` and a ``cmd`` health check are named as changed, without their text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from kombify.agent.drift import is_secret
from kombify.errors import SpecError
from kombify.specs.source import load_source

MASK = "****"

ChangeKind = Literal["added", "removed", "changed"]
ChangeObject = Literal["service", "node", "setting"]

# NAME=value, NAME: value, --name value, --name=value, where NAME looks secret.
_INLINE_SECRET = re.compile(
    r"(?P<name>[\w.-]*(?:password|passwd|secret|token|key|credential)[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*|\s+)(?P<value>[^\s\"',;&|]+)",
    re.IGNORECASE,
)
# A command-line flag that takes a secret as the next list item: ["--api-key", "k-123"].
_SECRET_FLAG = re.compile(
    r"-{1,2}[\w.-]*(?:password|passwd|secret|token|key|credential)[\w.-]*", re.I
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?P<at>@)", re.I)
# Service fields shown by what changed only: their text may carry credentials.
_OPAQUE_SERVICE_FIELDS = ("command",)


@dataclass(frozen=True)
class Change:
    """One thing that differs: a service, a node or a setting, and what about it."""

    kind: ChangeKind
    object: ChangeObject
    name: str
    details: tuple[str, ...] = ()

    def short(self) -> str:
        """``~web (image, env)``, ``+node n2``, ``~spec.domain``: for one-line summaries."""
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        what = "" if self.object == "setting" else f"{self.object} "
        changed = self.kind == "changed" and self.object != "setting"
        fields = [d.split(":", 1)[0] for d in self.details] if changed else []
        return f"{sign}{what}{self.name}" + (f" ({', '.join(fields)})" if fields else "")


@dataclass(frozen=True)
class SourceDiff:
    """The changes from one source to another, and the masked unified text diff."""

    changes: tuple[Change, ...] = ()
    text: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def summary(self) -> str:
        """One line: ``~service web (command); +node n2`` or ``no changes``."""
        return summarize(self.changes, text_changed=bool(self.text))


def summarize(changes: tuple[Change, ...] | list[Change], *, text_changed: bool) -> str:
    """One line of ``changes``: ``~service web (command); +node n2`` or ``no changes``."""
    if not changes:
        return "no changes (formatting only)" if text_changed else "no changes"
    return "; ".join(change.short() for change in changes)


# ---- semantic diff -------------------------------------------------------------------------------


def _data(source: str | None) -> dict[str, Any]:
    if source is None:
        return {}
    try:
        data = load_source(source).data
    except SpecError:
        return {}
    return data if isinstance(data, dict) else {}


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _flatten(value: object, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value} if prefix else {}


def mask_text(text: str) -> str:
    """``text`` with secret-looking ``NAME=value`` pairs and URL passwords replaced by ****."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    return _INLINE_SECRET.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def _shown(path: str, value: object) -> str:
    if any(is_secret(part) for part in path.split(".")):
        return MASK
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(path, item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(f'{path}.{k}', v)}" for k, v in value.items()) + "}"
    return mask_text(str(value))


def _field_changes(
    old: dict[str, Any], new: dict[str, Any], *, opaque: tuple[str, ...] = ()
) -> list[str]:
    """``field: old → new`` for each flattened field that differs (``opaque``: named only)."""
    before, after = _flatten(old), _flatten(new)
    details = []
    for path in sorted(before.keys() | after.keys()):
        was, now = before.get(path), after.get(path)
        if was == now:
            continue
        if path.split(".")[0] in opaque or path == "healthcheck.cmd":
            details.append(f"{path}: changed")
        else:
            details.append(f"{path}: {_shown(path, was)} → {_shown(path, now)}")
    return details


def _port(port: object) -> str:
    item = _mapping(port)
    host = item.get("host")
    spec = f"{host}:{item.get('container')}" if host is not None else f"{item.get('container')}"
    return f"{spec}/{item.get('protocol', 'tcp')}"


def _service_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    details: list[str] = []
    old_env, new_env = _mapping(old.get("env")), _mapping(new.get("env"))
    added = sorted(new_env.keys() - old_env.keys())
    removed = sorted(old_env.keys() - new_env.keys())
    changed = sorted(k for k in old_env.keys() & new_env.keys() if old_env[k] != new_env[k])
    parts = [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in changed]
    if parts:
        details.append(f"env: {', '.join(parts)} (values hidden)")
    old_ports = [_port(p) for p in old.get("ports") or []]
    new_ports = [_port(p) for p in new.get("ports") or []]
    if old_ports != new_ports:
        details.append(f"ports: [{', '.join(old_ports)}] → [{', '.join(new_ports)}]")
    rest_old = {k: v for k, v in old.items() if k not in ("env", "ports")}
    rest_new = {k: v for k, v in new.items() if k not in ("env", "ports")}
    details += _field_changes(rest_old, rest_new, opaque=_OPAQUE_SERVICE_FIELDS)
    order = ("image", "replicas", "ports", "env", "volumes", "healthcheck", "command")
    rank = {name: i for i, name in enumerate(order)}
    return sorted(details, key=lambda d: rank.get(d.split(":")[0].split(".")[0], len(order)))


def _keyed(
    old: dict[str, Any], new: dict[str, Any], what: ChangeObject, compare: Any
) -> list[Change]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            changes.append(Change("added", what, name))
        elif name not in new:
            changes.append(Change("removed", what, name))
        else:
            details = compare(_mapping(old[name]), _mapping(new[name]))
            if details:
                changes.append(Change("changed", what, name, tuple(details)))
    return changes


def _nodes(spec: dict[str, Any]) -> dict[str, Any]:
    nodes = spec.get("nodes")
    items = nodes if isinstance(nodes, list) else []
    return {str(n["name"]): n for n in items if isinstance(n, dict) and "name" in n}


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    if not data:
        return {}
    spec = {k: v for k, v in _mapping(data.get("spec")).items() if k not in ("services", "nodes")}
    top = {k: v for k, v in data.items() if k != "spec"}
    return _flatten({**top, "spec": spec})


def semantic_changes(old: str | None, new: str | None) -> list[Change]:
    """What differs between two kombination sources (``None``: no file, all added/removed).

    Settings first (stackkit, domain, network …), then nodes, then services, each by name.
    """
    a, b = _data(old), _data(new)
    changes: list[Change] = []
    before, after = _settings(a), _settings(b)
    if not a or not b:  # from or to no file at all: the header says nothing about the stack
        for header in ("apiVersion", "kind"):
            before.pop(header, None)
            after.pop(header, None)
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            changes.append(
                Change("added", "setting", path, (f"{path}: {_shown(path, after[path])}",))
            )
        elif path not in after:
            changes.append(Change("removed", "setting", path))
        elif before[path] != after[path]:
            detail = f"{path}: {_shown(path, before[path])} → {_shown(path, after[path])}"
            changes.append(Change("changed", "setting", path, (detail,)))
    spec_a, spec_b = _mapping(a.get("spec")), _mapping(b.get("spec"))
    changes += _keyed(_nodes(spec_a), _nodes(spec_b), "node", _field_changes)
    services_a, services_b = _mapping(spec_a.get("services")), _mapping(spec_b.get("services"))
    changes += _keyed(services_a, services_b, "service", _service_changes)
    return changes


# ---- masked text ---------------------------------------------------------------------------


def _scalar_spans(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, whole) of each scalar value; ``whole``: mask all of it, not just inline."""
    # The pure-Python loader: its marks count characters (libyaml's may count bytes).
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    spans: list[tuple[int, int, bool]] = []

    def walk(item: yaml.Node | None, path: tuple[str, ...], after_flag: bool = False) -> None:
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                walk(value, (*path, str(key.value)))
        elif isinstance(item, yaml.SequenceNode):
            flag = False
            for value in item.value:
                walk(value, path, flag)
                text = value.value if isinstance(value, yaml.ScalarNode) else ""
                flag = isinstance(text, str) and _SECRET_FLAG.fullmatch(text) is not None
        elif isinstance(item, yaml.ScalarNode):
            env = len(path) >= 4 and path[:2] == ("spec", "services") and path[3] == "env"
            whole = after_flag or env or any(is_secret(part) for part in path)
            spans.append((item.start_mark.index, item.end_mark.index, whole))

    walk(node, ())
    return spans


def mask_source(text: str) -> str:
    """A kombination source as it may be shown: env values and secret-looking values ****."""
    try:
        spans = _scalar_spans(text)
    except yaml.YAMLError:
        return "\n".join(MASK if _INLINE_SECRET.search(line) else line for line in text.split("\n"))
    out: list[str] = []
    cursor = 0
    for start, end, whole in sorted(spans):
        if start < cursor:
            continue  # an alias or a merged mapping seen twice
        raw = text[start:end]
        out.append(text[cursor:start])
        if whole:
            stripped = raw.rstrip("\n")
            out.append(MASK + raw[len(stripped) :])  # a block scalar keeps its line breaks
        else:
            out.append(mask_text(raw))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def diff_sources(
    old: str | None, new: str | None, *, old_label: str = "before", new_label: str = "after"
) -> SourceDiff:
    """The semantic changes and the masked unified diff from ``old`` to ``new``."""
    before = mask_source(old).splitlines(keepends=True) if old is not None else []
    after = mask_source(new).splitlines(keepends=True) if new is not None else []
    lines = difflib.unified_diff(before, after, fromfile=old_label, tofile=new_label)
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return SourceDiff(changes=tuple(semantic_changes(old, new)), text=text)
