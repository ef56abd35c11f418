"""Point of sale: terminals and their hashed API keys, POS transactions, rotating-code uses,
members' card numbers and phones, and the programs' redemption cap and refund policy.

Existing members get a static card number here (new ones get it at enrollment). Reviewed by hand.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 23:54:56.847613

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from loyalty.domain.cards import new_card_number

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terminals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_terminals_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_terminals_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
        sa.UniqueConstraint("merchant_id", "code", name="uq_terminals_merchant_code"),
    )
    op.create_table(
        "rotating_code_uses",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_rotating_code_uses_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", "step", name=op.f("pk_rotating_code_uses")),
    )
    op.create_table(
        "terminal_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("terminal_id", sa.BigInteger(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_terminal_keys_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminal_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_terminal_keys_prefix")),
    )
    with op.batch_alter_table("terminal_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_terminal_keys_terminal_id"), ["terminal_id"], unique=False
        )

    op.create_table(
        "pos_transactions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("terminal_id", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("identified_by", sa.String(length=16), nullable=False),
        sa.Column("offline", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'completed', 'voided')",
            name=op.f("ck_pos_transactions_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_pos_transactions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_pos_transactions_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_pos_transactions_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_pos_transactions_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_pos_transactions_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pos_transactions")),
        sa.UniqueConstraint(
            "merchant_id", "transaction_id", name="uq_pos_transactions_merchant_tx"
        ),
    )
    with op.batch_alter_table("pos_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pos_transactions_location_day",
            ["merchant_id", "location", "created_at"],
            unique=False,
        )

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_number", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("card_secret_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index("ix_members_merchant_email", ["merchant_id", "email"], unique=False)
        batch_op.create_index("ix_members_merchant_phone", ["merchant_id", "phone"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_members_card_number"), ["card_number"])

    _give_members_card_numbers()

    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("static_redeem_cap", sa.BigInteger(), server_default="500", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "redeemed_on_refund", sa.String(length=16), server_default="return", nullable=False
            )
        )

    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reward_redemptions_reference", ["program_id", "reference"], unique=False
        )


def _give_members_card_numbers() -> None:
    members = sa.table("members", sa.column("id", sa.BigInteger), sa.column("card_number"))
    bind = op.get_bind()
    waiting = bind.execute(sa.select(members.c.id).where(members.c.card_number.is_(None)))
    for member_id in waiting.scalars().all():
        bind.execute(
            members.update().where(members.c.id == member_id).values(card_number=new_card_number())
        )


def downgrade() -> None:
    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_redemptions_reference")

    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("redeemed_on_refund")
        batch_op.drop_column("static_redeem_cap")

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_members_card_number"), type_="unique")
        batch_op.drop_index("ix_members_merchant_phone")
        batch_op.drop_index("ix_members_merchant_email")
        batch_op.drop_column("card_secret_version")
        batch_op.drop_column("phone")
        batch_op.drop_column("card_number")

    with op.batch_alter_table("pos_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_pos_transactions_location_day")

    op.drop_table("pos_transactions")
    with op.batch_alter_table("terminal_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terminal_keys_terminal_id"))

    op.drop_table("terminal_keys")
    op.drop_table("rotating_code_uses")
    op.drop_table("terminals")
