"""Password reset and email verification through the HTTP API: the mail is in the outbox (and
at a real SMTP server on loopback when one is configured), the token works once and expires,
nothing tells which addresses have accounts, and no token reaches a log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import select

from kombify.accounts import recovery
from kombify.accounts.passwords import verify_password
from kombify.accounts.tokens import digest
from kombify.accounts.users import credential
from kombify.db.account_tables import Activity, OneTimeToken, OutboxMail
from kombify.db.models import utcnow
from tests.support.signed_in import PASSWORD, Lab, problem_detail, running_lab
from tests.support.smtp_sink import running_smtp_sink

NEW_PASSWORD = "another long passphrase"  # noqa: S105 - the test's own


@pytest.fixture
def lab(database_url: str, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(database_url, tmp_path / "home") as found:
        yield found


def _mails(lab: Lab) -> list[OutboxMail]:
    lab.db.expire_all()
    return list(lab.db.exec(select(OutboxMail).order_by(OutboxMail.id)).all())  # type: ignore[arg-type]


def _token(mail: OutboxMail, prefix: str) -> str:
    found = re.search(rf"{prefix}[A-Za-z0-9_-]{{43}}", mail.body)
    assert found, mail.body
    return found.group(0)


def test_a_reset_token_sets_a_new_password_once_and_ends_every_session(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)

    asked = lab.client.post("/v1/auth/password-reset", json={"email": " Ada@Lab.test "})

    assert asked.status_code == 202
    [mail] = _mails(lab)
    assert (mail.to, mail.subject) == ("ada@lab.test", "Reset your kombify password")
    assert "https://kombify.lab.test/v1/auth/password-reset/confirm" in mail.body
    token = _token(mail, "kfr_")
    confirmed = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )

    assert confirmed.status_code == 204, confirmed.text
    lab.db.expire_all()
    stored = credential(lab.db, ada.id).password_hash
    assert verify_password(NEW_PASSWORD, stored) and not verify_password(PASSWORD, stored)
    assert lab.client.get("/v1/stacks", headers=headers).status_code == 401
    assert lab.login("ada@lab.test", NEW_PASSWORD).status_code == 200
    assert lab.login("ada@lab.test", PASSWORD).status_code == 401
    again = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": "yet another one!"}
    )
    assert "already used" in problem_detail(again, 400, "invalid-token")
    assert token not in caplog.text
    [event] = lab.db.exec(select(Activity).where(Activity.action == "password-reset")).all()
    assert (event.actor, event.user_id, event.outcome) == ("ada@lab.test", ada.id, "ok")
    assert lab.db.exec(select(OneTimeToken)).one().token_hash == digest(token)  # never the token


def test_the_answer_is_the_same_for_an_address_without_an_account(lab: Lab) -> None:
    lab.user("ada@lab.test", lab.org("lab"))

    known = lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})
    unknown = lab.client.post("/v1/auth/password-reset", json={"email": "nobody@lab.test"})

    assert known.status_code == unknown.status_code == 202
    assert known.json()["detail"].replace("ada@", "") == unknown.json()["detail"].replace(
        "nobody@", ""
    )
    assert [m.to for m in _mails(lab)] == ["ada@lab.test"]


def test_an_expired_reset_token_is_refused(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})
    token = _token(_mails(lab)[0], "kfr_")
    row = lab.db.exec(select(OneTimeToken).where(OneTimeToken.user_id == ada.id)).one()
    assert recovery.LIFETIMES[row.purpose] == timedelta(minutes=30)
    row.expires_at = utcnow() - timedelta(seconds=1)
    lab.db.add(row)
    lab.db.commit()

    late = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )

    assert "expired" in problem_detail(late, 400, "invalid-token")


def test_a_weak_password_keeps_the_token_usable_and_a_newer_mail_retires_it(lab: Lab) -> None:
    lab.user("ada@lab.test", lab.org("lab"))
    lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})
    first = _token(_mails(lab)[0], "kfr_")

    weak = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": first, "password": "short"}
    )
    assert problem_detail(weak, 422, "weak-password") == "password: at least 12 characters, got 5"
    lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})
    second = _token(_mails(lab)[1], "kfr_")

    retired = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": first, "password": NEW_PASSWORD}
    )
    assert "replaced by a newer one" in problem_detail(retired, 400, "invalid-token")
    assert (
        lab.client.post(
            "/v1/auth/password-reset/confirm", json={"token": second, "password": NEW_PASSWORD}
        ).status_code
        == 204
    )


def test_reset_requests_are_limited_per_account(lab: Lab) -> None:
    for _ in range(10):
        lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})

    limited = lab.client.post("/v1/auth/password-reset", json={"email": "ada@lab.test"})

    assert "too many password-reset attempts" in problem_detail(limited, 429, "rate-limited")
    assert int(limited.headers["Retry-After"]) >= 1


def test_reset_confirm_guesses_are_limited_per_address(lab: Lab) -> None:
    for n in range(10):
        guess = lab.client.post(
            "/v1/auth/password-reset/confirm", json={"token": f"kfr_{n}", "password": NEW_PASSWORD}
        )
        assert guess.status_code == 400

    limited = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": "kfr_x", "password": NEW_PASSWORD}
    )

    problem_detail(limited, 429, "rate-limited")


def test_the_reset_mail_reaches_the_smtp_server(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_smtp_sink() as sink:
        smtp = SecretStr(f"smtp://127.0.0.1:{sink.port}")
        with running_lab(database_url, tmp_path / "home", smtp_url=smtp) as lab:
            lab.user("ada@lab.test", lab.org("lab"))
            assert (
                lab.client.post(
                    "/v1/auth/password-reset", json={"email": "ada@lab.test"}
                ).status_code
                == 202
            )
            [row] = _mails(lab)

    [mail] = sink.mails
    assert mail.recipients == ["ada@lab.test"]
    assert row.sent_at is not None and row.error == ""
    token = _token(row, "kfr_")
    assert token in mail.message.get_content()
    assert token not in caplog.text


def test_email_verification_works_once_and_a_resend_retires_the_old_token(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)
    assert recovery.send_verification(lab.db, lab.settings, ada)  # what sign-up does
    first = _token(_mails(lab)[0], "kfv_")

    resent = lab.client.post("/v1/auth/verify-email/resend", headers=headers)
    assert resent.status_code == 202, resent.text
    second = _token(_mails(lab)[1], "kfv_")
    old = lab.client.post("/v1/auth/verify-email", json={"token": first})
    assert "ask for a new verification mail" in problem_detail(old, 400, "invalid-token")

    assert lab.client.post("/v1/auth/verify-email", json={"token": second}).status_code == 204

    lab.db.expire_all()
    assert credential(lab.db, ada.id).email_verified
    used = lab.client.post("/v1/auth/verify-email", json={"token": second})
    problem_detail(used, 400, "invalid-token")
    done = lab.client.post("/v1/auth/verify-email/resend", headers=headers)
    assert problem_detail(done, 409, "conflict") == "email: already verified"
    assert not recovery.send_verification(lab.db, lab.settings, ada)
    assert lab.client.post("/v1/auth/verify-email/resend").status_code == 401


def test_a_reset_token_does_not_verify_and_a_verify_token_does_not_reset(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    recovery.send_verification(lab.db, lab.settings, ada)
    verify = _token(_mails(lab)[0], "kfv_")

    crossed = lab.client.post(
        "/v1/auth/password-reset/confirm", json={"token": verify, "password": NEW_PASSWORD}
    )

    problem_detail(crossed, 400, "invalid-token")


def test_open_sign_up_mails_a_verification_token(database_url: str, tmp_path: Path) -> None:
    with running_lab(database_url, tmp_path / "home", signup="open") as lab:
        made = lab.client.post(
            "/v1/auth/signup", json={"email": "new@lab.test", "password": NEW_PASSWORD}
        )
        assert made.status_code == 201, made.text
        assert made.json()["user"]["email_verified"] is False
        [mail] = _mails(lab)
        assert (mail.to, mail.subject) == ("new@lab.test", "Verify your email address for kombify")

        verified = lab.client.post("/v1/auth/verify-email", json={"token": _token(mail, "kfv_")})

        assert verified.status_code == 204, verified.text
        signed_in = lab.login("new@lab.test", NEW_PASSWORD)
        assert signed_in.json()["user"]["email_verified"] is True
