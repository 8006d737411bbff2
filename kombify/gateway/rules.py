"""Rate limit rules per route class, read from ``KOMBIFY_RATE_LIMITS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLASSES = ("auth", "write", "read", "tries")
"""auth: /v1/auth/*; write: other mutating /v1 calls; read: the rest of /v1;
tries: login, MFA and password-reset attempts, per account and per client address."""

_ENTRY = re.compile(r"^([a-z]+)=([0-9]{1,9})/([0-9]{1,7})$")
_EXAMPLE = "`auth=30/60,write=120/60,read=600/60,tries=10/60`"


@dataclass(frozen=True)
class Rule:
    """``limit`` requests per ``window_s`` seconds."""

    limit: int
    window_s: int

    def __str__(self) -> str:
        return f"{self.limit} per {self.window_s} s"


DEFAULT_RULES: dict[str, Rule] = {
    "auth": Rule(30, 60),
    "write": Rule(120, 60),
    "read": Rule(600, 60),
    "tries": Rule(10, 60),
}


def parse_rules(text: str) -> dict[str, Rule]:
    """The rules ``text`` names, over the defaults.

    Raises:
        ValueError: An entry is not ``CLASS=COUNT/SECONDS`` with a known class and counts > 0
            (the message names the entry and what was expected).
    """
    rules = dict(DEFAULT_RULES)
    seen: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry.replace(" ", ""))
        if match is None:
            raise ValueError(
                f"KOMBIFY_RATE_LIMITS: `{entry[:40]}` is not CLASS=COUNT/SECONDS, e.g. {_EXAMPLE}"
            )
        name, limit, window = match.group(1), int(match.group(2)), int(match.group(3))
        if name not in CLASSES:
            raise ValueError(
                f"KOMBIFY_RATE_LIMITS: unknown class `{name}`; expected one of "
                + ", ".join(CLASSES)
            )
        if name in seen:
            raise ValueError(f"KOMBIFY_RATE_LIMITS: class `{name}` is given twice")
        if limit < 1 or window < 1:
            raise ValueError(
                f"KOMBIFY_RATE_LIMITS: `{entry}`: the count and the seconds must be 1 or more"
            )
        seen.add(name)
        rules[name] = Rule(limit, window)
    return rules
