"""The certificate authority: created once per installation, then loaded from disk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kombify.agent.tls import CONTROL_PLANE_IDENTITY
from kombify.errors import ConfigError
from kombify.locks import directory_lock
from kombify.pki.certs import IssuedCert, key_pem, new_key, parse_ip
from kombify.pki.files import write_private, write_public

CA_VALIDITY = dt.timedelta(days=3650)
NODE_VALIDITY = dt.timedelta(days=90)
CLIENT_VALIDITY = dt.timedelta(days=90)
# Issued certificates start a little in the past so that a node whose clock lags the control
# host's by a few minutes does not reject a certificate fresh from the CA.
_BACKDATE = dt.timedelta(minutes=5)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kombify"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """kombify's CA: a self-signed ECDSA P-256 certificate and its key.

    Attributes:
        cert: The CA certificate (the trust root both sides of every connection use).
        key: The CA's private key.
    """

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(
        cls,
        *,
        name: str = "kombify CA",
        validity: dt.timedelta = CA_VALIDITY,
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Makes a new CA (in memory; see :meth:`save`)."""
        now = now or dt.datetime.now(dt.UTC)
        key = new_key()
        subject = _name(name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + validity)
            # path_length=0: the CA signs leaf certificates only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Loads ``ca.crt`` and ``ca.key`` from ``directory``.

        Raises:
            ConfigError: A file is missing, unreadable or not an ECDSA CA.
        """
        try:
            cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
            key = serialization.load_pem_private_key(
                (directory / "ca.key").read_bytes(), password=None
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the kombify CA from `{directory}`: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"`{directory / 'ca.key'}` is not an ECDSA key")
        return cls(cert=cert, key=key)

    def save(self, directory: Path) -> None:
        """Writes ``ca.key`` (mode 0600, directory 0700) and ``ca.crt`` into ``directory``."""
        write_private(directory / "ca.key", key_pem(self.key))
        write_public(directory / "ca.crt", self.cert_pem)

    def issue_server(
        self,
        identity: str,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        validity: dt.timedelta = NODE_VALIDITY,
        now: dt.datetime | None = None,
    ) -> IssuedCert:
        """Issues a node agent's server certificate.

        Args:
            identity: The node identity: the subject CN and always the first DNS name, since
                TLS clients check the name they dialled against the DNS names only.
            dns_names: Further DNS names (the node's host name).
            ip_addresses: IP names, e.g. ``"127.0.0.1"`` or ``"IP:10.0.0.5"``.
            validity: Lifetime of the certificate.
            now: Reference time (tests); defaults to the current UTC time.
        """
        names = [identity, *[n for n in dns_names if n != identity]]
        return self._issue(
            identity,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            dns_names=names,
            ip_addresses=ip_addresses,
            validity=validity,
            now=now,
        )

    def issue_client(
        self,
        identity: str = CONTROL_PLANE_IDENTITY,
        *,
        validity: dt.timedelta = CLIENT_VALIDITY,
        now: dt.datetime | None = None,
    ) -> IssuedCert:
        """Issues a client certificate (the control plane's), usable for clientAuth only."""
        return self._issue(
            identity,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            dns_names=[identity],
            ip_addresses=(),
            validity=validity,
            now=now,
        )

    def _issue(
        self,
        identity: str,
        *,
        usage: x509.ObjectIdentifier,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        validity: dt.timedelta,
        now: dt.datetime | None,
    ) -> IssuedCert:
        now = now or dt.datetime.now(dt.UTC)
        key = new_key()
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(parse_ip(ip)) for ip in ip_addresses]
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(identity))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + validity, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            # One usage per certificate: a node's server certificate cannot be used to call
            # other nodes' agents, and the control plane's cannot impersonate a node.
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return IssuedCert(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key_pem(key),
            ca_pem=self.cert_pem,
        )


def load_or_create_ca(directory: Path | None = None) -> CertificateAuthority:
    """The installation's CA from ``directory`` (default ``$KOMBIFY_HOME/pki``), made if absent.

    Raises:
        ConfigError: Only one of ``ca.crt`` / ``ca.key`` exists, or they cannot be read.
    """
    if directory is None:
        # Imported here: the node agent uses this package too, and must not need the control
        # plane's settings stack (pydantic-settings) in its bundle.
        from kombify.settings import get_settings

        directory = get_settings().home / "pki"
    if _whole_ca(directory):
        return CertificateAuthority.load(directory)
    # Workers sharing a home may all find no CA: one makes it, the others then load it (two
    # CAs would leave nodes trusting one while another worker's client certificate is of the
    # other). Half a CA seen without the lock can be another process's save in progress.
    with directory_lock(directory):
        if _whole_ca(directory):
            return CertificateAuthority.load(directory)
        if any((directory / f).exists() for f in _CA_FILES):
            raise ConfigError(
                f"`{directory}` holds only half of the kombify CA (ca.crt and ca.key belong "
                "together); restore the missing file or move both away to make a new CA"
            )
        ca = CertificateAuthority.create()
        ca.save(directory)
        return ca


_CA_FILES = ("ca.crt", "ca.key")


def _whole_ca(directory: Path) -> bool:
    return all((directory / f).exists() for f in _CA_FILES)
