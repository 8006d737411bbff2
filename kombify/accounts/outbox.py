"""Mails kombify sends (password reset, email verification): always written to the outbox table,
and sent through SMTP when ``KOMBIFY_SMTP_URL`` names a server.

``smtp://user:password@host:port`` speaks plain SMTP and upgrades with STARTTLS whenever the
server offers it; credentials are only ever sent over TLS (a server that offers no STARTTLS
gets no password, and the mail is marked failed). ``smtps://`` starts with TLS (port 465).
Certificates are verified against the system's trust store (``SSL_CERT_FILE`` adds another).
A failure is recorded on the outbox row and logged; it never fails the request that wrote the
mail. The password never reaches the row, a log line or an exception message.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from sqlmodel import Session

from kombify.db.account_tables import OutboxMail
from kombify.db.models import utcnow
from kombify.errors import ConfigError
from kombify.settings import Settings

SMTP_TIMEOUT_S = 15
log = logging.getLogger("kombify.mail")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send, read from ``KOMBIFY_SMTP_URL``."""

    host: str
    port: int
    implicit_tls: bool
    user: str
    password: str

    def __repr__(self) -> str:  # the password stays out of tracebacks and debug output
        return f"SmtpServer(host={self.host!r}, port={self.port}, user={self.user!r})"


def smtp_server(url: str) -> SmtpServer:
    """The server ``url`` names; ConfigError (without the URL's secret) when it names none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError("KOMBIFY_SMTP_URL: the port is not a number") from exc
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(
            "KOMBIFY_SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://…"
        )
    implicit = parts.scheme == "smtps"
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        implicit_tls=implicit,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def _message(settings: Settings, row: OutboxMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.to
    message["Subject"] = row.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message.set_content(row.body)
    return message


def _deliver(server: SmtpServer, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if server.implicit_tls:
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_S, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_S)
    with client:
        client.ehlo()
        if not server.implicit_tls and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
        if server.user:
            if not (server.implicit_tls or client.sock and isinstance(client.sock, ssl.SSLSocket)):
                raise smtplib.SMTPException(
                    "the server offers no STARTTLS: the SMTP password is not sent in clear "
                    "(use a server with STARTTLS, or smtps://)"
                )
            client.login(server.user, server.password)
        client.send_message(message)


def _scrubbed(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def send(db: Session, settings: Settings, *, to: str, subject: str, body: str) -> OutboxMail:
    """Write a mail to the outbox and, with an SMTP server configured, send it now.

    Returns:
        The outbox row: ``sent_at`` set when the server took the mail, ``error`` when not,
        neither when no server is configured.
    """
    row = OutboxMail(to=to, subject=subject[:200], body=body)
    db.add(row)
    db.commit()
    db.refresh(row)
    if settings.smtp_url is None:
        return row
    password = ""
    try:
        server = smtp_server(settings.smtp_url.get_secret_value())
        password = server.password
        _deliver(server, _message(settings, row))
    except (ConfigError, OSError, smtplib.SMTPException) as exc:
        reason = exc.message if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        row.error = _scrubbed(reason, password)[:500]
        log.warning("mail %s to %s not sent: %s", row.id, to, row.error)
    else:
        row.sent_at = utcnow()
    db.add(row)
    db.commit()
    db.refresh(row)
    return row
