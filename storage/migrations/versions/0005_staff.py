"""Staff accounts of the web app and their audit log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("ward", sa.Integer(), nullable=True),
        sa.Column("province", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_pending", sa.LargeBinary(), nullable=True),
        sa.Column("totp_required", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('staff', 'admin')", name=op.f("ck_staff_accounts_role")),
        sa.CheckConstraint(
            "role <> 'staff' OR (ward IS NOT NULL AND province IS NOT NULL)",
            name=op.f("ck_staff_accounts_staff_scope"),
        ),
        sa.CheckConstraint("role <> 'admin' OR ward IS NULL", name=op.f("ck_staff_accounts_admin_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_accounts_username")),
    )
    op.create_index(op.f("ix_staff_accounts_province"), "staff_accounts", ["province"], unique=False)
    op.create_table(
        "staff_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("province", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_audit")),
    )
    op.create_index(op.f("ix_staff_audit_at"), "staff_audit", ["at"], unique=False)
    op.create_index(op.f("ix_staff_audit_province"), "staff_audit", ["province"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_audit_province"), table_name="staff_audit")
    op.drop_index(op.f("ix_staff_audit_at"), table_name="staff_audit")
    op.drop_table("staff_audit")
    op.drop_index(op.f("ix_staff_accounts_province"), table_name="staff_accounts")
    op.drop_table("staff_accounts")
