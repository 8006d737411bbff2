"""Telling the owner about incidents through Apprise URLs (``KOMBIFY_NOTIFY_URLS``).

The URLs carry tokens and passwords, so nothing here logs, returns or raises one as written:
every URL that leaves this module went through :func:`mask_url` first. A receiver that does
not take a message is a returned failure, never an exception, so a dead webhook cannot stop
the healing that reports to it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kombify.contracts.heal import Incident

log = logging.getLogger(__name__)

MASK = "****"
# Incident events and the Apprise message type each is sent with.
EVENT_TYPES = {"opened": "warning", "recovered": "success", "given-up": "failure"}
_HOST_LABEL = re.compile(r"^[A-Za-z0-9-]{1,63}$")
_SPLIT = re.compile(r"[\s,]+")


def split_urls(text: str) -> list[str]:
    """The entries of a ``KOMBIFY_NOTIFY_URLS`` value: separated by spaces or commas."""
    return [entry for entry in _SPLIT.split(text.strip()) if entry]


def _looks_like_host(host: str) -> bool:
    # A token in host position (tgram://TOKEN/chat) must not be shown; a name with dots,
    # localhost or an IP address is where the messages go, and says which entry is meant.
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    if host == "localhost":
        return True
    labels = host.split(".")
    return len(labels) > 1 and all(_HOST_LABEL.match(label) for label in labels)


def mask_url(url: str) -> str:
    """``url`` with whatever may be a credential replaced by ``****``.

    The scheme, a user name, a host name (or IP) and a numeric port stay, so the owner can
    tell which entry is meant; a password, a path, a query and a host that is no host name
    (many services carry a token there) do not.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    netloc, slash, path = rest.partition("/")
    netloc = netloc.split("?", 1)[0].split("#", 1)[0]
    userinfo, at, hostport = netloc.rpartition("@")
    shown = ""
    if at:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}@" if colon else f"{user}@"
    host, colon, port = hostport.rpartition(":")
    if not colon or not port.isdigit():
        host, port = hostport, ""
    shown += host if _looks_like_host(host) else MASK
    if port:
        shown += f":{port}"
    tail = rest[len(netloc) :]
    if (slash and path) or tail.lstrip("/"):
        shown += f"/{MASK}"
    return f"{scheme}://{shown}"


def _quiet_apprise() -> None:
    # Apprise's own log lines can carry parts of a URL (its debug lines name the whole
    # target); kombify reports failures itself, masked.
    apprise_log = logging.getLogger("apprise")
    apprise_log.propagate = False
    apprise_log.setLevel(logging.CRITICAL + 1)


def check_urls(text: str) -> list[str]:
    """Every bad entry of a ``KOMBIFY_NOTIFY_URLS`` value, masked ([] when all are good)."""
    import apprise

    _quiet_apprise()
    return [mask_url(u) for u in split_urls(text) if apprise.Apprise.instantiate(u) is None]


def send(urls: list[str], title: str, body: str, *, kind: str = "info") -> list[str]:
    """Send one message to every URL; never raises for a receiver.

    Args:
        urls: Apprise URLs (``json://host:port/path`` posts JSON with ``title``,
            ``message`` and ``type``).
        title: The message's title.
        body: The message's text.
        kind: Its type: info, success, warning or failure.

    Returns:
        One line per URL that did not take the message (the URL masked, and why);
        [] when every receiver took it.
    """
    import apprise

    _quiet_apprise()
    notify_type = apprise.NotifyType(kind)
    failures = []
    for url in urls:
        target: Any = apprise.Apprise.instantiate(url)
        if target is None:
            failures.append(f"{mask_url(url)}: not a notification URL Apprise knows")
            continue
        try:
            delivered = bool(target.notify(body=body, title=title, notify_type=notify_type))
        except Exception as exc:  # a plugin's bug must not stop healing either
            delivered = False
            log.warning("notification to %s raised %s", mask_url(url), type(exc).__name__)
        if not delivered:
            failures.append(f"{mask_url(url)}: the receiver did not take the message")
    for failure in failures:
        log.warning("notification not delivered: %s", failure)
    return failures


def _when(at: str) -> str:
    return at.replace("T", " ")[:19] + " UTC" if at else "-"


def incident_message(incident: Incident, event: str) -> tuple[str, str]:
    """The title and body kombify sends when an incident opens, recovers or is given up.

    Args:
        incident: The incident as stored.
        event: opened, recovered or given-up.
    """
    where = f"{incident.node} of {incident.stack}"
    subject = f"kombify: {incident.service} on {where}" if incident.service else f"kombify: {where}"
    if event == "recovered":
        ttr = incident.time_to_recovery_s
        title = f"{subject} recovered" + (f" after {ttr:.1f} s" if ttr is not None else "")
    elif event == "given-up":
        title = f"{subject} gave up ({incident.kind})"
    else:
        title = f"{subject} {incident.kind}"
    lines = [
        f"incident {incident.id}: {incident.kind}, {incident.state}",
        f"detected: {_when(incident.detected_at)} by {incident.detection}",
    ]
    if incident.detail:
        lines.append(f"seen: {incident.detail}")
    if incident.actions:
        lines.append("done: " + "; ".join(incident.actions))
    if incident.recovered_at:
        lines.append(f"recovered: {_when(incident.recovered_at)}")
    return title, "\n".join(lines)
