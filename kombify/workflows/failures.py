"""How a rollout's failed services become the text a user reads: one line per distinct cause.

Pure and deterministic (workflow code imports it). Nine services failing for one reason, such
as images missing on an offline homelab, give one line naming the nine, not nine copies of
the same paragraph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_CAUSES = 8
MAX_LINE = 400
MAX_WHERE = 6
# The agent's missing-image reason begins with the image; lifted out, the rest is one cause.
_IMAGE = re.compile(r"^image `([^`]+)` ")


def _bounded(text: str, limit: int) -> str:
    line = " ".join(text.split())  # one line, whatever the reason held
    return line if len(line) <= limit else line[: limit - 3] + "..."


def unhealthy_text(failed: Iterable[tuple[str, str, str]]) -> str:
    """The failure text of a rollout.

    Args:
        failed: ``(node, service, reason)`` of every service that did not end healthy.

    Returns:
        ``N service(s) unhealthy:`` and one line per distinct cause naming where it happened,
        at most :data:`MAX_CAUSES` lines of at most :data:`MAX_LINE` characters.
    """
    causes: dict[str, list[str]] = {}
    count = 0
    for node, service, reason in failed:
        count += 1
        where = f"{node}/{service}"
        image = _IMAGE.match(reason)
        if image is not None:
            where += f" ({image.group(1)})"
            reason = "its image " + reason[image.end() :]
        causes.setdefault(_bounded(reason or "no reason given", MAX_LINE), []).append(where)
    lines = []
    for reason, places in list(causes.items())[:MAX_CAUSES]:
        shown = ", ".join(places[:MAX_WHERE])
        if len(places) > MAX_WHERE:
            shown += f" and {len(places) - MAX_WHERE} more"
        lines.append(_bounded(f"{shown}: {reason}", MAX_LINE))
    if len(causes) > MAX_CAUSES:
        lines.append(f"... and {len(causes) - MAX_CAUSES} more causes")
    return f"{count} service(s) unhealthy:\n" + "\n".join(lines)
