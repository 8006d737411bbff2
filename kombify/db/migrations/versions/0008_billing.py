"""billing: plans per organisation, webhook ledger, usage

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:24:38.605567
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "billing_event",
        sa.Column("event_id", _S(length=255), nullable=False),
        sa.Column("type", _S(length=100), nullable=False),
        sa.Column("organisation_id", _S(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("billing_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_event_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "org_billing",
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("plan", _S(length=32), nullable=False),
        sa.Column("status", _S(length=32), nullable=False),
        sa.Column("stripe_customer_id", _S(length=255), nullable=True),
        sa.Column("stripe_subscription_id", _S(length=255), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("pending_plan", _S(length=32), nullable=True),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enterprise_price_id", _S(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organisation_id"),
    )
    with op.batch_alter_table("org_billing", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_org_billing_stripe_customer_id"), ["stripe_customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_org_billing_stripe_subscription_id"),
            ["stripe_subscription_id"],
            unique=False,
        )

    op.create_table(
        "usage_record",
        sa.Column("id", _S(), nullable=False),
        sa.Column("organisation_id", _S(), nullable=False),
        sa.Column("meter", _S(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organisation_id", "meter", "hour"),
    )
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_record_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_record_organisation_id"))

    op.drop_table("usage_record")
    with op.batch_alter_table("org_billing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_billing_stripe_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_org_billing_stripe_customer_id"))

    op.drop_table("org_billing")
    with op.batch_alter_table("billing_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_event_organisation_id"))

    op.drop_table("billing_event")
