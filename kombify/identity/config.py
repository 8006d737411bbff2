"""Parsing the SSO and tool settings (names of tools, their URLs); errors name the variable."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A tool name is a DNS label: it appears in URLs (/v1/tools/<name>/…) and as a token audience.
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def check_name(value: str, *, variable: str) -> str:
    """``value`` if it is a tool name, else ValueError naming ``variable``."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{variable}: expected tool names of lowercase letters, digits and `-` (starting "
            f"with a letter, at most 63), got `{value[:63]}`"
        )
    return value


def parse_names(value: str, *, variable: str) -> tuple[str, ...]:
    """The comma-separated tool names of ``value`` (blank entries are skipped)."""
    return tuple(
        check_name(part.strip(), variable=variable) for part in value.split(",") if part.strip()
    )


def check_url(value: str, *, variable: str) -> str:
    """``value`` without a trailing slash, if it is an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{variable}: expected an http:// or https:// URL with a host, "
            f"e.g. `http://127.0.0.1:8421`"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{variable}: expected a URL without user, password, query or fragment")
    return value.strip().rstrip("/")


def parse_tools(value: str) -> dict[str, str]:
    """``name=URL`` pairs separated by commas, as a dict (KOMBIFY_TOOLS)."""
    tools: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        if not sep:
            raise ValueError(
                f"KOMBIFY_TOOLS: expected name=URL pairs like `stack=http://127.0.0.1:8421`, "
                f"got `{name[:63]}` without `=`"
            )
        name = check_name(name.strip(), variable="KOMBIFY_TOOLS")
        if name in tools:
            raise ValueError(f"KOMBIFY_TOOLS: tool `{name}` is named twice")
        tools[name] = check_url(url, variable=f"KOMBIFY_TOOLS ({name})")
    return tools
