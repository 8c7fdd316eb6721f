"""Counsellor chat: the counsellor role, counselling cases and their sealed transcripts,
duty, on-duty hours and province settings (storage/counselling.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A counsellor covers a province or one commune of it; staff and admins may counsel too.
    with op.batch_alter_table("staff_accounts") as batch:
        batch.add_column(sa.Column("counsels", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.alter_column("role", existing_type=sa.String(length=8), type_=sa.String(length=16), existing_nullable=False)
        batch.drop_constraint(op.f("ck_staff_accounts_role"), type_="check")
        batch.create_check_constraint(op.f("ck_staff_accounts_role"), "role IN ('staff', 'admin', 'counsellor')")
        batch.create_check_constraint(
            op.f("ck_staff_accounts_counsellor_scope"), "role <> 'counsellor' OR province IS NOT NULL"
        )
    op.create_table(
        "counselling_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handle", sa.String(length=4), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waited_seconds", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("holder_id", sa.Integer(), nullable=True),
        sa.Column("person", sa.LargeBinary(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.CheckConstraint("state IN ('waiting', 'open', 'closed')", name=op.f("ck_counselling_cases_state")),
        sa.CheckConstraint("state <> 'open' OR holder_id IS NOT NULL", name=op.f("ck_counselling_cases_open_held")),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["staff_accounts.id"], name=op.f("fk_counselling_cases_holder_id_staff_accounts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counselling_cases")),
    )
    op.create_index(op.f("ix_counselling_cases_state"), "counselling_cases", ["state"], unique=False)
    op.create_index(op.f("ix_counselling_cases_province"), "counselling_cases", ["province"], unique=False)
    op.create_index(
        "ix_counselling_cases_open_handle",
        "counselling_cases",
        ["handle"],
        unique=True,
        sqlite_where=sa.text("state <> 'closed'"),
        postgresql_where=sa.text("state <> 'closed'"),
    )
    op.create_table(
        "counselling_messages",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sender", sa.String(length=12), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["counselling_cases.id"], name=op.f("fk_counselling_messages_case_id_counselling_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name=op.f("pk_counselling_messages")),
    )
    op.create_table(
        "counselling_duty",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["staff_accounts.id"], name=op.f("fk_counselling_duty_account_id_staff_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_counselling_duty")),
    )
    op.create_table(
        "counselling_hours",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("province", sa.Integer(), nullable=False),
        sa.Column("commune", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("ends", sa.Integer(), nullable=False),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_counselling_hours_weekday")),
        sa.CheckConstraint("starts >= 0 AND starts < ends AND ends <= 1440", name=op.f("ck_counselling_hours_span")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counselling_hours")),
    )
    op.create_index(op.f("ix_counselling_hours_province"), "counselling_hours", ["province"], unique=False)
    op.create_table(
        "counselling_settings",
        sa.Column("province", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("show_unassigned", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("province", name=op.f("pk_counselling_settings")),
    )


def downgrade() -> None:
    op.drop_table("counselling_settings")
    op.drop_index(op.f("ix_counselling_hours_province"), table_name="counselling_hours")
    op.drop_table("counselling_hours")
    op.drop_table("counselling_duty")
    op.drop_table("counselling_messages")
    op.drop_index("ix_counselling_cases_open_handle", table_name="counselling_cases")
    op.drop_index(op.f("ix_counselling_cases_province"), table_name="counselling_cases")
    op.drop_index(op.f("ix_counselling_cases_state"), table_name="counselling_cases")
    op.drop_table("counselling_cases")
    with op.batch_alter_table("staff_accounts") as batch:
        batch.drop_constraint(op.f("ck_staff_accounts_counsellor_scope"), type_="check")
        batch.drop_constraint(op.f("ck_staff_accounts_role"), type_="check")
        batch.create_check_constraint(op.f("ck_staff_accounts_role"), "role IN ('staff', 'admin')")
        batch.alter_column("role", existing_type=sa.String(length=16), type_=sa.String(length=8), existing_nullable=False)
        batch.drop_column("counsels")
