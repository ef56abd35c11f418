"""Referrals (invite codes, conversions) with the program's referral bonus, answers to the Net
Promoter question with the program's asking interval, and Apple Wallet passes with the devices
registered for their updates.

Reviewed by hand.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 01:34:29.413572

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pass_registrations",
        sa.Column("device_library_id", sa.String(length=128), nullable=False),
        sa.Column("pass_type_id", sa.String(length=255), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("push_token", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "device_library_id", "pass_type_id", "serial", name=op.f("pk_pass_registrations")
        ),
    )
    with op.batch_alter_table("pass_registrations", schema=None) as batch_op:
        batch_op.create_index("ix_pass_registrations_serial", ["serial"], unique=False)

    op.create_table(
        "feedback_answers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "score IS NULL OR (score >= 0 AND score <= 10)",
            name=op.f("ck_feedback_answers_score_0_to_10"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_feedback_answers_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_feedback_answers_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_answers")),
    )
    with op.batch_alter_table("feedback_answers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_answers_member", ["member_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_feedback_answers_program_created", ["program_id", "created_at"], unique=False
        )

    op.create_table(
        "invite_codes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_invite_codes_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_invite_codes_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("program_id", "member_id", name="uq_invite_codes_program_member"),
    )
    op.create_table(
        "referrals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("inviter_member_id", sa.BigInteger(), nullable=False),
        sa.Column("invitee_member_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["invitee_member_id"],
            ["members.id"],
            name=op.f("fk_referrals_invitee_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["inviter_member_id"],
            ["members.id"],
            name=op.f("fk_referrals_inviter_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_referrals_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("program_id", "invitee_member_id", name="uq_referrals_program_invitee"),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referrals_inviter", ["program_id", "inviter_member_id"], unique=False
        )

    op.create_table(
        "wallet_passes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_wallet_passes_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_wallet_passes_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_passes")),
        sa.UniqueConstraint("program_id", "member_id", name="uq_wallet_passes_program_member"),
        sa.UniqueConstraint("serial", name=op.f("uq_wallet_passes_serial")),
    )
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("referral_bonus_points", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("feedback_interval_days", sa.Integer(), server_default="90", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("feedback_interval_days")
        batch_op.drop_column("referral_bonus_points")

    op.drop_table("wallet_passes")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_inviter")

    op.drop_table("referrals")
    op.drop_table("invite_codes")
    with op.batch_alter_table("feedback_answers", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_answers_program_created")
        batch_op.drop_index("ix_feedback_answers_member")

    op.drop_table("feedback_answers")
    with op.batch_alter_table("pass_registrations", schema=None) as batch_op:
        batch_op.drop_index("ix_pass_registrations_serial")

    op.drop_table("pass_registrations")
