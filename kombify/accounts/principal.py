"""Who a request acts as: a user in one organisation with one role, and how they proved it."""

from __future__ import annotations

from dataclasses import dataclass, field

from kombify.accounts.roles import at_least
from kombify.db.models import Organisation, User
from kombify.errors import ForbiddenError


@dataclass(frozen=True)
class Principal:
    """The caller of one request.

    Attributes:
        user: The signed-in user; None for the local admin token (before the first owner).
        organisation: The organisation the request acts in (every object it reaches is one
            of this organisation's).
        role: The effective role there (an API key's scope caps its owner's role).
        via: ``session``, ``api-key``, ``admin-token`` or ``sso``.
        session_id: The session's id, when ``via == "session"``.
        api_key_id: The key's id, when ``via == "api-key"``.
        on_behalf_of: Who the caller acts for (an API key's name, a tool's audience).
        mfa_pending: A session that must enrol a second factor before anything else.
    """

    user: User | None
    organisation: Organisation
    role: str
    via: str
    session_id: str | None = None
    api_key_id: str | None = None
    on_behalf_of: str = ""
    mfa_pending: bool = False
    memberships: tuple[str, ...] = field(default_factory=tuple)

    @property
    def actor(self) -> str:
        """The name the activity log shows."""
        return self.user.email if self.user else "admin-token"

    def require(self, minimum: str, what: str) -> None:
        """Refuse with 403 unless the caller's role is at least ``minimum``."""
        if not at_least(self.role, minimum):
            why = (
                f"this API key's scope allows {self.role}"
                if self.via == "api-key"
                else f"your role in `{self.organisation.slug}` is {self.role}"
            )
            raise ForbiddenError(f"{what} needs the {minimum} role or higher; {why}")


@dataclass(frozen=True)
class Actor:
    """Plain facts about a principal, kept past the request's database session (activity log)."""

    organisation_id: str
    user_id: str | None
    actor: str
    via: str
    on_behalf_of: str

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The facts of ``principal``, read now (while its rows are loaded)."""
        return cls(
            organisation_id=principal.organisation.id,
            user_id=principal.user.id if principal.user else None,
            actor=principal.actor,
            via=principal.via,
            on_behalf_of=principal.on_behalf_of,
        )
