"""Stripe's form encoding: ``a[b][0][c]=v`` keys into nested dicts and lists.

The SDK sends every parameter as ``application/x-www-form-urlencoded`` (POST bodies) or the
query string (GET, DELETE), nesting with brackets and numbering list items
(``line_items[0][price]``); ``key[]`` (curl's habit) appends.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_TOKEN = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A key that does not nest consistently (``a=1`` and ``a[b]=2``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    tokens = [head]
    if rest:
        tokens += _TOKEN.findall("[" + rest)
    return tokens


def parse_form(text: str) -> dict[str, Any]:
    """Nested parameters of a form body or query string."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        tokens = _path(key)
        node: dict[str, Any] = root
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            name = str(len(node)) if token == "" else token
            if last:
                if isinstance(node.get(name), dict):
                    raise FormError(f"Invalid value for {key}: expected a hash", key)
                node[name] = value
            else:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    if child == "":  # `metadata=` then `metadata[a]=b`: the later one wins
                        child = node[name] = {}
                    else:
                        raise FormError(f"Invalid hash for {key}", key)
                node = child
    return _lists(root)


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def canonical(params: dict[str, Any]) -> str:
    """One string per set of parameters (order of keys does not matter)."""
    import json

    return json.dumps(params, sort_keys=True, separators=(",", ":"))
