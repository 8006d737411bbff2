"""Parsing of the quantities (``512Mi``) and durations (``5m``) a kombination uses."""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)$")
_DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_quantity(text: object) -> int | None:
    """Bytes in a binary quantity like ``512Mi`` or ``1.5Gi``; ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    match = _QUANTITY.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_quantity(size: int) -> str:
    """The shortest exact binary quantity for ``size`` bytes (``536870912`` -> ``512Mi``)."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    if size >= _UNITS["Mi"]:
        return f"{size / _UNITS['Mi']:.1f}Mi"
    return f"{size / _UNITS['Ki']:.1f}Ki"


def parse_duration(text: object) -> int | None:
    """Seconds in a duration like ``30s``, ``5m`` or ``1h``; ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text)
    if match is None:
        return None
    return int(match.group(1)) * _SECONDS[match.group(2)]
