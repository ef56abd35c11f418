"""Initial schema: merchants, programs, members, the ledger (accounts, journals, entries,
lots, lot_draws, holds) and idempotency keys.

Reviewed by hand: CHECK constraints and names follow the naming convention of
loyalty.db.tables (op.f marks them as final); partial indexes carry both sqlite_where and
postgresql_where; ids are BIGINT autoincrement on PostgreSQL (BIGSERIAL) and INTEGER PRIMARY KEY
(the rowid) on SQLite. Indexes need no batch mode, so they are created with plain op calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:43:49.553005

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "members",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_members_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    op.create_index(op.f("ix_members_merchant_id"), "members", ["merchant_id"], unique=False)
    op.create_table(
        "programs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("expiry_kind", sa.String(length=32), nullable=False),
        sa.Column("expiry_value", sa.Integer(), server_default="0", nullable=False),
        sa.Column("hold_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("expiry_value >= 0", name=op.f("ck_programs_expiry_value_not_negative")),
        sa.CheckConstraint(
            "hold_timeout_seconds > 0", name=op.f("ck_programs_hold_timeout_positive")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_programs_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("merchant_id", "code", name="uq_programs_merchant_code"),
    )
    op.create_table(
        "accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("posted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'member') = (member_id IS NOT NULL)",
            name=op.f("ck_accounts_member_accounts_have_members"),
        ),
        sa.CheckConstraint("held >= 0", name=op.f("ck_accounts_held_not_negative")),
        sa.CheckConstraint("posted - held >= 0", name=op.f("ck_accounts_available_not_negative")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_accounts_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_accounts_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("program_id", "member_id", name="uq_accounts_program_member"),
    )
    op.create_index(
        "uq_accounts_program_system_kind",
        "accounts",
        ["program_id", "kind"],
        unique=True,
        sqlite_where=sa.text("member_id IS NULL"),
        postgresql_where=sa.text("member_id IS NULL"),
    )
    op.create_table(
        "holds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'captured', 'released', 'expired')",
            name=op.f("ck_holds_status_known"),
        ),
        sa.CheckConstraint(
            "captured >= 0 AND captured <= points", name=op.f("ck_holds_captured_within_hold")
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_holds_points_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_holds_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_holds_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index(
        "ix_holds_account_pending", "holds", ["account_id", "status", "expires_at"], unique=False
    )
    op.create_index(
        "ix_holds_pending_expiry",
        "holds",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "journals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("counter_account_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("held_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reverses_id", sa.BigInteger(), nullable=True),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.CheckConstraint("points >= 0", name=op.f("ck_journals_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_journals_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["counter_account_id"],
            ["accounts.id"],
            name=op.f("fk_journals_counter_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(["hold_id"], ["holds.id"], name=op.f("fk_journals_hold_id_holds")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_journals_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["journals.id"], name=op.f("fk_journals_reverses_id_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journals")),
    )
    op.create_index("ix_journals_account_history", "journals", ["account_id", "id"], unique=False)
    op.create_index(
        "ix_journals_counter_history",
        "journals",
        ["counter_account_id", "id"],
        unique=False,
        sqlite_where=sa.text("counter_account_id IS NOT NULL"),
        postgresql_where=sa.text("counter_account_id IS NOT NULL"),
    )
    op.create_index(
        "ix_journals_reverses",
        "journals",
        ["reverses_id"],
        unique=False,
        sqlite_where=sa.text("reverses_id IS NOT NULL"),
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_index(
        "uq_journals_one_reversal",
        "journals",
        ["reverses_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'reversal'"),
        postgresql_where=sa.text("kind = 'reversal'"),
    )
    op.create_table(
        "entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("journal_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_entries_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_entries_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_entries_journal_id_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
    )
    op.create_index(op.f("ix_entries_account_id"), "entries", ["account_id"], unique=False)
    op.create_index(op.f("ix_entries_journal_id"), "entries", ["journal_id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("journal_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_idempotency_keys_journal_id_journals")
        ),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "lots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("journal_id", sa.BigInteger(), nullable=False),
        sa.Column("original", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "original > 0 AND held >= 0 AND held <= remaining AND remaining <= original",
            name=op.f("ck_lots_bounds"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_lots_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_lots_journal_id_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
    )
    op.create_index("ix_lots_account_expiry", "lots", ["account_id", "expires_at"], unique=False)
    op.create_index(
        "ix_lots_due",
        "lots",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("remaining > held"),
        postgresql_where=sa.text("remaining > held"),
    )
    op.create_index(op.f("ix_lots_journal_id"), "lots", ["journal_id"], unique=False)
    op.create_table(
        "lot_draws",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("journal_id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_lot_draws_points_not_zero")),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_lot_draws_journal_id_journals")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_draws_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_draws")),
    )
    op.create_index(op.f("ix_lot_draws_journal_id"), "lot_draws", ["journal_id"], unique=False)
    op.create_index(op.f("ix_lot_draws_lot_id"), "lot_draws", ["lot_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lot_draws_lot_id"), "lot_draws")
    op.drop_index(op.f("ix_lot_draws_journal_id"), "lot_draws")
    op.drop_table("lot_draws")
    op.drop_index(op.f("ix_lots_journal_id"), "lots")
    op.drop_index("ix_lots_due", "lots")
    op.drop_index("ix_lots_account_expiry", "lots")
    op.drop_table("lots")
    op.drop_index("ix_idempotency_keys_created_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_entries_journal_id"), "entries")
    op.drop_index(op.f("ix_entries_account_id"), "entries")
    op.drop_table("entries")
    op.drop_index("uq_journals_one_reversal", "journals")
    op.drop_index("ix_journals_reverses", "journals")
    op.drop_index("ix_journals_counter_history", "journals")
    op.drop_index("ix_journals_account_history", "journals")
    op.drop_table("journals")
    op.drop_index("ix_holds_pending_expiry", "holds")
    op.drop_index("ix_holds_account_pending", "holds")
    op.drop_table("holds")
    op.drop_index("uq_accounts_program_system_kind", "accounts")
    op.drop_table("accounts")
    op.drop_table("programs")
    op.drop_index(op.f("ix_members_merchant_id"), "members")
    op.drop_table("members")
    op.drop_table("merchants")
