"""Filling ``{{dotted.setting}}`` placeholders in bootstrap steps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kombify.errors import ConfigError
from kombify.stackkits.merge import lookup

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
# Settings may themselves hold placeholders (a variant's firewall command uses the node's
# ports); a few passes resolve that nesting, and the limit stops a setting naming itself.
_MAX_PASSES = 4


def render(template: str, context: Mapping[str, Any]) -> str:
    """Replace every placeholder with its setting; lists become space-separated words.

    Raises:
        ConfigError: A placeholder names no setting (a bug in a StackKit data file).
    """
    text = template
    for _ in range(_MAX_PASSES):
        if not _PLACEHOLDER.search(text):
            return text
        text = _PLACEHOLDER.sub(lambda m: _value(context, m.group(1)), text)
    raise ConfigError(f"StackKit template does not resolve: `{template[:60]}`")


def _value(context: Mapping[str, Any], key: str) -> str:
    try:
        value = lookup(context, key)
    except KeyError as exc:
        raise ConfigError(f"StackKit setting `{key}` is not defined by any layer") from exc
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
