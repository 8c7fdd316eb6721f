"""Data keys and persons.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    op.create_table(
        "persons",
        sa.Column("pseudonym", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last_active_on", sa.Date(), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_persons")),
    )
    op.create_index(op.f("ix_persons_last_active_on"), "persons", ["last_active_on"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_persons_last_active_on"), table_name="persons")
    op.drop_table("persons")
    op.drop_table("data_keys")
