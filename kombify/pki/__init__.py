"""kombify's own certificate authority for mutual TLS between control plane and node agents.

One CA per kombify installation (``$KOMBIFY_HOME/pki``) issues a server certificate to every
node agent (subject CN = node identity) and a client certificate to the control plane. Keys
are ECDSA P-256: every TLS stack on the path (gRPC's BoringSSL, OpenSSL, Python's ssl)
supports it for certificates and handshakes. Ed25519 does not work: with grpcio 1.85 an
all-Ed25519 chain fails the handshake with NO_COMMON_SIGNATURE_ALGORITHMS (tried here).
"""

from __future__ import annotations

from kombify.pki.authority import CertificateAuthority, load_or_create_ca
from kombify.pki.certs import (
    IssuedCert,
    cert_identity,
    load_cert,
    needs_renewal,
    verify_issued_by,
)
from kombify.pki.files import write_private, write_public
from kombify.pki.revocation import Revocation, RevocationList

__all__ = [
    "CertificateAuthority",
    "IssuedCert",
    "Revocation",
    "RevocationList",
    "cert_identity",
    "load_cert",
    "load_or_create_ca",
    "needs_renewal",
    "verify_issued_by",
    "write_private",
    "write_public",
]
