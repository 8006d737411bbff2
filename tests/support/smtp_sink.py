"""A tiny SMTP server on loopback that keeps the mails it receives (stdlib only).

It speaks enough of RFC 5321 for :mod:`smtplib`: EHLO/HELO, optional STARTTLS or TLS from the
first byte, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP and QUIT.
"""

from __future__ import annotations

import base64
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from tests.support.ports import free_port


@dataclass
class Received:
    """One mail as the sink took it."""

    mail_from: str
    recipients: list[str]
    data: bytes
    tls: bool
    login: tuple[str, str] | None

    @property
    def message(self) -> EmailMessage:
        """The parsed mail (CRLF line ends read as LF)."""
        parsed = message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """What the running sink received, and where it listens."""

    port: int
    mails: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self,
        port: int,
        sink: SmtpSink,
        context: ssl.SSLContext | None,
        *,
        implicit_tls: bool,
        starttls: bool,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.sink = sink
        self.context = context
        self.implicit_tls = implicit_tls
        self.starttls = starttls


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _wrap(self) -> None:
        assert self.server.context is not None
        self.connection = self.server.context.wrap_socket(self.request, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb", buffering=0)
        self.tls = True

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.tls = False
        if self.server.implicit_tls:
            self._wrap()
        self._say("220 sink.test ESMTP")
        mail_from, recipients, login = "", [], None
        while raw := self.rfile.readline():
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                features = ["sink.test"]
                if self.server.starttls and not self.tls:
                    features.append("STARTTLS")
                features.append("AUTH PLAIN")
                for feature in features[:-1]:
                    self._say(f"250-{feature}")
                self._say(f"250 {features[-1]}")
            elif verb == "STARTTLS" and self.server.starttls and not self.tls:
                self._say("220 go ahead")
                self._wrap()
            elif verb == "AUTH":
                _, user, password = base64.b64decode(line.split()[2]).decode().split("\0")
                login = (user, password)
                self.server.sink.logins.append(login)
                self._say("235 accepted")
            elif verb == "MAIL":
                mail_from, recipients = line.split(":", 1)[1].strip().strip("<>"), []
                self._say("250 ok")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                data = self._read_data()
                self.server.sink.mails.append(
                    Received(mail_from, recipients, data, tls=self.tls, login=login)
                )
                self._say("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._say("250 ok")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented")

    def _read_data(self) -> bytes:
        lines: list[bytes] = []
        while (raw := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
        return b"".join(lines)


@contextmanager
def running_smtp_sink(
    context: ssl.SSLContext | None = None, *, implicit_tls: bool = False, starttls: bool = False
) -> Iterator[SmtpSink]:
    """An SMTP sink on 127.0.0.1 (a free port) for the ``with`` block; stopped after it."""
    sink = SmtpSink(port=free_port())
    server = _Server(sink.port, sink, context, implicit_tls=implicit_tls, starttls=starttls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
