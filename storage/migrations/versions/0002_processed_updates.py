"""Processed updates, for handling each inbound update at most once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_updates",
        sa.Column("key", sa.LargeBinary(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_processed_updates")),
    )
    op.create_index(op.f("ix_processed_updates_seen_at"), "processed_updates", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_processed_updates_seen_at"), table_name="processed_updates")
    op.drop_table("processed_updates")
