"""kombify's CA: creation and storage, issued certificates, expiry and renewal, chain checks."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from kombify.errors import ConfigError
from kombify.pki import (
    CertificateAuthority,
    load_or_create_ca,
    needs_renewal,
    verify_issued_by,
)
from kombify.settings import get_settings

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(now=NOW)


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_files_are_private_and_reload(tmp_path: Path) -> None:
    made = load_or_create_ca(tmp_path / "pki")
    assert stat.S_IMODE((tmp_path / "pki" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    again = load_or_create_ca(tmp_path / "pki")
    assert again.cert == made.cert
    assert again.key.private_numbers() == made.key.private_numbers()


def test_default_location_is_under_kombify_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOMBIFY_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        load_or_create_ca()
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "pki" / "ca.crt").exists()
    assert (tmp_path / "pki" / "ca.key").exists()


def test_half_a_ca_is_refused(tmp_path: Path) -> None:
    load_or_create_ca(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ConfigError, match="only half"):
        load_or_create_ca(tmp_path)


def test_node_certificate_names_the_node(ca: CertificateAuthority) -> None:
    issued = ca.issue_server(
        "node-1.lab", dns_names=["node-1"], ip_addresses=["IP:127.0.0.1"], now=NOW
    )
    ident = issued.identity
    assert ident.common_name == "node-1.lab"
    assert ident.dns_names == ("node-1.lab", "node-1")
    assert ident.ip_addresses == ("127.0.0.1",)
    assert _eku(issued.cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    verify_issued_by(issued.cert, ca.cert, now=NOW)


def test_client_certificate_is_for_client_auth_only(ca: CertificateAuthority) -> None:
    issued = ca.issue_client(now=NOW)
    assert issued.identity.common_name == "kombify-control-plane"
    assert _eku(issued.cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_chain_verifies_with_a_strict_verifier(ca: CertificateAuthority) -> None:
    """cryptography's RFC 5280 verifier accepts both kinds of leaf, so TLS stacks will too."""
    store = verification.Store([ca.cert])
    server = ca.issue_server("node-2.lab", ip_addresses=["127.0.0.1"], now=NOW)
    builder = verification.PolicyBuilder().store(store).time(NOW + dt.timedelta(days=1))
    builder.build_server_verifier(x509.DNSName("node-2.lab")).verify(server.cert, [])
    client = ca.issue_client(now=NOW)
    verified = builder.build_client_verifier().verify(client.cert, [])
    assert verified.chain[-1] == ca.cert


def test_certificate_from_another_ca_is_rejected(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create(now=NOW)
    stranger = other.issue_server("node-1.lab", now=NOW)
    with pytest.raises(ValueError, match="not"):
        verify_issued_by(stranger.cert, ca.cert, now=NOW)


def test_expired_certificate_is_rejected(ca: CertificateAuthority) -> None:
    issued = ca.issue_server("node-3", validity=dt.timedelta(days=1), now=NOW)
    verify_issued_by(issued.cert, ca.cert, now=NOW + dt.timedelta(hours=23))
    with pytest.raises(ValueError, match="valid from"):
        verify_issued_by(issued.cert, ca.cert, now=NOW + dt.timedelta(days=2))


def test_expiry_and_renewal_window(ca: CertificateAuthority) -> None:
    issued = ca.issue_server("node-4", validity=dt.timedelta(days=90), now=NOW)
    assert issued.cert.not_valid_after_utc == NOW + dt.timedelta(days=90)
    window = dt.timedelta(days=30)
    assert not needs_renewal(issued.cert, within=window, now=NOW)
    assert not needs_renewal(issued.cert, within=window, now=NOW + dt.timedelta(days=59))
    assert needs_renewal(issued.cert, within=window, now=NOW + dt.timedelta(days=60))
    assert needs_renewal(issued.cert, within=window, now=NOW + dt.timedelta(days=91))


def test_leaf_never_outlives_the_ca() -> None:
    short = CertificateAuthority.create(validity=dt.timedelta(days=10), now=NOW)
    issued = short.issue_server("node-5", validity=dt.timedelta(days=90), now=NOW)
    assert issued.cert.not_valid_after_utc == short.cert.not_valid_after_utc


def test_issued_files(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert, key, ca_file = ca.issue_server("node-6", now=NOW).write(tmp_path / "n", "agent")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert ca_file.read_bytes() == ca.cert_pem
