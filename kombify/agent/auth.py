"""Who may call the agent: a client certificate of the kombify CA, of an allowed identity.

Two lines of defence, both needed because node certificates come from the same CA:

- the TLS layer (``require_client_auth``, gRPC's BoringSSL) refuses peers without a
  certificate signed by the kombify CA, and certificates not meant for clients (a node's
  serverAuth-only certificate fails the handshake);
- the agent then insists on an allowed subject CN (the control plane's), so even a client
  certificate issued for something else cannot command a node.

The CN comes from gRPC's auth context, already parsed by BoringSSL: the agent carries no
X.509 parser of its own (see :mod:`kombify.agent.tls`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import grpc


async def abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    """Ends the RPC with ``code``; typed NoReturn, which grpc's own ``abort`` is not."""
    await context.abort(code, message)
    raise AssertionError("grpc's abort returned")  # it raises AbortError; never reached


def _peer_common_name(context: Any) -> str | None:
    auth = context.auth_context()
    if not auth.get("x509_pem_cert"):
        return None
    names = auth.get("x509_common_name") or [b""]
    return bytes(names[0]).decode(errors="replace")


class ClientPolicy:
    """Decides whether the peer of an RPC may use the agent.

    Args:
        allowed: Subject CNs of the clients allowed (the control plane's identity).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    async def check(self, context: Any) -> None:
        """Aborts the RPC unless its peer presented an allowed client certificate."""
        name = _peer_common_name(context)
        if name is None:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        if name not in self.allowed:
            await abort(
                context, grpc.StatusCode.PERMISSION_DENIED, f"client `{name}` is not allowed here"
            )
