"""TOTP enrolment and management, recovery codes, and an organisation's MFA requirement,
through the HTTP API (sessions made directly in the database, codes computed by pyotp)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from kombify.accounts import api_keys, totp
from kombify.accounts.users import credential
from tests.support.signed_in import Lab, problem_detail, running_lab


@pytest.fixture
def lab(database_url: str, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(database_url, tmp_path / "home") as found:
        yield found


def _enrol(lab: Lab, headers: dict[str, str]) -> tuple[str, list[str]]:
    """Set up TOTP for the session's user; the seed and the recovery codes."""
    started = lab.client.post("/v1/auth/mfa/totp", headers=headers)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = lab.client.post(
        "/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


def test_enrolment_with_a_code_of_the_returned_seed_turns_totp_on(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)

    started = lab.client.post("/v1/auth/mfa/totp", headers=headers).json()
    assert started["otpauth_uri"].startswith("otpauth://totp/kombify:ada%40lab.test?secret=")
    assert pyotp.parse_uri(started["otpauth_uri"]).secret == started["secret"]
    pending = lab.client.get("/v1/auth/mfa", headers=headers).json()
    assert pending == {
        "totp_enabled": False,
        "enrolment_pending": True,
        "recovery_codes_left": 0,
        "required_by": [],
    }

    wrong = lab.client.post("/v1/auth/mfa/totp/confirm", json={"code": "000000"}, headers=headers)
    assert "not the authenticator's current code" in problem_detail(wrong, 400, "invalid-code")
    code = pyotp.TOTP(started["secret"]).now()
    confirmed = lab.client.post("/v1/auth/mfa/totp/confirm", json={"code": code}, headers=headers)

    assert confirmed.status_code == 200, confirmed.text
    assert len(set(confirmed.json()["recovery_codes"])) == 10
    status = lab.client.get("/v1/auth/mfa", headers=headers).json()
    assert status["totp_enabled"] and status["recovery_codes_left"] == 10
    again = lab.client.post("/v1/auth/mfa/totp", headers=headers)
    assert "turn it off first" in problem_detail(again, 409, "conflict")
    assert started["secret"] not in caplog.text  # the seed reaches no log line


def test_a_code_used_to_enrol_is_refused_when_replayed(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)
    secret = lab.client.post("/v1/auth/mfa/totp", headers=headers).json()["secret"]
    code = pyotp.TOTP(secret).now()
    assert (
        lab.client.post(
            "/v1/auth/mfa/totp/confirm", json={"code": code}, headers=headers
        ).status_code
        == 200
    )

    replayed = lab.login("ada@lab.test", totp=code)
    assert problem_detail(replayed, 401, "unauthorized") == "wrong or already used code"
    lab.db.expire_all()
    assert not totp.check_code(lab.db, credential(lab.db, ada.id), code)
    without = lab.login("ada@lab.test")
    assert "send `totp`" in problem_detail(without, 401, "mfa-required")


def test_a_recovery_code_works_once_and_new_ones_replace_the_old(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)
    _, codes = _enrol(lab, headers)

    assert lab.login("ada@lab.test", recovery_code=codes[0]).status_code == 200
    again = lab.login("ada@lab.test", recovery_code=codes[0])
    assert problem_detail(again, 401, "unauthorized") == "wrong or already used code"
    assert lab.client.get("/v1/auth/mfa", headers=headers).json()["recovery_codes_left"] == 9

    lab.reauthenticated(headers, minutes_ago=11)
    stale = lab.client.post("/v1/auth/mfa/recovery-codes", headers=headers)
    assert "POST /v1/auth/reauth" in problem_detail(stale, 403, "reauth-required")
    lab.reauthenticated(headers, minutes_ago=1)
    fresh = lab.client.post("/v1/auth/mfa/recovery-codes", headers=headers)

    assert fresh.status_code == 200, fresh.text
    assert lab.login("ada@lab.test", recovery_code=codes[1]).status_code == 401
    assert totp.use_recovery_code(lab.db, ada.id, fresh.json()["recovery_codes"][0].upper())


def test_enrolment_ends_the_other_sessions(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    here, elsewhere = lab.sign_in(ada), lab.sign_in(ada)
    assert lab.client.get("/v1/stacks", headers=elsewhere).status_code == 200

    _enrol(lab, here)

    gone = lab.client.get("/v1/stacks", headers=elsewhere)
    assert "your session ended" in problem_detail(gone, 401, "unauthorized")
    assert lab.client.get("/v1/stacks", headers=here).status_code == 200


def test_turning_totp_off_needs_a_recent_reauth_and_ends_the_other_sessions(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    here = lab.sign_in(ada)
    _enrol(lab, here)
    elsewhere = lab.sign_in(ada)  # a later login, with its second factor

    lab.reauthenticated(here, minutes_ago=11)
    refused = lab.client.delete("/v1/auth/mfa/totp", headers=here)
    assert "last 10 minutes" in problem_detail(refused, 403, "reauth-required")
    assert lab.client.get("/v1/auth/mfa", headers=here).json()["totp_enabled"]

    lab.reauthenticated(here, minutes_ago=2)
    assert lab.client.delete("/v1/auth/mfa/totp", headers=here).status_code == 204

    assert lab.client.get("/v1/auth/mfa", headers=here).json() == {
        "totp_enabled": False,
        "enrolment_pending": False,
        "recovery_codes_left": 0,
        "required_by": [],
    }
    assert lab.client.get("/v1/stacks", headers=elsewhere).status_code == 401
    nothing = lab.client.delete("/v1/auth/mfa/totp", headers=here)
    assert problem_detail(nothing, 409, "conflict") == "TOTP is not set up"


def test_an_unconfirmed_enrolment_can_be_dropped_without_reauth(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)
    lab.client.post("/v1/auth/mfa/totp", headers=headers)
    lab.reauthenticated(headers, minutes_ago=60)

    assert lab.client.delete("/v1/auth/mfa/totp", headers=headers).status_code == 204

    assert not lab.client.get("/v1/auth/mfa", headers=headers).json()["enrolment_pending"]
    late = lab.client.post("/v1/auth/mfa/totp/confirm", json={"code": "123456"}, headers=headers)
    assert "start with POST /v1/auth/mfa/totp" in problem_detail(late, 409, "conflict")


def test_confirm_is_limited_to_ten_tries_a_minute(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"))
    headers = lab.sign_in(ada)
    lab.client.post("/v1/auth/mfa/totp", headers=headers)
    for _ in range(10):
        tried = lab.client.post(
            "/v1/auth/mfa/totp/confirm", json={"code": "000000"}, headers=headers
        )
        assert tried.status_code == 400

    limited = lab.client.post("/v1/auth/mfa/totp/confirm", json={"code": "000000"}, headers=headers)

    assert "too many mfa attempts" in problem_detail(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 61


def test_api_keys_and_strangers_cannot_manage_a_second_factor(lab: Lab) -> None:
    ada = lab.user("ada@lab.test", lab.org("lab"), role="owner")
    _, key = api_keys.create(
        lab.db, org_id=ada.organisation_id, user_id=ada.id, name="ci", scope="admin"
    )

    by_key = lab.client.post("/v1/auth/mfa/totp", headers={"Authorization": f"Bearer {key}"})
    assert "needs a signed-in session" in problem_detail(by_key, 403, "forbidden")
    assert lab.client.post("/v1/auth/mfa/totp").status_code == 401


# ---- the organisation's requirement ---------------------------------------------------------


def test_the_org_switch_holds_members_without_mfa_to_enrolment(lab: Lab) -> None:
    lab_org = lab.org("lab")
    owner = lab.user("owner@lab.test", lab_org, role="owner")
    bob = lab.user("bob@lab.test", lab_org, role="member")
    owner_headers, bob_headers = lab.sign_in(owner), lab.sign_in(bob)

    first = lab.client.put("/v1/orgs/lab/mfa", json={"required": True}, headers=owner_headers)
    assert "turn on your own second factor first" in problem_detail(first, 409, "conflict")
    _enrol(lab, owner_headers)
    by_member = lab.client.put("/v1/orgs/lab/mfa", json={"required": True}, headers=bob_headers)
    assert "needs the owner role" in problem_detail(by_member, 403, "forbidden")

    switched = lab.client.put("/v1/orgs/lab/mfa", json={"required": True}, headers=owner_headers)

    assert switched.json() == {"organisation": "lab", "required": True, "members_without_mfa": 1}
    held = lab.client.get("/v1/stacks", headers=bob_headers)
    assert "requires a second factor" in problem_detail(held, 403, "forbidden")
    assert lab.client.get("/v1/orgs/lab/mfa", headers=bob_headers).status_code == 403
    assert lab.client.get("/v1/auth/mfa", headers=bob_headers).json()["required_by"] == ["lab"]
    assert lab.client.get("/v1/stacks", headers=owner_headers).status_code == 200

    _enrol(lab, bob_headers)

    assert lab.client.get("/v1/stacks", headers=bob_headers).status_code == 200
    lab.reauthenticated(bob_headers, minutes_ago=0)
    off = lab.client.delete("/v1/auth/mfa/totp", headers=bob_headers)
    assert "`lab` requires a second factor" in problem_detail(off, 403, "forbidden")


def test_lifting_the_requirement_frees_held_sessions(lab: Lab) -> None:
    lab_org = lab.org("lab")
    owner = lab.user("owner@lab.test", lab_org, role="owner")
    bob = lab.user("bob@lab.test", lab_org)
    owner_headers, bob_headers = lab.sign_in(owner), lab.sign_in(bob)
    _enrol(lab, owner_headers)
    lab.client.put("/v1/orgs/lab/mfa", json={"required": True}, headers=owner_headers)
    assert lab.client.get("/v1/stacks", headers=bob_headers).status_code == 403

    lifted = lab.client.put("/v1/orgs/lab/mfa", json={"required": False}, headers=owner_headers)

    assert lifted.json()["required"] is False
    assert lab.client.get("/v1/stacks", headers=bob_headers).status_code == 200


def test_another_organisations_switch_is_not_found(lab: Lab) -> None:
    owner = lab.user("owner@lab.test", lab.org("lab"), role="owner")
    lab.user("eve@other.test", lab.org("other"), role="owner")
    headers = lab.sign_in(owner)
    _enrol(lab, headers)

    response = lab.client.put("/v1/orgs/other/mfa", json={"required": True}, headers=headers)

    assert problem_detail(response, 404, "not-found") == "no organisation `other`"


def test_a_member_who_signs_in_after_the_switch_must_enrol_first(lab: Lab) -> None:
    lab_org = lab.org("lab")
    owner = lab.user("owner@lab.test", lab_org, role="owner")
    lab.user("bob@lab.test", lab_org)
    owner_headers = lab.sign_in(owner)
    _enrol(lab, owner_headers)
    lab.client.put("/v1/orgs/lab/mfa", json={"required": True}, headers=owner_headers)

    signed_in = lab.login("bob@lab.test")

    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["mfa_enrolment_required"] is True
    bob = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    assert lab.client.get("/v1/stacks", headers=bob).status_code == 403
    assert lab.client.get("/v1/me", headers=bob).status_code == 200
    _enrol(lab, bob)
    assert lab.client.get("/v1/stacks", headers=bob).status_code == 200
    assert lab.login("bob@lab.test").status_code == 401  # a code is needed from now on
