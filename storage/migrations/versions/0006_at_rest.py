"""What a database copy shows: no holder_group link between an erased person's codes (their
sealed holders carry it now), and the monthly table that daily counters older than the previous
month are summed into before the housekeeping deletes them.

Codes of people who erased before this upgrade lose their shared group: if two of them are used
in one period, that person may be counted connected twice (at most 3 codes, valid 30 days).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_referrals_holder_group", table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("holder_group")
    op.create_table(
        "counter_month_links",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=32), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("month", "commune", "metric", "channel", "peer", name=op.f("pk_counter_month_links")),
    )
    op.create_index("ix_counter_month_links_province_month", "counter_month_links", ["province", "month"])
    op.create_index("ix_counter_month_links_peer_month", "counter_month_links", ["peer", "month"])


def downgrade() -> None:
    op.drop_index("ix_counter_month_links_peer_month", table_name="counter_month_links")
    op.drop_index("ix_counter_month_links_province_month", table_name="counter_month_links")
    op.drop_table("counter_month_links")
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("holder_group", sa.LargeBinary(length=16), nullable=True))
    op.create_index("ix_referrals_holder_group", "referrals", ["holder_group"])
