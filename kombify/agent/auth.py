"""Who may call the agent: a CA-signed certificate meant for clients, of an allowed identity.

The TLS layer (``require_client_auth``) already refuses peers without a certificate signed by
the kombify CA. Node certificates are signed by the same CA, so the agent also insists on the
clientAuth usage and on an allowed subject: a node's key cannot command another node.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NoReturn

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kombify.pki.certs import cert_identity


async def abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    """Ends the RPC with ``code``; typed NoReturn, which grpc's own ``abort`` is not."""
    await context.abort(code, message)
    raise AssertionError("grpc's abort returned")  # it raises AbortError; never reached


@lru_cache(maxsize=64)
def _client_identity(pem: bytes) -> tuple[str, bool]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client = ExtendedKeyUsageOID.CLIENT_AUTH in list(usages)
    except x509.ExtensionNotFound:
        client = False
    return cert_identity(cert).common_name, client


class ClientPolicy:
    """Decides whether the peer of an RPC may use the agent.

    Args:
        allowed: Subject CNs of the clients allowed (the control plane's identity).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    async def check(self, context: Any) -> None:
        """Aborts the RPC unless its peer presented an allowed client certificate."""
        pems = context.auth_context().get("x509_pem_cert") or []
        if not pems:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        name, client = _client_identity(bytes(pems[0]))
        if not client:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"certificate of `{name}` is not a client certificate",
            )
        if name not in self.allowed:
            await abort(
                context, grpc.StatusCode.PERMISSION_DENIED, f"client `{name}` is not allowed here"
            )
