"""Who may call the agent: a client certificate of the kombify CA, of an allowed identity.

Two lines of defence, both needed because node certificates come from the same CA:

- the TLS layer (OpenSSL, ``CERT_REQUIRED`` with the kombify CA as the only root) refuses
  peers without a certificate signed by that CA, and certificates not meant for clients: a
  server verifies its clients for the "TLS client" purpose, so a node's serverAuth-only
  certificate fails the handshake;
- the agent then insists on an allowed subject CN (the control plane's), so even a client
  certificate issued for something else cannot command a node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from grpclib.const import Status
from grpclib.exceptions import GRPCError


def abort(code: Status, message: str) -> NoReturn:
    """Ends the RPC with ``code`` and ``message`` (the caller sees both)."""
    raise GRPCError(code, message)


def peer_common_name(stream: Any) -> str | None:
    """The subject CN of the peer's verified certificate; None without one."""
    cert = stream.peer.cert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class ClientPolicy:
    """Decides whether the peer of an RPC may use the agent.

    Args:
        allowed: Subject CNs of the clients allowed (the control plane's identity).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def check(self, stream: Any) -> None:
        """Aborts the RPC unless its peer presented an allowed client certificate."""
        name = peer_common_name(stream)
        if name is None:
            abort(Status.UNAUTHENTICATED, "no client certificate")
        if name not in self.allowed:
            abort(Status.PERMISSION_DENIED, f"client `{name}` is not allowed here")
