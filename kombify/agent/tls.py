"""What the agent knows about TLS, with the standard library only.

The agent is shipped to every node, so every package it imports is copied and unpacked there
on each install. The ``cryptography`` package alone would double that (about 15 MB unpacked,
compiled for one CPU), so the agent does without it: Python's ``ssl`` (OpenSSL) serves,
verifies its peers and checks the agent's own certificate at start-up.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONTROL_PLANE_IDENTITY = "kombify-control-plane"
"""The subject CN of the control plane's client certificate: the one client agents serve."""

_HANDSHAKE_ROUNDS = 8


class CertificateRefused(ValueError):
    """The certificate would be refused by its peers; the message says why."""


@dataclass
class _Side:
    """One end of an in-memory TLS connection: the TLS object and its two memory BIOs."""

    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO

    @classmethod
    def wrap(cls, context: ssl.SSLContext, *, server_side: bool) -> _Side:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=server_side)
        return cls(tls, incoming, outgoing)

    def step(self) -> bool:
        """Advance the handshake; whether this side has finished it."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True


def _handshake(client: _Side, server: _Side) -> None:
    for _ in range(_HANDSHAKE_ROUNDS):
        if all([client.step(), server.step()]):  # a list: both sides step every round
            return
        server.incoming.write(client.outgoing.read())
        client.incoming.write(server.outgoing.read())
    raise CertificateRefused("the TLS handshake did not finish")


def load_key_pair(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Give ``context`` a certificate and its key, both held in memory.

    Raises:
        CertificateRefused: The key does not fit the certificate, or either is unreadable.
    """
    # OpenSSL reads certificate chains and keys from files only: a private scratch directory,
    # gone as soon as they are loaded.
    with tempfile.TemporaryDirectory(prefix="kombify-tls-") as scratch:
        cert_file, key_file = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
        cert_file.write_bytes(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise CertificateRefused(f"the key does not fit the certificate ({exc})") from exc


def server_identity(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> str:
    """Check a server certificate the way a client of the agent will; return its subject CN.

    A TLS handshake runs in memory between a server holding ``cert_pem``/``key_pem`` and a
    client that trusts only ``ca_pem``: so the key must match the certificate, the certificate
    must chain to the CA, be within its validity and be meant for servers.

    Raises:
        CertificateRefused: With OpenSSL's reason (e.g. "unable to get local issuer certificate").
    """
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_key_pair(server_ctx, cert_pem, key_pem)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False  # the name is what this function reports
    try:
        client_ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise CertificateRefused(f"the CA certificate cannot be read ({exc})") from exc
    client = _Side.wrap(client_ctx, server_side=False)
    try:
        _handshake(client, _Side.wrap(server_ctx, server_side=True))
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message
        raise CertificateRefused(f"it does not verify against the CA: {reason}") from exc
    except ssl.SSLError as exc:
        raise CertificateRefused(f"the TLS handshake failed: {exc}") from exc
    peer = client.tls.getpeercert() or {}
    subject: tuple[tuple[tuple[str, str], ...], ...] = peer.get("subject", ())  # type: ignore[assignment]
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return value
    raise CertificateRefused("the certificate has no subject CN")
