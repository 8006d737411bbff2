"""The agent's start-up check of its own certificate, done with the standard library only."""

from __future__ import annotations

import datetime as dt

import pytest

from kombify.agent.tls import CertificateRefused, server_identity
from kombify.pki import CertificateAuthority


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def test_a_node_certificate_of_the_ca_gives_its_identity(ca: CertificateAuthority) -> None:
    node = ca.issue_server("box.home.local.nodes.kombify", dns_names=["box"])
    assert server_identity(node.cert_pem, node.key_pem, ca.cert_pem) == (
        "box.home.local.nodes.kombify"
    )


def test_a_certificate_of_another_ca_is_refused(ca: CertificateAuthority) -> None:
    stranger = CertificateAuthority.create(name="another CA").issue_server("box")
    with pytest.raises(CertificateRefused, match="does not verify against the CA"):
        server_identity(stranger.cert_pem, stranger.key_pem, ca.cert_pem)


def test_an_expired_certificate_is_refused(ca: CertificateAuthority) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    old = ca.issue_server("box", now=long_ago)
    with pytest.raises(CertificateRefused, match="expired"):
        server_identity(old.cert_pem, old.key_pem, ca.cert_pem)


def test_a_key_that_does_not_fit_is_refused(ca: CertificateAuthority) -> None:
    node, other = ca.issue_server("box"), ca.issue_server("other")
    with pytest.raises(CertificateRefused, match="key does not fit"):
        server_identity(node.cert_pem, other.key_pem, ca.cert_pem)


def test_a_client_certificate_cannot_serve(ca: CertificateAuthority) -> None:
    client = ca.issue_client()
    with pytest.raises(CertificateRefused, match="purpose"):
        server_identity(client.cert_pem, client.key_pem, ca.cert_pem)


def test_the_agent_imports_no_x509_parser() -> None:
    """The bundle copied to every node stays small only while the agent does without it."""
    import subprocess
    import sys

    probe = (
        "import sys, kombify.agent.__main__, kombify.agent.server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
