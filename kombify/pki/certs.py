"""Certificates as values: what was issued, whom it names, whether it is due for renewal."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kombify.pki.files import write_private, write_public


@dataclass(frozen=True)
class CertIdentity:
    """Whom a certificate names.

    Attributes:
        common_name: The subject CN (kombify puts the node identity there).
        dns_names: The DNS subject alternative names.
        ip_addresses: The IP subject alternative names, as strings.
    """

    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    def matches(self, identity: str) -> bool:
        """Whether ``identity`` is this certificate's CN or one of its DNS names."""
        return identity == self.common_name or identity in self.dns_names


@dataclass(frozen=True)
class IssuedCert:
    """A certificate with its private key and the CA certificate that signed it (all PEM).

    Attributes:
        cert_pem: The certificate.
        key_pem: Its private key (PKCS#8, unencrypted: the file mode protects it).
        ca_pem: The issuing CA's certificate, which peers use as their trust root.
    """

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def identity(self) -> CertIdentity:
        """Whom the certificate names."""
        return cert_identity(self.cert)

    def write(self, directory: Path, stem: str) -> tuple[Path, Path, Path]:
        """Writes ``<stem>.crt``, ``<stem>.key`` (0600) and ``ca.crt`` into ``directory``.

        Returns:
            The paths of certificate, key and CA certificate.
        """
        cert, key, ca = directory / f"{stem}.crt", directory / f"{stem}.key", directory / "ca.crt"
        write_private(key, self.key_pem)
        write_public(cert, self.cert_pem)
        write_public(ca, self.ca_pem)
        return cert, key, ca


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_cert(source: bytes | Path) -> x509.Certificate:
    """Parses a PEM certificate given as bytes or as a file path."""
    data = source.read_bytes() if isinstance(source, Path) else source
    return x509.load_pem_x509_certificate(data)


def cert_identity(cert: x509.Certificate) -> CertIdentity:
    """The CN and subject alternative names of ``cert``."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return CertIdentity(str(cn), (), ())
    ips = san.get_values_for_type(x509.IPAddress)
    return CertIdentity(
        common_name=cn if isinstance(cn, str) else cn.decode(),
        dns_names=tuple(san.get_values_for_type(x509.DNSName)),
        ip_addresses=tuple(str(ip) for ip in ips),
    )


def needs_renewal(
    cert: x509.Certificate, *, within: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """Whether ``cert`` expires within ``within`` from ``now`` (or has expired already).

    Args:
        cert: The certificate to check.
        within: The renewal window, e.g. a third of the certificate's lifetime.
        now: The reference time (timezone-aware); defaults to the current UTC time.
    """
    now = now or dt.datetime.now(dt.UTC)
    return cert.not_valid_after_utc - now <= within


def verify_issued_by(
    cert: x509.Certificate, ca: x509.Certificate, *, now: dt.datetime | None = None
) -> None:
    """Checks that ``ca`` signed ``cert`` and that both are valid at ``now``.

    Raises:
        ValueError: The signature does not verify, or either certificate is outside its
            validity period; the message says which.
    """
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"certificate was not issued by this CA: {exc}") from exc
    except InvalidSignature as exc:  # carries no message of its own
        raise ValueError("certificate signature does not verify against this CA") from exc
    for name, item in (("certificate", cert), ("CA certificate", ca)):
        if not item.not_valid_before_utc <= now <= item.not_valid_after_utc:
            raise ValueError(
                f"{name} is valid from {item.not_valid_before_utc:%Y-%m-%d %H:%M} "
                f"to {item.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not at {now:%Y-%m-%d %H:%M}"
            )


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parses an IP SAN value (``"127.0.0.1"`` or ``"IP:127.0.0.1"``)."""
    return ipaddress.ip_address(value.removeprefix("IP:"))
