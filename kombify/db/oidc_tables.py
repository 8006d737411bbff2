"""The server-side half of an OpenID Connect or GitHub login in progress (issue 12).

A row lives from ``/login`` to ``/callback``: ten minutes at most, used once. The browser only
carries ``state``; kombify keeps its digest, the ``nonce`` the ID token must repeat and the PKCE
``code_verifier`` (useless without the authorization code, and gone with the row).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from kombify.db.account_tables import _when
from kombify.db.models import _ts, new_id


class OidcLoginState(SQLModel, table=True):
    """One login started at a provider and not yet completed."""

    id: str = Field(default_factory=new_id, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True)
    provider: str = Field(max_length=63)
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    # The CLI's loopback address to send a one-time code to; empty for a browser login.
    cli_redirect: str = Field(default="", max_length=500)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _when(nullable=True)
