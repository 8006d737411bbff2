"""The revocation list: revoke, look up, idempotent, on disk for the next process, shared."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import queue
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kombify.errors import ConfigError
from kombify.pki import CertificateAuthority, RevocationList
from tests.support.concurrency import at_once

NOW = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(name="kombify revocation test CA", now=NOW)


def _node_cert(ca: CertificateAuthority, node: str = "box.s.local.kombify") -> x509.Certificate:
    return ca.issue_server(node, now=NOW).cert


def test_a_revoked_serial_is_found_and_others_are_not(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    revoked, other = _node_cert(ca), _node_cert(ca)
    crl = RevocationList(tmp_path / "pki")
    assert not crl.is_revoked(revoked.serial_number)  # no file yet: nothing revoked

    entry, added = crl.revoke(revoked, identity="box.s.local.kombify", reason="destroy", now=NOW)

    assert added and entry.serial == revoked.serial_number
    assert crl.is_revoked(revoked.serial_number)
    assert not crl.is_revoked(other.serial_number)
    found = crl.lookup(revoked.serial_number)
    assert found == entry
    assert found.identity == "box.s.local.kombify" and found.reason == "destroy"
    assert found.revoked_at == NOW and found.expires_at == revoked.not_valid_after_utc
    assert f"certificate {revoked.serial_number:x} was revoked on 2030-01-02 03:04" in (
        found.describe()
    )


def test_revoking_twice_keeps_the_first_entry(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = _node_cert(ca)
    crl = RevocationList(tmp_path / "pki")
    first, _ = crl.revoke(cert, identity="n", reason="destroy of stack `a`", now=NOW)
    before = crl.path.read_bytes()

    again, added = crl.revoke(
        cert, identity="n", reason="destroy again", now=NOW + dt.timedelta(hours=1)
    )

    assert not added and again == first
    assert crl.path.read_bytes() == before
    assert len(crl.entries()) == 1


def test_the_list_survives_a_restart_and_is_private(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    certs = [_node_cert(ca, f"n{i}.s.local.kombify") for i in range(3)]
    writer = RevocationList(tmp_path / "pki")
    for cert in certs:
        writer.revoke(cert, identity="n", reason="destroy", now=NOW)

    # A fresh object reads only the file, as the next worker process would.
    reader = RevocationList(tmp_path / "pki")

    assert [e.serial for e in reader.entries()] == [c.serial_number for c in certs]
    assert all(reader.is_revoked(c.serial_number) for c in certs)
    assert stat.S_IMODE(reader.path.stat().st_mode) == 0o600
    stored = json.loads(reader.path.read_text())
    assert stored["revoked"][0]["serial"] == f"{certs[0].serial_number:x}"  # hex: exact
    assert not list(reader.path.parent.glob(".revoked.json.*"))  # no temporary file left


def test_entries_of_expired_certificates_are_dropped_at_the_next_write(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    old = ca.issue_server("old.s.local.kombify", validity=dt.timedelta(days=1), now=NOW).cert
    crl = RevocationList(tmp_path / "pki")
    crl.revoke(old, identity="old", reason="destroy", now=NOW)
    later = NOW + dt.timedelta(days=2)

    crl.revoke(_node_cert(ca), identity="new", reason="destroy", now=later)

    assert [e.identity for e in crl.entries()] == ["new"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "is not a kombify revocation list"),
        (b'{"format": 9, "revoked": []}', 'expected an object with "format": 1'),
        (b'{"format": 1, "revoked": [{"serial": "ff"}]}', "lacks `identity`"),
    ],
)
def test_a_damaged_list_is_refused_not_read_as_empty(
    tmp_path: Path, ca: CertificateAuthority, content: bytes, expected: str
) -> None:
    crl = RevocationList(tmp_path / "pki")
    crl.path.parent.mkdir()
    crl.path.write_bytes(content)

    with pytest.raises(ConfigError, match=expected) as caught:
        crl.is_revoked(1)
    assert str(crl.path) in str(caught.value)
    with pytest.raises(ConfigError):
        crl.revoke(_node_cert(ca), identity="n", reason="destroy", now=NOW)
    assert crl.path.read_bytes() == content  # changed nothing


def test_concurrent_revocations_in_threads_all_land(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    for round_ in range(5):
        crl = RevocationList(tmp_path / str(round_))
        certs: queue.SimpleQueue[x509.Certificate] = queue.SimpleQueue()
        for _ in range(8):
            certs.put(_node_cert(ca))

        def revoke_one(crl: RevocationList = crl, certs: Any = certs) -> int:
            cert = certs.get_nowait()
            crl.revoke(cert, identity="n", reason="destroy", now=NOW)
            return int(cert.serial_number)

        serials = at_once(8, revoke_one)

        assert sorted(e.serial for e in crl.entries()) == sorted(serials), f"round {round_}"


def _revoke_in_process(directory: str, pem: bytes, ready: Any) -> None:
    cert = x509.load_pem_x509_certificate(pem)
    ready.wait()
    RevocationList(Path(directory)).revoke(cert, identity="n", reason="destroy", now=NOW)


def test_concurrent_revocations_from_processes_all_land(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    # Processes, as workers sharing a home are: the lock is an flock between them.
    issued = [ca.issue_server(f"p{i}.s.local.kombify", now=NOW) for i in range(4)]
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(len(issued))
    procs = [
        context.Process(target=_revoke_in_process, args=(str(tmp_path), i.cert_pem, ready))
        for i in issued
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    crl = RevocationList(tmp_path)
    assert sorted(e.serial for e in crl.entries()) == sorted(i.cert.serial_number for i in issued)
