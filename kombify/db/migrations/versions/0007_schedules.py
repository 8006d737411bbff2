"""schedules: which organisation owns which Temporal schedule of a workflow file

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 22:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", _S(), nullable=False),
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("name", _S(length=63), nullable=False),
        sa.Column("schedule_id", _S(length=255), nullable=False),
        sa.Column("filename", _S(length=255), nullable=False),
        sa.Column("created_by", _S(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organisation_id", "name"),
        sa.UniqueConstraint("schedule_id"),
    )
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedule_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_organisation_id"))
    op.drop_table("schedule")
