"""Write OpenTofu JSON configuration as native HCL with the same meaning.

JSON syntax cannot tell a nested block from an object attribute, so the writer knows which
keys are blocks (``BLOCKS``) and how many labels the top-level blocks take (``LABELS``).
Strings stay templates (``"${var.x}"`` means the same in both syntaxes).
"""

from __future__ import annotations

import json
import re
from typing import Any

LABELS = {"resource": 2, "data": 2, "provider": 1, "variable": 1, "output": 1, "terraform": 0}
BLOCKS = frozenset(
    {
        "connection",
        "provisioner",
        "required_providers",
        "filter",
        "route",
        "ingress",
        "egress",
        "rule",
        "security_rule",
        "ip_configuration",
        "admin_ssh_key",
        "os_disk",
        "source_image_reference",
        "features",
        "lifecycle",
    }
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INDENT = "  "


def to_hcl(document: dict[str, Any]) -> str:
    """Render one ``*.tf.json`` document as ``*.tf`` text."""
    out: list[str] = []
    for key in sorted(document):
        labels = LABELS[key]
        for path, body in _labelled(document[key], labels):
            for item in body if isinstance(body, list) else [body]:
                out.extend(_block(key, path, item, 0, in_variable=key == "variable"))
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _labelled(value: Any, depth: int) -> list[tuple[list[str], Any]]:
    if depth == 0:
        return [([], value)]
    result = []
    for name in sorted(value):
        result += [([name, *rest], body) for rest, body in _labelled(value[name], depth - 1)]
    return result


def _block(
    kind: str, labels: list[str], body: dict[str, Any], level: int, *, in_variable: bool = False
) -> list[str]:
    pad = _INDENT * level
    head = " ".join([kind, *(_string(label) for label in labels)])
    if not body:
        return [f"{pad}{head} {{}}"]
    lines = [f"{pad}{head} {{"]
    for key in _ordered(body):
        value = body[key]
        if key == "provisioner":
            for item in value:
                for ptype, pbody in item.items():
                    lines += _block("provisioner", [ptype], pbody, level + 1)
        elif key in BLOCKS and key != "required_providers":
            for item in value if isinstance(value, list) else [value]:
                lines += _block(key, [], item, level + 1)
        elif key == "required_providers":
            lines.append(f"{pad}{_INDENT}required_providers {{")
            for name in sorted(value):
                lines.append(f"{pad}{_INDENT * 2}{name} = {_value(value[name], level + 2)}")
            lines.append(f"{pad}{_INDENT}}}")
        elif in_variable and key == "type":
            lines.append(f"{pad}{_INDENT}type = {value}")  # a type expression, not a string
        else:
            lines.append(f"{pad}{_INDENT}{key} = {_value(value, level + 1)}")
    lines.append(f"{pad}}}")
    return lines


def _ordered(body: dict[str, Any]) -> list[str]:
    # Attributes first, then blocks (what a person writing HCL would do); each group sorted.
    return sorted(body, key=lambda k: (k in BLOCKS, k))


def _string(text: str) -> str:
    # JSON string escapes are valid HCL escapes for everything json.dumps emits here.
    return json.dumps(text, ensure_ascii=False)


def _value(value: Any, level: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, level) for v in value) + "]"
    if not value:
        return "{}"
    pad = _INDENT * (level + 1)
    items = [f"{pad}{_key(k)} = {_value(value[k], level + 1)}" for k in sorted(value)]
    return "{\n" + "\n".join(items) + "\n" + _INDENT * level + "}"


def _key(key: str) -> str:
    return key if _IDENT.match(key) else _string(key)
