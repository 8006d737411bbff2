"""The one merge rule for StackKit layers (core < platform < kit < variant < user).

Mappings merge key by key, recursively; anything else (scalars, lists) in a later layer
replaces the earlier value; a later ``null`` removes the key. Lists replace rather than append
so a layer can always say exactly what it wants (a kit that wants fewer firewall ports can).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``layers`` left to right (later wins); inputs are not modified."""
    result: dict[str, Any] = {}
    for layer in layers:
        if layer:
            result = _merge_two(result, layer)
    return result


def _merge_two(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_two(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = _merge_two({}, value)
        else:
            out[key] = value
    return out


def lookup(settings: Mapping[str, Any], dotted: str) -> Any:
    """``lookup(s, "ssh.port")`` is ``s["ssh"]["port"]``; KeyError names the full key."""
    value: Any = settings
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value
