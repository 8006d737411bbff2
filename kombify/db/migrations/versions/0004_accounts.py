"""accounts: credentials, memberships, sessions, API keys, invitations, activity

The single-tenant installation's data stays in its default organisation (``local``, where every
stack already is): simulations made so far belong to it, and each existing user becomes an
owner of their organisation. The old, never written ``auditlog`` table gives way to
``activity``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("password_hash", _S(length=255), nullable=True),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", _S(length=64), nullable=True),
        _ts("totp_enabled_at", True),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        _ts("password_changed_at", True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "membership",
        sa.Column("id", _S(), nullable=False),
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("role", _S(length=20), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organisation_id", "user_id"),
    )
    op.create_index("ix_membership_organisation_id", "membership", ["organisation_id"])
    op.create_index("ix_membership_user_id", "membership", ["user_id"])
    op.create_table(
        "organisationsettings",
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("mfa_required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organisation_id"),
    )
    op.create_table(
        "invitation",
        sa.Column("id", _S(), nullable=False),
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("email", _S(length=320), nullable=False),
        sa.Column("role", _S(length=20), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("invited_by", _S(length=32), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("accepted_at", True),
        _ts("revoked_at", True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_invitation_organisation_id", "invitation", ["organisation_id"])
    op.create_table(
        "usersession",
        sa.Column("id", _S(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("csrf_hash", _S(length=64), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
        _ts("reauthenticated_at"),
        sa.Column("mfa_satisfied", sa.Boolean(), nullable=False),
        _ts("revoked_at", True),
        sa.Column("address", _S(length=64), nullable=False),
        sa.Column("client", _S(length=200), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_usersession_user_id", "usersession", ["user_id"])
    op.create_table(
        "apikey",
        sa.Column("id", _S(), nullable=False),
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("name", _S(length=100), nullable=False),
        sa.Column("prefix", _S(length=16), nullable=False),
        sa.Column("secret_hash", _S(length=64), nullable=False),
        sa.Column("scope", _S(length=10), nullable=False),
        _ts("created_at"),
        _ts("expires_at", True),
        _ts("last_used_at", True),
        _ts("revoked_at", True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_index("ix_apikey_organisation_id", "apikey", ["organisation_id"])
    op.create_index("ix_apikey_user_id", "apikey", ["user_id"])
    op.create_table(
        "recoverycode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("code_hash", _S(length=64), nullable=False),
        _ts("used_at", True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recoverycode_user_id", "recoverycode", ["user_id"])
    op.create_table(
        "onetimetoken",
        sa.Column("id", _S(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("purpose", _S(length=30), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_onetimetoken_user_id", "onetimetoken", ["user_id"])
    op.create_table(
        "outboxmail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to", _S(length=320), nullable=False),
        sa.Column("subject", _S(length=200), nullable=False),
        sa.Column("body", _S(), nullable=False),
        _ts("created_at"),
        _ts("sent_at", True),
        sa.Column("error", _S(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "externalidentity",
        sa.Column("id", _S(), nullable=False),
        sa.Column("user_id", _S(), nullable=False),
        sa.Column("provider", _S(length=63), nullable=False),
        sa.Column("subject", _S(length=255), nullable=False),
        sa.Column("email", _S(length=320), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "subject"),
    )
    op.create_index("ix_externalidentity_user_id", "externalidentity", ["user_id"])
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", _S(length=32), nullable=True),
        sa.Column("user_id", _S(length=32), nullable=True),
        sa.Column("actor", _S(length=320), nullable=False),
        sa.Column("via", _S(length=20), nullable=False),
        sa.Column("on_behalf_of", _S(length=320), nullable=False),
        sa.Column("action", _S(length=100), nullable=False),
        sa.Column("object_type", _S(length=40), nullable=False),
        sa.Column("object_id", _S(length=255), nullable=False),
        sa.Column("outcome", _S(length=20), nullable=False),
        sa.Column("address", _S(length=64), nullable=False),
        sa.Column("client", _S(length=200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_activity_org_time", "activity", ["organisation_id", "created_at"])
    op.create_index("ix_activity_user_time", "activity", ["user_id", "created_at"])
    op.create_table(
        "installationflag",
        sa.Column("name", _S(length=63), nullable=False),
        _ts("set_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("simulation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", _S(), nullable=True))
        batch_op.create_index("ix_simulation_organisation_id", ["organisation_id"])
        batch_op.create_foreign_key(
            "fk_simulation_organisation_id",
            "organisation",
            ["organisation_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.drop_table("auditlog")
    # Users made before accounts keep their organisation, as its owners.
    op.execute(
        "INSERT INTO membership (id, organisation_id, user_id, role, created_at) "
        "SELECT id, organisation_id, id, 'owner', created_at FROM \"user\""
    )
    op.execute(
        "UPDATE simulation SET organisation_id = (SELECT id FROM organisation WHERE slug = 'local')"
    )


def downgrade() -> None:
    op.create_table(
        "auditlog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", _S(length=320), nullable=False),
        sa.Column("action", _S(length=100), nullable=False),
        sa.Column("target", _S(length=255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("simulation", schema=None) as batch_op:
        batch_op.drop_constraint("fk_simulation_organisation_id", type_="foreignkey")
        batch_op.drop_index("ix_simulation_organisation_id")
        batch_op.drop_column("organisation_id")
    for table in (
        "installationflag",
        "activity",
        "externalidentity",
        "outboxmail",
        "onetimetoken",
        "recoverycode",
        "apikey",
        "usersession",
        "invitation",
        "organisationsettings",
        "membership",
        "credential",
    ):
        op.drop_table(table)
