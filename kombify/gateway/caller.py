"""Who made a request, as plain values the middleware can read after the route finished.

The route's database session closes (and a commit expires its rows) before the gateway
middleware logs the request and remembers whose credential it was; the principal's ``User``
and ``Organisation`` rows can then no longer be read. :func:`caller_of` copies what the
middleware needs while they still can (``kombify.api.principal.current_principal`` keeps it
on ``request.state.caller``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kombify.accounts.principal import Principal


@dataclass(frozen=True)
class Caller:
    """The principal of a request, by ids."""

    user_id: str | None
    org_id: str
    org_slug: str
    via: str
    api_key_id: str | None

    @property
    def budget(self) -> str:
        """The rate limit budget it counts against: its API key, its user, else its kind."""
        if self.api_key_id:
            return f"key:{self.api_key_id}"
        if self.user_id:
            return f"user:{self.user_id}"
        return f"{self.via}:{self.org_id}"


def caller_of(principal: Principal) -> Caller:
    """The plain values of ``principal`` (read while its rows are still loaded)."""
    return Caller(
        user_id=principal.user.id if principal.user is not None else None,
        org_id=principal.organisation.id,
        org_slug=principal.organisation.slug,
        via=principal.via,
        api_key_id=principal.api_key_id,
    )
