"""The portal -> tool bridge: requests forwarded to a tool with a fresh SSO token.

The caller's own ``Authorization`` and cookies never travel (the tool gets an SSO token for
itself instead), nor do hop-by-hop headers. The tool learns who calls from the token and, for
tools that do not read tokens, from ``X-User-ID`` and ``X-Org-ID``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from kombify.errors import KombifyError, NotFoundError, SpecError
from kombify.settings import Settings

FORWARD_TIMEOUT = 30.0
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
PROBE_TIMEOUT = 3.0
# Request headers passed on as they are; everything else is dropped.
_PASSED_REQUEST = ("accept", "accept-language", "content-type", "x-request-id", "user-agent")
# Response headers never passed back (connection-level, or recomputed by the server).
_DROPPED_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "set-cookie",
        "server",
        "date",
    }
)


class ToolUnreachableError(KombifyError):
    """A tool the portal fronts did not answer."""

    code = "tool-unreachable"
    status = 502


@dataclass(frozen=True)
class ToolAnswer:
    """What the tool answered, to hand back to the caller."""

    status: int
    headers: dict[str, str]
    body: bytes


def tool_url(settings: Settings, tool: str) -> str:
    """The base URL of ``tool``; NotFoundError naming the configured ones."""
    tools = settings.tool_urls
    if tool not in tools:
        known = ", ".join(f"`{name}`" for name in tools) or "none (set KOMBIFY_TOOLS)"
        raise NotFoundError(f"tool: no tool `{tool[:63]}` here; configured: {known}")
    return tools[tool]


def check_path(path: str) -> str:
    """``path`` unless a ``.`` or ``..`` segment could lead outside the tool's base URL."""
    if any(segment in (".", "..") for segment in path.split("/")):
        raise SpecError("path: `.` and `..` segments are not forwarded to a tool")
    return path


def outgoing_headers(
    incoming: dict[str, str], *, token: str, user_id: str, org_id: str
) -> dict[str, str]:
    """The headers sent to the tool: a few of the caller's, then kombify's own."""
    lowered = {name.lower(): value for name, value in incoming.items()}
    headers = {name: lowered[name] for name in _PASSED_REQUEST if name in lowered}
    headers["authorization"] = f"Bearer {token}"
    headers["x-user-id"] = user_id
    headers["x-org-id"] = org_id
    return headers


async def forward(
    *,
    base: str,
    tool: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> ToolAnswer:
    """Send one request to the tool and return its answer (any status)."""
    # The path arrives decoded: quoted again so that a `%3F` or `%23` stays part of the path.
    url = f"{base}/{quote(path.lstrip('/'), safe=_PATH_SAFE)}" + (f"?{query}" if query else "")
    # Header values as the caller's bytes (HTTP headers are Latin-1, httpx would want ASCII).
    raw = [(name.encode(), value.encode("latin-1", "replace")) for name, value in headers.items()]
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT, follow_redirects=False) as client:
            answer = await client.request(method, url, headers=raw, content=body)
    except httpx.InvalidURL:
        raise SpecError("path: cannot be forwarded to a tool as a URL") from None
    except httpx.HTTPError as exc:
        raise ToolUnreachableError(
            f"tool `{tool}` did not answer at {base} ({type(exc).__name__})"
        ) from None
    passed = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED_RESPONSE}
    return ToolAnswer(status=answer.status_code, headers=passed, body=answer.content)


@dataclass(frozen=True)
class ToolReach:
    """Whether a tool answers HTTP at its base URL (any status counts)."""

    name: str
    url: str
    ok: bool
    error: str | None


async def _probe(client: httpx.AsyncClient, name: str, url: str) -> ToolReach:
    try:
        await client.get(url + "/")
    except httpx.HTTPError as exc:
        return ToolReach(name=name, url=url, ok=False, error=type(exc).__name__)
    return ToolReach(name=name, url=url, ok=True, error=None)


async def reachability(settings: Settings) -> list[ToolReach]:
    """Each configured tool's reachability, probed at once (for ``/readyz``)."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, follow_redirects=False) as client:
        return list(
            await asyncio.gather(
                *(_probe(client, name, url) for name, url in settings.tool_urls.items())
            )
        )
