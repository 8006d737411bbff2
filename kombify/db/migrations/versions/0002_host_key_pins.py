"""host key pins: the SSH host key trusted for each node of a stack

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hostkeypin",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("stack_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("algorithm", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("instance", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stack_id"], ["stack.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stack_id", "node", "simulated"),
    )
    with op.batch_alter_table("hostkeypin", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hostkeypin_stack_id"), ["stack_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hostkeypin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hostkeypin_stack_id"))
    op.drop_table("hostkeypin")
