"""The keys kombify signs SSO tokens with (issue 12).

The private key is a secret: it lives in this table only and never reaches a response, a log
line or an error. Public halves are published at ``/.well-known/jwks.json``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from kombify.db.account_tables import _when
from kombify.db.models import _ts


class SigningKey(SQLModel, table=True):
    """One signing key: active while not retired; published until its grace period ends."""

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=20)
    private_pem: str = Field(sa_column=Column(Text, nullable=False))
    public_jwk: str = Field(sa_column=Column(Text, nullable=False))  # JSON of the public JWK
    created_at: datetime = _ts(nullable=False)
    retired_at: datetime | None = _when(nullable=True)
