"""Referrals, peer links, counters (daily and monthly), indicator targets, settings, redeem throttle.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("service", sa.String(length=48), nullable=False),
        sa.Column("service_type", sa.String(length=24), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=32), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("redeemed_on", sa.Date(), nullable=True),
        sa.Column("holder", sa.LargeBinary(), nullable=True),
        sa.Column("holder_group", sa.LargeBinary(length=16), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_referrals")),
    )
    op.create_index(op.f("ix_referrals_expires_on"), "referrals", ["expires_on"])
    op.create_index(op.f("ix_referrals_holder_group"), "referrals", ["holder_group"])
    op.create_table(
        "peer_links",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stats_token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_peer_links")),
        sa.UniqueConstraint("stats_token_hash", name=op.f("uq_peer_links_stats_token_hash")),
    )
    op.create_index(op.f("ix_peer_links_province"), "peer_links", ["province"])
    op.create_table(
        "counters",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=32), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "commune", "metric", "detail", "channel", "peer", name=op.f("pk_counters")),
    )
    op.create_index("ix_counters_province_day", "counters", ["province", "day"])
    op.create_index("ix_counters_peer_day", "counters", ["peer", "day"])
    op.create_table(
        "counter_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=32), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("month", "commune", "metric", "detail", name=op.f("pk_counter_months")),
    )
    op.create_index("ix_counter_months_province_month", "counter_months", ["province", "month"])
    op.create_table(
        "indicator_targets",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("indicator", sa.String(length=16), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("estimate", sa.Integer(), nullable=True),
        sa.Column("target_percent", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year", "commune", "indicator", name=op.f("pk_indicator_targets")),
    )
    op.create_index(op.f("ix_indicator_targets_province"), "indicator_targets", ["province"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "redeem_failures",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "window_start", name=op.f("pk_redeem_failures")),
    )


def downgrade() -> None:
    op.drop_table("redeem_failures")
    op.drop_table("settings")
    op.drop_index(op.f("ix_indicator_targets_province"), table_name="indicator_targets")
    op.drop_table("indicator_targets")
    op.drop_index("ix_counter_months_province_month", table_name="counter_months")
    op.drop_table("counter_months")
    op.drop_index("ix_counters_peer_day", table_name="counters")
    op.drop_index("ix_counters_province_day", table_name="counters")
    op.drop_table("counters")
    op.drop_index(op.f("ix_peer_links_province"), table_name="peer_links")
    op.drop_table("peer_links")
    op.drop_index(op.f("ix_referrals_holder_group"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_expires_on"), table_name="referrals")
    op.drop_table("referrals")
