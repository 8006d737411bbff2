"""Which kombify user an identity proven at a provider signs in as.

Accounts are linked by verified email only (a pre-account-takeover defence: whoever registers
someone else's address at a provider, or at kombify, gains nothing):

1. an identity (provider, subject) linked before signs in as its user;
2. else the provider must say the email is verified, and a user with that email whose own
   email kombify verified gets the identity linked;
3. a user with that email whose address kombify never verified is refused (it may have been
   registered by someone else, waiting for the owner to link);
4. no user: one is created, owner of a personal organisation, when sign-up is open;
   otherwise refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from kombify.accounts import orgs, users
from kombify.db.account_tables import Credential, ExternalIdentity
from kombify.db.models import User
from kombify.errors import SpecError
from kombify.identity.oidc_errors import LoginRefused


@dataclass(frozen=True)
class ProvenIdentity:
    """What a provider vouched for."""

    provider: str
    subject: str
    email: str
    email_verified: bool
    name: str = ""


@dataclass(frozen=True)
class Linked:
    """The user an identity signs in as, and whether it was created or linked just now."""

    user: User
    outcome: str  # "signed-in", "linked", "created"


def _email(identity: ProvenIdentity) -> str:
    try:
        return users.normal_email(identity.email)
    except SpecError:
        raise LoginRefused(
            f"{identity.provider} gave no usable email address for this account; "
            "kombify links accounts by verified email"
        ) from None


def user_for(db: Session, identity: ProvenIdentity, *, signup: str) -> Linked:
    """The user ``identity`` signs in as (linked or created, committed).

    Raises:
        LoginRefused: The identity cannot be linked safely, or sign-up is not open.
    """
    known = db.exec(
        select(ExternalIdentity).where(
            ExternalIdentity.provider == identity.provider,
            ExternalIdentity.subject == identity.subject,
        )
    ).first()
    if known is not None:
        user = db.get(User, known.user_id)
        if user is not None:
            if identity.email and known.email != identity.email[:320]:
                known.email = identity.email[:320]
                db.add(known)
                db.commit()
            return Linked(user=user, outcome="signed-in")
    email = _email(identity)
    if not identity.email_verified:
        raise LoginRefused(
            f"{identity.provider} does not say `{email}` is verified: verify it there first; "
            "kombify links accounts by verified email only"
        )
    user = users.by_email(db, email)
    if user is not None:
        credential = db.get(Credential, user.id)
        if credential is None or not credential.email_verified:
            raise LoginRefused(
                f"an account with `{email}` exists but its address was never verified at "
                "kombify: sign in with its password and verify the address, then use "
                f"{identity.provider} login"
            )
        _link(db, user, identity, email)
        return Linked(user=user, outcome="linked")
    if signup != "open":
        raise LoginRefused(
            f"no account with `{email}` and sign-up is not open here: ask an owner for an "
            "invitation"
        )
    org = orgs.create(db, slug=orgs.personal_slug(db, email), name=identity.name or email)
    user = users.create(
        db,
        email=email,
        organisation=org,
        role="owner",
        name=identity.name,
        email_verified=True,
    )
    _link(db, user, identity, email)
    return Linked(user=user, outcome="created")


def _link(db: Session, user: User, identity: ProvenIdentity, email: str) -> None:
    db.add(
        ExternalIdentity(
            user_id=user.id, provider=identity.provider, subject=identity.subject, email=email
        )
    )
    db.commit()
