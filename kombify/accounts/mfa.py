"""Managing a user's second factor: TOTP enrolment in two steps (a pending seed, then a code
that proves the authenticator holds it), turning it off, new recovery codes, and what an
organisation's MFA requirement does to its members' sessions.

Enrolling or removing a factor ends the user's other sessions (ASVS 3.3.3): whoever held one of
them signed in under the old rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from kombify.accounts import orgs, sessions, totp
from kombify.accounts.users import credential
from kombify.db.account_tables import Credential, Membership, RecoveryCode, UserSession
from kombify.db.models import Organisation, User, utcnow
from kombify.errors import ConflictError, ForbiddenError, SpecError


class InvalidCode(SpecError):
    """A TOTP code that is not the seed's current one, or was used already."""

    code = "invalid-code"
    status = 400


class ReauthRequired(ForbiddenError):
    """A sensitive change needs a password (and TOTP) check from the last few minutes."""

    code = "reauth-required"


@dataclass(frozen=True)
class Enrolment:
    """A pending TOTP seed, shown once so an authenticator app can take it."""

    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class Status:
    """What a user's second factor looks like (never the seed)."""

    totp_enabled: bool
    enrolment_pending: bool
    recovery_codes_left: int
    required_by: list[str]


def requiring_orgs(db: Session, user_id: str) -> list[Organisation]:
    """The user's organisations whose owners require a second factor."""
    return [org for org, _ in orgs.memberships(db, user_id) if orgs.mfa_required(db, org.id)]


def status(db: Session, user: User) -> Status:
    """The user's second factor as the account page shows it."""
    cred = credential(db, user.id)
    left = len(
        db.exec(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.used_at.is_(None),  # type: ignore[union-attr]
            )
        ).all()
    )
    enabled = totp.enabled(cred)
    return Status(
        totp_enabled=enabled,
        enrolment_pending=bool(cred.totp_secret) and not enabled,
        recovery_codes_left=left if enabled else 0,
        required_by=[org.slug for org in requiring_orgs(db, user.id)],
    )


def check_recent_reauth(row: UserSession, minutes: int) -> None:
    """Refuse unless the session re-entered its password within ``minutes``."""
    if row.reauthenticated_at + timedelta(minutes=minutes) <= utcnow():
        raise ReauthRequired(
            f"this change needs a password check from the last {minutes} minutes: "
            "POST /v1/auth/reauth {password, totp} first"
        )


def begin(db: Session, user: User) -> Enrolment:
    """Store a new pending seed (replacing an earlier pending one); refused when TOTP is on."""
    cred = credential(db, user.id)
    if totp.enabled(cred):
        raise ConflictError(
            "TOTP is on already: turn it off first (DELETE /v1/auth/mfa/totp) to change it"
        )
    cred.totp_secret = totp.new_secret()
    cred.totp_enabled_at = None
    cred.totp_last_step = 0  # the steps of an earlier seed say nothing about this one
    db.add(cred)
    db.commit()
    return Enrolment(
        secret=cred.totp_secret, otpauth_uri=totp.provisioning_uri(cred.totp_secret, user.email)
    )


def confirm(db: Session, user: User, code: str, *, session_id: str) -> list[str]:
    """Turn TOTP on with a code of the pending seed; the new recovery codes (shown once).

    The user's other sessions end; this one counts as having passed the second factor.
    """
    cred = credential(db, user.id)
    if totp.enabled(cred):
        raise ConflictError("TOTP is on already")
    if not cred.totp_secret:
        raise ConflictError("no TOTP enrolment to confirm: start with POST /v1/auth/mfa/totp")
    if not totp.check_code(db, cred, code):
        raise InvalidCode(
            "code: not the authenticator's current code for the new seed, or used already "
            "(check the device's clock, then wait for the next code)"
        )
    cred.totp_enabled_at = utcnow()
    db.add(cred)
    db.commit()
    codes = totp.new_recovery_codes(db, user.id)
    sessions.revoke_all(db, user.id, keep=session_id)
    row = db.get(UserSession, session_id)
    if row is not None:
        row.mfa_satisfied = True
        db.add(row)
        db.commit()
    return codes


def turn_off(db: Session, user: User, *, session: UserSession, reauth_minutes: int) -> None:
    """Remove the second factor (or drop a pending enrolment); the other sessions end."""
    cred = credential(db, user.id)
    if not totp.enabled(cred):
        if not cred.totp_secret:
            raise ConflictError("TOTP is not set up")
        _forget_seed(db, cred)  # a pending seed protects nothing yet: no re-auth needed
        return
    check_recent_reauth(session, reauth_minutes)
    requiring = requiring_orgs(db, user.id)
    if requiring:
        names = ", ".join(f"`{org.slug}`" for org in requiring)
        raise ForbiddenError(
            f"{names} requires a second factor of its members: TOTP stays on "
            "(an owner can lift the requirement: PUT /v1/orgs/{org}/mfa)"
        )
    _forget_seed(db, cred)
    for old in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all():
        db.delete(old)
    db.commit()
    sessions.revoke_all(db, user.id, keep=session.id)


def _forget_seed(db: Session, cred: Credential) -> None:
    cred.totp_secret = None
    cred.totp_enabled_at = None
    db.add(cred)
    db.commit()


def new_recovery_codes(
    db: Session, user: User, *, session: UserSession, reauth_minutes: int
) -> list[str]:
    """A fresh set of recovery codes (the old ones stop working)."""
    if not totp.enabled(credential(db, user.id)):
        raise ConflictError("recovery codes belong to TOTP, which is off: set it up first")
    check_recent_reauth(session, reauth_minutes)
    return totp.new_recovery_codes(db, user.id)


def members_without_mfa(db: Session, org_id: str) -> list[str]:
    """The ids of the organisation's members who have no second factor."""
    member_ids = db.exec(
        select(Membership.user_id).where(Membership.organisation_id == org_id)
    ).all()
    return [uid for uid in member_ids if not totp.enabled(db.get(Credential, uid))]


def set_org_requirement(db: Session, org: Organisation, required: bool, *, by: User) -> None:
    """Owners' switch of the organisation's MFA requirement.

    Turning it on moves the live sessions of members without TOTP to enrolment-only (the
    same state a login of theirs gets), so the rule holds at once rather than at their next
    login; turning it off frees those whom no other organisation holds to it.
    """
    if required and not totp.enabled(credential(db, by.id)):
        raise ConflictError(
            "required: turn on your own second factor first (POST /v1/auth/mfa/totp), "
            "or you would be held to enrolment yourself"
        )
    orgs.set_mfa_required(db, org.id, required)
    for uid in members_without_mfa(db, org.id):
        if not required and requiring_orgs(db, uid):
            continue  # another organisation of theirs still holds them to it
        for row in db.exec(
            select(UserSession).where(
                UserSession.user_id == uid,
                UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
            )
        ).all():
            row.mfa_satisfied = not required
            db.add(row)
    db.commit()
