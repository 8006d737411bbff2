"""Parsing of sizes (``512Mi``, ``1g``) and durations (``5m``): the one parser for both files.

A kombination writes sizes with binary suffixes (``512Mi``, ``1.5Gi``); a KombiSim template
and ``kombify sim create --memory`` use Docker's short ones (``512m``, ``1g``). Both are
binary (``1g`` is 1024 MiB, as Docker reads it), so one parser serves both, given the
suffixes the file allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)$")
_DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
# What a kombination accepts (its schema's pattern says the same).
BINARY_UNITS: Mapping[str, int] = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
# Docker's suffixes, as KombiSim templates and `sim create --memory` write them.
SHORT_UNITS: Mapping[str, int] = {
    "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
    "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4,
}
MIB = 1024**2
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_size(text: object, *, units: Mapping[str, int] = BINARY_UNITS) -> int | None:
    """Bytes in a size like ``512Mi`` (or ``512m`` with ``units=SHORT_UNITS``).

    Args:
        text: What the file says.
        units: The suffixes allowed and their sizes in bytes.

    Returns:
        The size in bytes, or ``None`` if ``text`` is not a size with one of ``units``.
    """
    if not isinstance(text, str):
        return None
    match = _SIZE.match(text)
    if match is None or match.group(2) not in units:
        return None
    return int(float(match.group(1)) * units[match.group(2)])


def parse_quantity(text: object) -> int | None:
    """Bytes in a kombination quantity like ``512Mi`` or ``1.5Gi``; ``None`` if it is not one."""
    return parse_size(text, units=BINARY_UNITS)


def format_quantity(size: int) -> str:
    """The shortest exact binary quantity for ``size`` bytes (``536870912`` -> ``512Mi``)."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size and size % BINARY_UNITS[unit] == 0:
            return f"{size // BINARY_UNITS[unit]}{unit}"
    if size >= BINARY_UNITS["Mi"]:
        return f"{size / BINARY_UNITS['Mi']:.1f}Mi"
    return f"{size / BINARY_UNITS['Ki']:.1f}Ki"


def parse_duration(text: object) -> int | None:
    """Seconds in a duration like ``30s``, ``5m`` or ``1h``; ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text)
    if match is None:
        return None
    return int(match.group(1)) * _SECONDS[match.group(2)]
