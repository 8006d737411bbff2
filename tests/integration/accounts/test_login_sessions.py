"""Signing in and out, sessions and their timeouts, CSRF, and the admin token's retirement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlmodel import select

from kombify.accounts import totp, users
from kombify.api.principal import CSRF_COOKIE, SESSION_COOKIE
from kombify.db.account_tables import Activity, Credential, OutboxMail, UserSession
from kombify.db.models import utcnow
from tests.support.accounts import OWNER, PASSWORD, Installation, installation


@pytest.fixture
def inst(tmp_path: Path, database_url: str) -> Iterator[Installation]:
    with installation(tmp_path, database_url) as made:
        yield made


def test_the_admin_token_works_until_the_first_owner_then_never(inst: Installation) -> None:
    c = inst.client(Authorization=f"Bearer {inst.admin_token}")
    refused = c.get("/v1/stacks")
    assert refused.status_code == 401
    assert "turned off" in refused.json()["detail"]
    again = c.post("/v1/admin/owner", json={"email": "b@example.org", "password": PASSWORD})
    assert again.status_code == 401


def test_login_sets_host_cookies_and_a_new_session_each_time(inst: Installation) -> None:
    c = inst.client()
    first = c.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert first.status_code == 200, first.text
    cookies = first.headers.get_list("set-cookie")
    session_cookie = next(h for h in cookies if h.startswith(SESSION_COOKIE + "="))
    for attribute in ("HttpOnly", "Secure", "Path=/", "SameSite=lax"):
        assert attribute.lower() in session_cookie.lower()
    assert "domain=" not in session_cookie.lower()
    assert any(h.startswith(CSRF_COOKIE + "=") and "httponly" not in h.lower() for h in cookies)
    second = c.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert second.json()["token"] != first.json()["token"]  # no fixation
    me = c.get("/v1/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == OWNER and me.json()["role"] == "owner"
    assert me.json()["organisation"]["slug"] == "local"


def test_wrong_password_and_unknown_email_get_the_same_answer(inst: Installation) -> None:
    c = inst.client()
    wrong = c.post("/v1/auth/login", json={"email": OWNER, "password": "not the password!"})
    unknown = c.post("/v1/auth/login", json={"email": "x@example.org", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong email or password"
    assert "token" not in wrong.text and PASSWORD not in wrong.text


def test_cookie_mutations_need_the_csrf_header_bearer_ones_do_not(inst: Installation) -> None:
    c = inst.login(OWNER)
    csrf = c.headers.pop("X-CSRF-Token")
    source = "apiVersion: kombify.io/v1\nkind: Kombination\n"
    refused = c.post("/v1/stacks", json={"source": source})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    wrong = c.post("/v1/stacks", json={"source": source}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    right = c.post("/v1/stacks", json={"source": source}, headers={"X-CSRF-Token": csrf})
    assert right.status_code == 422  # past authentication: the file itself is refused
    bearer = inst.bearer(OWNER)
    assert bearer.post("/v1/stacks", json={"source": source}).status_code == 422


def test_a_revoked_session_is_refused_on_its_next_request(inst: Installation) -> None:
    phone = inst.bearer(OWNER)
    laptop = inst.login(OWNER)
    listed = laptop.get("/v1/auth/sessions").json()["data"]
    assert len(listed) == 2
    other = next(s for s in listed if not s["current"])
    assert laptop.delete(f"/v1/auth/sessions/{other['id']}").status_code == 204
    assert phone.get("/v1/stacks").status_code == 401
    assert laptop.get("/v1/stacks").status_code == 200


def test_logout_ends_the_session_and_clears_cookies(inst: Installation) -> None:
    c = inst.login(OWNER)
    token = c.headers["X-Test-Session-Token"]
    out = c.post("/v1/auth/logout")
    assert out.status_code == 204
    assert any("max-age=0" in h.lower() for h in out.headers.get_list("set-cookie"))
    again = inst.client(Authorization=f"Bearer {token}")
    assert again.get("/v1/me").status_code == 401


@pytest.mark.parametrize("timeout", ["absolute", "idle"])
def test_an_expired_session_is_refused(inst: Installation, timeout: str) -> None:
    c = inst.bearer(OWNER)
    with inst.db() as db:
        for row in db.exec(select(UserSession)).all():
            if timeout == "absolute":
                row.expires_at = utcnow() - timedelta(seconds=1)
            else:
                row.last_seen_at = utcnow() - timedelta(minutes=inst.settings.session_idle_minutes)
            db.add(row)
        db.commit()
    refused = c.get("/v1/me")
    assert refused.status_code == 401 and "sign in again" in refused.json()["detail"]


def test_password_change_ends_the_other_sessions(inst: Installation) -> None:
    other = inst.bearer(OWNER)
    c = inst.bearer(OWNER)
    new = "another long passphrase"
    changed = c.post("/v1/auth/password", json={"current_password": PASSWORD, "new_password": new})
    assert changed.status_code == 204, changed.text
    assert other.get("/v1/me").status_code == 401
    assert c.get("/v1/me").status_code == 200
    inst.login(OWNER, new)


def test_a_second_factor_is_asked_and_a_code_works_once(inst: Installation) -> None:
    with inst.db() as db:
        user = users.by_email(db, OWNER)
        assert user is not None
        cred = db.get(Credential, user.id)
        assert cred is not None
        cred.totp_secret = totp.new_secret()
        cred.totp_enabled_at = utcnow()
        db.add(cred)
        db.commit()
        secret = cred.totp_secret
        codes = totp.new_recovery_codes(db, user.id)
    c = inst.client()
    asked = c.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert asked.status_code == 401 and asked.json()["type"].endswith("/mfa-required")
    code = pyotp.TOTP(secret).now()
    body = {"email": OWNER, "password": PASSWORD, "totp": code}
    assert c.post("/v1/auth/login", json=body).status_code == 200
    assert c.post("/v1/auth/login", json=body).status_code == 401  # replayed
    recovery = {"email": OWNER, "password": PASSWORD, "recovery_code": codes[0]}
    assert c.post("/v1/auth/login", json=recovery).status_code == 200
    assert c.post("/v1/auth/login", json=recovery).status_code == 401  # used up


def test_login_is_limited_per_account_with_retry_after(inst: Installation) -> None:
    c = inst.client()
    answers = [
        c.post("/v1/auth/login", json={"email": OWNER, "password": "wrong wrong wrong"})
        for _ in range(11)
    ]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert answers[10].status_code == 429
    assert int(answers[10].headers["Retry-After"]) >= 1
    # The right password does not get past the limit either (it is the guesser's budget).
    late = c.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert late.status_code == 429


def test_logins_are_in_the_activity_log_with_address_never_the_password(
    inst: Installation,
) -> None:
    inst.client().post("/v1/auth/login", json={"email": OWNER, "password": "wrong wrong wrong"})
    inst.login(OWNER)
    with inst.db() as db:
        rows = db.exec(select(Activity).where(Activity.action == "login")).all()
    outcomes = sorted(r.outcome for r in rows)
    assert outcomes == ["ok", "refused"]
    assert all(r.address == "testclient" for r in rows)
    assert all(PASSWORD not in (r.object_id + r.actor) for r in rows)


def test_a_new_email_needs_a_recent_sign_in_and_is_verified_again(inst: Installation) -> None:
    c = inst.bearer(OWNER)
    with inst.db() as db:
        for row in db.exec(select(UserSession)).all():
            row.reauthenticated_at = utcnow() - timedelta(hours=1)
            db.add(row)
        db.commit()
    refused = c.patch("/v1/me", json={"email": "new@example.org"})
    assert refused.status_code == 403 and refused.json()["type"].endswith("/reauth-required")
    assert c.post("/v1/auth/reauth", json={"password": PASSWORD}).status_code == 204
    changed = c.patch("/v1/me", json={"email": "New@Example.org", "name": "Owner"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "new@example.org"
    assert changed.json()["email_verified"] is False and changed.json()["name"] == "Owner"
    with inst.db() as db:
        mail = db.exec(select(OutboxMail).where(OutboxMail.to == "new@example.org")).one()
    assert "verify-email" in mail.body
    inst.login("new@example.org")
