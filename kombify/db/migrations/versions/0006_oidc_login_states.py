"""oidc login states: state, nonce and PKCE verifier of logins in progress

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "oidcloginstate",
        sa.Column("id", _S(), nullable=False),
        sa.Column("state_hash", _S(length=64), nullable=False),
        sa.Column("provider", _S(length=63), nullable=False),
        sa.Column("nonce", _S(length=128), nullable=False),
        sa.Column("code_verifier", _S(length=128), nullable=False),
        sa.Column("cli_redirect", _S(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_hash"),
    )


def downgrade() -> None:
    op.drop_table("oidcloginstate")
