"""The outbox: every mail is written to the table, and sent through a real SMTP server on
loopback when one is configured (plain, STARTTLS with a password, TLS from the first byte)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from kombify.accounts import outbox
from kombify.db.account_tables import OutboxMail
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.pki.authority import CertificateAuthority
from kombify.settings import Settings
from tests.support.ports import free_port
from tests.support.smtp_sink import running_smtp_sink

PASSWORD = "s3cret-smtp-pass"  # noqa: S105 - the test's own throwaway credential


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    with Session(get_engine(url)) as session:
        yield session


@pytest.fixture
def server_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 from a throwaway CA the client trusts."""
    ca = CertificateAuthority.create(name="smtp test CA")
    issued = ca.issue_server("localhost", ip_addresses=["127.0.0.1"])
    cert, key, ca_file = issued.write(tmp_path, "smtp")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _settings(tmp_path: Path, smtp_url: str | None) -> Settings:
    return Settings(
        home=tmp_path,
        smtp_url=SecretStr(smtp_url) if smtp_url else None,
        mail_from="kombify@lab.test",
    )


def test_without_smtp_the_mail_is_only_in_the_outbox(db: Session, tmp_path: Path) -> None:
    row = outbox.send(
        db, _settings(tmp_path, None), to="ada@lab.test", subject="Hello", body="line one\n"
    )

    stored = db.exec(select(OutboxMail)).one()
    assert (stored.id, stored.to, stored.subject, stored.body) == (
        row.id,
        "ada@lab.test",
        "Hello",
        "line one\n",
    )
    assert stored.sent_at is None and stored.error == ""


def test_plain_smtp_delivers_and_the_row_says_sent(db: Session, tmp_path: Path) -> None:
    with running_smtp_sink() as sink:
        settings = _settings(tmp_path, f"smtp://127.0.0.1:{sink.port}")
        row = outbox.send(
            db, settings, to="ada@lab.test", subject="Reset", body="..dot first\nsecond\n"
        )

    assert row.sent_at is not None and row.error == ""
    [mail] = sink.mails
    assert mail.mail_from == "kombify@lab.test" and mail.recipients == ["ada@lab.test"]
    assert mail.message["Subject"] == "Reset" and mail.message["To"] == "ada@lab.test"
    assert mail.message.get_content() == "..dot first\nsecond\n"
    assert not mail.tls and mail.login is None


def test_starttls_is_used_when_offered_and_the_password_goes_over_it(
    db: Session, tmp_path: Path, server_tls: ssl.SSLContext
) -> None:
    with running_smtp_sink(server_tls, starttls=True) as sink:
        settings = _settings(tmp_path, f"smtp://mailer:{PASSWORD}@127.0.0.1:{sink.port}")
        row = outbox.send(db, settings, to="ada@lab.test", subject="Verify", body="hi\n")

    assert row.sent_at is not None, row.error
    [mail] = sink.mails
    assert mail.tls and mail.login == ("mailer", PASSWORD)


def test_smtps_speaks_tls_from_the_first_byte(
    db: Session, tmp_path: Path, server_tls: ssl.SSLContext
) -> None:
    with running_smtp_sink(server_tls, implicit_tls=True) as sink:
        settings = _settings(tmp_path, f"smtps://mailer:{PASSWORD}@127.0.0.1:{sink.port}")
        row = outbox.send(db, settings, to="ada@lab.test", subject="Verify", body="hi\n")

    assert row.sent_at is not None, row.error
    assert sink.mails[0].tls and sink.mails[0].login == ("mailer", PASSWORD)


def test_a_password_is_never_sent_in_clear(
    db: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_smtp_sink() as sink:  # no STARTTLS offered
        settings = _settings(tmp_path, f"smtp://mailer:{PASSWORD}@127.0.0.1:{sink.port}")
        row = outbox.send(db, settings, to="ada@lab.test", subject="Verify", body="hi\n")

    assert sink.logins == [] and sink.mails == []
    assert row.sent_at is None
    assert "offers no STARTTLS" in row.error
    assert PASSWORD not in row.error and PASSWORD not in caplog.text
    assert db.exec(select(OutboxMail)).one().body == "hi\n"  # still in the outbox


def test_an_untrusted_certificate_is_refused(db: Session, tmp_path: Path) -> None:
    ca = CertificateAuthority.create(name="nobody trusts me")
    cert, key, _ = ca.issue_server("localhost", ip_addresses=["127.0.0.1"]).write(tmp_path, "x")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with running_smtp_sink(context, starttls=True) as sink:
        settings = _settings(tmp_path, f"smtp://mailer:{PASSWORD}@127.0.0.1:{sink.port}")
        row = outbox.send(db, settings, to="ada@lab.test", subject="Verify", body="hi\n")

    assert row.sent_at is None and "CERTIFICATE_VERIFY_FAILED" in row.error
    assert sink.logins == [] and sink.mails == []


def test_an_unreachable_server_is_recorded_not_raised(db: Session, tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"smtp://mailer:{PASSWORD}@127.0.0.1:{free_port()}")

    row = outbox.send(db, settings, to="ada@lab.test", subject="Verify", body="hi\n")

    assert row.sent_at is None and "ConnectionRefusedError" in row.error
    assert PASSWORD not in row.error


def test_a_url_of_another_scheme_is_refused_without_its_secret() -> None:
    with pytest.raises(Exception, match="expected smtp://") as caught:
        outbox.smtp_server(f"http://mailer:{PASSWORD}@mail.test")
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(outbox.smtp_server(f"smtp://u:{PASSWORD}@mail.test"))


def test_a_wrong_smtp_url_is_refused_when_the_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kombify.errors import ConfigError
    from kombify.settings import get_settings

    monkeypatch.setenv("KOMBIFY_SMTP_URL", f"mailto://mailer:{PASSWORD}@mail.test")
    with pytest.raises(ConfigError) as caught:
        get_settings()

    assert str(caught.value) == (
        "KOMBIFY_SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://…"
    )
    monkeypatch.setenv("KOMBIFY_SMTP_URL", "")
    get_settings.cache_clear()
    assert get_settings().smtp_url is None
