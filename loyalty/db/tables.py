"""The schema, as SQLAlchemy Core tables (DESIGN.md section 3).

One code base for SQLite and PostgreSQL: portable types, CHECK constraints and partial indexes
that both engines enforce. Points are BIGINT; nothing is updated in place except cached balances,
lot remainders and hold status. Every change to this file needs an Alembic revision
(``tests/db/test_migrations.py`` fails otherwise).
"""

from __future__ import annotations

from advanced_alchemy.types import BigIntIdentity, DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> Column[int]:
    return Column("id", BigIntIdentity, primary_key=True, autoincrement=True)


def _created_at() -> Column[object]:
    return Column("created_at", DateTimeUTC, nullable=False)


merchants = Table(
    "merchants",
    metadata,
    _id(),
    Column("name", String(200), nullable=False),
    _created_at(),
)

programs = Table(
    "programs",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("expiry_kind", String(32), nullable=False),
    Column("expiry_value", Integer, nullable=False, server_default="0"),
    Column("hold_timeout_seconds", Integer, nullable=False),
    _created_at(),
    UniqueConstraint("merchant_id", "code", name="uq_programs_merchant_code"),
    CheckConstraint("hold_timeout_seconds > 0", name="hold_timeout_positive"),
    CheckConstraint("expiry_value >= 0", name="expiry_value_not_negative"),
)

members = Table(
    "members",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("display_name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    _created_at(),
)

#: Member accounts carry cached ``posted``/``held``; system accounts (issued, redeemed, expired,
#: adjustments) keep them at zero and have their balances derived from entries, so that they
#: never become one hot row that every operation of a program must lock.
accounts = Table(
    "accounts",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("posted", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    _created_at(),
    UniqueConstraint("program_id", "member_id", name="uq_accounts_program_member"),
    CheckConstraint("held >= 0", name="held_not_negative"),
    CheckConstraint("posted - held >= 0", name="available_not_negative"),
    CheckConstraint(
        "(kind = 'member') = (member_id IS NOT NULL)", name="member_accounts_have_members"
    ),
)
Index(
    "uq_accounts_program_system_kind",
    accounts.c.program_id,
    accounts.c.kind,
    unique=True,
    sqlite_where=text("member_id IS NULL"),
    postgresql_where=text("member_id IS NULL"),
)

holds = Table(
    "holds",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("captured", BigInteger, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("expires_at", DateTimeUTC, nullable=False),
    _created_at(),
    Column("resolved_at", DateTimeUTC, nullable=True),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("captured >= 0 AND captured <= points", name="captured_within_hold"),
    CheckConstraint(
        "status IN ('pending', 'captured', 'released', 'expired')", name="status_known"
    ),
)
Index("ix_holds_account_pending", holds.c.account_id, holds.c.status, holds.c.expires_at)
Index(
    "ix_holds_pending_expiry",
    holds.c.expires_at,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)

journals = Table(
    "journals",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    # The member account the operation is about, and for transfers the receiving one.
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("counter_account_id", BigInteger, ForeignKey("accounts.id"), nullable=True),
    # What was asked (a magnitude); ``delta``/``held_delta`` say what it did to ``account_id``.
    Column("points", BigInteger, nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("held_delta", BigInteger, nullable=False, server_default="0"),
    Column("reverses_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    Column("hold_id", BigInteger, ForeignKey("holds.id"), nullable=True),
    Column("effective_at", DateTimeUTC, nullable=False),
    _created_at(),
    Column("client_id", String(64), nullable=True),
    Column("actor", String(200), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("reference", String(200), nullable=True),
    CheckConstraint("points >= 0", name="points_not_negative"),
)
Index("ix_journals_account_history", journals.c.account_id, journals.c.id)
Index(
    "ix_journals_counter_history",
    journals.c.counter_account_id,
    journals.c.id,
    sqlite_where=text("counter_account_id IS NOT NULL"),
    postgresql_where=text("counter_account_id IS NOT NULL"),
)
Index(
    "ix_journals_reverses",
    journals.c.reverses_id,
    sqlite_where=text("reverses_id IS NOT NULL"),
    postgresql_where=text("reverses_id IS NOT NULL"),
)
# Invariant 6: a full reversal happens at most once, whatever races.
Index(
    "uq_journals_one_reversal",
    journals.c.reverses_id,
    unique=True,
    sqlite_where=text("kind = 'reversal'"),
    postgresql_where=text("kind = 'reversal'"),
)

entries = Table(
    "entries",
    metadata,
    _id(),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=False, index=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
)

lots = Table(
    "lots",
    metadata,
    _id(),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=False, index=True),
    Column("original", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("expires_at", DateTimeUTC, nullable=True),
    _created_at(),
    CheckConstraint(
        "original > 0 AND held >= 0 AND held <= remaining AND remaining <= original",
        name="bounds",
    ),
)
Index("ix_lots_account_expiry", lots.c.account_id, lots.c.expires_at)
# The expiry sweep reads only lots that still have free points.
Index(
    "ix_lots_due",
    lots.c.expires_at,
    sqlite_where=text("remaining > held"),
    postgresql_where=text("remaining > held"),
)

#: Which lot each operation touched. Positive: taken from the lot (spent, held, clawed back,
#: expired); negative: given back to it by a refund or reversal.
lot_draws = Table(
    "lot_draws",
    metadata,
    _id(),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=False, index=True),
    Column("lot_id", BigInteger, ForeignKey("lots.id"), nullable=False, index=True),
    Column("points", BigInteger, nullable=False),
    CheckConstraint("points <> 0", name="points_not_zero"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    # 'ok' or the error code of a stored business rejection, replayed like a success.
    Column("outcome", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    _created_at(),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)
