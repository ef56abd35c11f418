"""The schema, as SQLAlchemy Core tables (DESIGN.md section 3).

One code base for SQLite and PostgreSQL: portable types, CHECK constraints and partial indexes
that both engines enforce. Points are BIGINT; nothing is updated in place except cached balances,
lot remainders and hold status. Every change to this file needs an Alembic revision
(``tests/db/test_migrations.py`` fails otherwise).
"""

from __future__ import annotations

from advanced_alchemy.types import BigIntIdentity, DateTimeUTC
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
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
    # Issue 3: what a point is worth (for the liability figure), in millionths of the currency
    # unit (10_000 = 0.01 EUR); the default rounding of earning rules; texts in both languages.
    Column("point_value_micros", BigInteger, nullable=False, server_default="10000"),
    Column("rounding", String(16), nullable=False, server_default="down"),
    Column("name_de", String(200), nullable=True),
    Column("name_en", String(200), nullable=True),
    Column("description_de", String(2000), nullable=True),
    Column("description_en", String(2000), nullable=True),
    Column("updated_at", DateTimeUTC, nullable=True),
    #: Issue 4: points a member identified only by static card number, phone or email may redeem
    #: per transaction (above it a rotating code is the second factor); whether a refund gives
    #: the order's redeemed points back ('return') or not ('keep').
    Column("static_redeem_cap", BigInteger, nullable=False, server_default="500"),
    Column("redeemed_on_refund", String(16), nullable=False, server_default="return"),
    #: Issue 5: points each of two members earns when one invited the other and the invited
    #: one completed a first purchase (0: no referral bonus); how often at most the wallet asks
    #: a member the Net Promoter question.
    Column("referral_bonus_points", BigInteger, nullable=False, server_default="0"),
    Column("feedback_interval_days", Integer, nullable=False, server_default="90"),
    #: The card's colours (#rrggbb; null: the default style), checked for contrast.
    Column("card_background", String(7), nullable=True),
    Column("card_foreground", String(7), nullable=True),
    Column("card_accent", String(7), nullable=True),
    #: Issue 6: a manual adjustment of more points than this (either sign) waits for a second
    #: staff member's approval; the most points one adjustment of each role may move
    #: (``{"support": 5000, ...}``; a role missing from it may not adjust; null: the defaults).
    Column("adjustment_approval_threshold", BigInteger, nullable=False, server_default="1000"),
    Column("adjustment_limits", JSON, nullable=True),
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
    #: Segment names earning rules and promotions may be limited to (a JSON list of strings).
    Column("segments", JSON, nullable=True),
    #: Issue 4: the static card number (digits, unique per deployment), the phone number a
    #: cashier may type, and the generation of the member's rotating-code secret (the secret is
    #: derived from the server key and never stored; a new generation revokes the old device).
    Column("card_number", String(32), nullable=True, unique=True),
    Column("phone", String(20), nullable=True),
    Column("card_secret_version", Integer, nullable=False, server_default="0"),
    #: Issue 5: the wallet. The language the member chose (de, en); when the email address was
    #: proven by a sign-in; when the member was erased (personal data gone, ledger kept).
    Column("locale", String(8), nullable=True),
    Column("email_verified_at", DateTimeUTC, nullable=True),
    Column("deleted_at", DateTimeUTC, nullable=True),
    #: Issue 6: the member this record was merged into (it then holds no points and is nobody
    #: at the till); the merchant's own id of the member, from an import (re-runs match on it).
    Column("merged_into_id", BigInteger, ForeignKey("members.id"), nullable=True),
    Column("external_ref", String(64), nullable=True),
)
Index(
    "uq_members_merchant_external_ref",
    members.c.merchant_id,
    members.c.external_ref,
    unique=True,
    sqlite_where=text("external_ref IS NOT NULL"),
    postgresql_where=text("external_ref IS NOT NULL"),
)
Index("ix_members_merchant_email", members.c.merchant_id, members.c.email)
Index("ix_members_merchant_phone", members.c.merchant_id, members.c.phone)

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


# -- Issue 3: staff, audit, rule sets, tiers, orders, promotions, rewards ----------------------

staff_users = Table(
    "staff_users",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False, index=True),
    #: Stored lower-case; one login name per deployment.
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=True),
    Column("last_login_at", DateTimeUTC, nullable=True),
    CheckConstraint(
        "role IN ('owner', 'program_manager', 'support', 'cashier')", name="role_known"
    ),
)

#: Login sessions; only the SHA-256 of a bearer token is stored, so a leaked table grants nothing.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", BigInteger, ForeignKey("staff_users.id"), nullable=False, index=True),
    _created_at(),
    Column("expires_at", DateTimeUTC, nullable=False),
    Column("revoked_at", DateTimeUTC, nullable=True),
)

#: Every change to program configuration: who, when, what before, what after.
audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=True),
    Column("staff_id", BigInteger, ForeignKey("staff_users.id"), nullable=True),
    # A staff label ("name <email>") is up to 523 characters; no arbitrary bound here.
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("at", DateTimeUTC, nullable=False),
)
Index("ix_audit_log_merchant", audit_log.c.merchant_id, audit_log.c.id)

#: Versioned, effective-dated earning rules, promotions and tier policy. A published version
#: is never changed; an order is priced by the published version in force at its time.
rule_sets = Table(
    "rule_sets",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("document", JSON, nullable=False),
    Column("effective_from", DateTimeUTC, nullable=True),
    Column("based_on", Integer, nullable=True),
    _created_at(),
    Column("created_by", Text, nullable=False),
    Column("updated_at", DateTimeUTC, nullable=True),
    Column("published_at", DateTimeUTC, nullable=True),
    Column("published_by", Text, nullable=True),
    UniqueConstraint("program_id", "version", name="uq_rule_sets_program_version"),
    CheckConstraint("status IN ('draft', 'published')", name="status_known"),
    CheckConstraint(
        "(status = 'published') = (effective_from IS NOT NULL)", name="published_have_dates"
    ),
)
Index(
    "ix_rule_sets_in_force", rule_sets.c.program_id, rule_sets.c.status, rule_sets.c.effective_from
)

tier_states = Table(
    "tier_states",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id"), primary_key=True),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("earned", String(64), nullable=False),
    Column("since", DateTimeUTC, nullable=False),
    Column("review_at", DateTimeUTC, nullable=False),
    #: review_at plus the policy's grace period: when ``loyalty tiers recalc`` must look.
    Column("review_due", DateTimeUTC, nullable=False),
    Column("manual", String(64), nullable=True),
    Column("manual_until", DateTimeUTC, nullable=True),
    Column("updated_at", DateTimeUTC, nullable=False),
)
Index("ix_tier_states_due", tier_states.c.program_id, tier_states.c.review_due)

tier_changes = Table(
    "tier_changes",
    metadata,
    _id(),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("before", String(64), nullable=True),
    Column("after", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("at", DateTimeUTC, nullable=False),
    Column("qualifying_total", BigInteger, nullable=True),
    Column("rule_set_id", BigInteger, ForeignKey("rule_sets.id"), nullable=True),
    #: The staff label and the reason of a manual change, or the job that made it.
    Column("actor", Text, nullable=True),
)
Index("ix_tier_changes_account", tier_changes.c.account_id, tier_changes.c.id)
#: Pricing an order sent late looks for the first change after it happened.
Index("ix_tier_changes_account_at", tier_changes.c.account_id, tier_changes.c.at)

#: Orders earned on: the basket, the version and tier that priced it, and the quote, so that a
#: return can be priced exactly as if the returned units had never been bought.
orders = Table(
    "orders",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("occurred_at", DateTimeUTC, nullable=False),
    Column("rule_set_id", BigInteger, ForeignKey("rule_sets.id"), nullable=False),
    Column("tier", String(64), nullable=True),
    Column("basket", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    Column("quote", JSON, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("qualifying_spend", BigInteger, nullable=False),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    _created_at(),
    UniqueConstraint("program_id", "reference", name="uq_orders_program_reference"),
    CheckConstraint("points >= 0", name="points_not_negative"),
)
Index("ix_orders_program_occurred", orders.c.program_id, orders.c.occurred_at)
Index("ix_orders_account", orders.c.account_id, orders.c.id)

order_returns = Table(
    "order_returns",
    metadata,
    _id(),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False, index=True),
    Column("quantities", JSON, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("qualifying_spend", BigInteger, nullable=False),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    Column("reference", String(200), nullable=True),
    _created_at(),
    CheckConstraint("points >= 0 AND qualifying_spend >= 0", name="amounts_not_negative"),
)

#: Signed qualifying points and spend per member over time: tier windows and earning caps sum it.
qualifying_activity = Table(
    "qualifying_activity",
    metadata,
    _id(),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("occurred_at", DateTimeUTC, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("spend", BigInteger, nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=True),
    Column("return_id", BigInteger, ForeignKey("order_returns.id"), nullable=True),
)
Index(
    "ix_qualifying_activity_window",
    qualifying_activity.c.account_id,
    qualifying_activity.c.occurred_at,
)

#: Per-promotion counters, locked while an order uses a budgeted promotion so that two tills
#: cannot both spend its last points.
promotion_counters = Table(
    "promotion_counters",
    metadata,
    Column("program_id", BigInteger, ForeignKey("programs.id"), primary_key=True),
    Column("promotion_code", String(64), primary_key=True),
    Column("points_used", BigInteger, nullable=False, server_default="0"),
)

promotion_awards = Table(
    "promotion_awards",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("promotion_code", String(64), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False, index=True),
    Column("points", BigInteger, nullable=False),
)
Index(
    "ix_promotion_awards_member", promotion_awards.c.account_id, promotion_awards.c.promotion_code
)

#: The reward catalogue. ``definition`` is the reward as the manager wrote it (JSON);
#: ``units_redeemed`` is the stock counter, locked while a redemption takes a unit.
rewards = Table(
    "rewards",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("units_redeemed", BigInteger, nullable=False, server_default="0"),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=True),
    UniqueConstraint("program_id", "code", name="uq_rewards_program_code"),
    CheckConstraint("units_redeemed >= 0", name="units_not_negative"),
)

reward_redemptions = Table(
    "reward_redemptions",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("reward_id", BigInteger, ForeignKey("rewards.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("discount", BigInteger, nullable=False),
    Column("hold_id", BigInteger, ForeignKey("holds.id"), nullable=True),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    Column("voucher_code", String(32), nullable=True, unique=True),
    Column("reference", String(200), nullable=True),
    _created_at(),
    Column("resolved_at", DateTimeUTC, nullable=True),
    CheckConstraint("status IN ('pending', 'completed', 'released')", name="status_known"),
    CheckConstraint("points > 0 AND discount >= 0", name="amounts_valid"),
)
Index(
    "ix_reward_redemptions_member", reward_redemptions.c.account_id, reward_redemptions.c.reward_id
)
Index("ix_reward_redemptions_hold", reward_redemptions.c.hold_id)
Index(
    "ix_reward_redemptions_reference",
    reward_redemptions.c.program_id,
    reward_redemptions.c.reference,
)
#: Stock reconciliation looks for the pending redemptions of a reward; completed and released
#: ones (nearly all) stay out of this index.
Index(
    "ix_reward_redemptions_pending",
    reward_redemptions.c.reward_id,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)


# --- Issue 4: point of sale -------------------------------------------------------------------

#: A till (or the built-in cashier page of a location) of a merchant.
terminals = Table(
    "terminals",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    _created_at(),
    Column("disabled_at", DateTimeUTC, nullable=True),
    UniqueConstraint("merchant_id", "code", name="uq_terminals_merchant_code"),
)

#: API keys of terminals: ``lk_<prefix>_<secret>``; only the SHA-256 of the secret is stored.
#: A rotated key stays valid until ``expires_at`` so that tills switch without downtime.
terminal_keys = Table(
    "terminal_keys",
    metadata,
    _id(),
    Column("terminal_id", BigInteger, ForeignKey("terminals.id"), nullable=False, index=True),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    _created_at(),
    Column("created_by", Text, nullable=True),
    Column("expires_at", DateTimeUTC, nullable=True),
    Column("revoked_at", DateTimeUTC, nullable=True),
    Column("last_used_at", DateTimeUTC, nullable=True),
)

#: One row per POS transaction: where it happened, who it was for, and what became of it.
pos_transactions = Table(
    "pos_transactions",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("terminal_id", BigInteger, ForeignKey("terminals.id"), nullable=False),
    Column("location", String(64), nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("identified_by", String(16), nullable=False),
    Column("offline", Boolean, nullable=False, server_default=text("false")),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("total", BigInteger, nullable=True),
    Column("occurred_at", DateTimeUTC, nullable=True),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=False),
    UniqueConstraint("merchant_id", "transaction_id", name="uq_pos_transactions_merchant_tx"),
    CheckConstraint("status IN ('open', 'completed', 'voided')", name="status_known"),
)
Index(
    "ix_pos_transactions_location_day",
    pos_transactions.c.merchant_id,
    pos_transactions.c.location,
    pos_transactions.c.created_at,
)

#: Rotating codes used for a redemption: each (member, time step) once.
rotating_code_uses = Table(
    "rotating_code_uses",
    metadata,
    Column("member_id", BigInteger, ForeignKey("members.id"), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("used_at", DateTimeUTC, nullable=False),
    #: The sale it redeemed on: more redemptions of that sale may use the same code.
    Column("reference", String(200), nullable=True),
)

#: A merchant's account at a POS vendor (a Toast restaurant, a Shopify shop): the vendor's
#: requests for ``account`` act as ``terminal``. The vendor secret (the API key Toast presents,
#: the HMAC secret Shopify signs with) is kept encrypted: the platform needs it in the clear to
#: check a signature, so it cannot be hashed.
vendor_connections = Table(
    "vendor_connections",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("terminal_id", BigInteger, ForeignKey("terminals.id"), nullable=False),
    Column("vendor", String(32), nullable=False),
    Column("account", String(255), nullable=False),
    Column("secret_sealed", Text, nullable=False),
    #: The secret's last four characters, so staff can tell which one is configured.
    Column("secret_hint", String(8), nullable=False),
    Column("calling_code", String(4), nullable=True),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=False),
    Column("disabled_at", DateTimeUTC, nullable=True),
    Column("last_used_at", DateTimeUTC, nullable=True),
    UniqueConstraint("vendor", "account", name="uq_vendor_connections_vendor_account"),
)

#: Every message a vendor sent, once per vendor message id: its answer (replayed to a repeated
#: delivery) and what it did (``effects``: which sale, which redemptions; a Toast reverse names
#: the message whose effects it undoes).
vendor_messages = Table(
    "vendor_messages",
    metadata,
    _id(),
    Column("connection_id", BigInteger, ForeignKey("vendor_connections.id"), nullable=False),
    Column("message_key", String(128), nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("transaction_id", String(128), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("response", LargeBinary, nullable=True),
    Column("effects", JSON, nullable=True),
    _created_at(),
    Column("answered_at", DateTimeUTC, nullable=True),
    UniqueConstraint("connection_id", "message_key", name="uq_vendor_messages_connection_key"),
)

#: Every consent a member gave or withdrew, with the version of the text they saw: the current
#: state of a kind is its latest row. Kept when a member is erased (it holds no personal data).
member_consents = Table(
    "member_consents",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("text_version", String(32), nullable=False),
    #: Where it was given: wallet, pos, admin.
    Column("source", String(16), nullable=False),
    Column("at", DateTimeUTC, nullable=False),
)
Index("ix_member_consents_member_kind", member_consents.c.member_id, member_consents.c.kind)

#: One-time sign-in codes and links: only digests are kept, keyed with the server key.
sign_in_codes = Table(
    "sign_in_codes",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("link_hash", String(64), nullable=False, unique=True),
    #: sign_in, or complete_profile (a member the cashier enrolled).
    Column("purpose", String(32), nullable=False),
    _created_at(),
    Column("expires_at", DateTimeUTC, nullable=False),
    Column("used_at", DateTimeUTC, nullable=True),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
)
Index("ix_sign_in_codes_member_created", sign_in_codes.c.member_id, sign_in_codes.c.created_at)

#: Members' wallet sessions: the cookie holds the token, the database its SHA-256.
member_sessions = Table(
    "member_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False, index=True),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    _created_at(),
    Column("expires_at", DateTimeUTC, nullable=False),
    Column("last_seen_at", DateTimeUTC, nullable=False),
    Column("revoked_at", DateTimeUTC, nullable=True),
    #: When this session was given the member's rotating-code secret (GET .../card): once per
    #: session, so that a stolen session cookie cannot copy the secret later.
    Column("card_secret_delivered_at", DateTimeUTC, nullable=True),
)

#: Mail the platform sends. With SMTP configured a sender delivers it; in the embedded default
#: it stays here and staff read it on the outbox page, so sign-in works without a mail server.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("to_address", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body_text", Text, nullable=False),
    #: What the mail is (sign_in, welcome, complete_profile): for the outbox page's filter.
    Column("kind", String(32), nullable=False),
    _created_at(),
    Column("sent_at", DateTimeUTC, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
)
Index("ix_mail_outbox_unsent", mail_outbox.c.sent_at, mail_outbox.c.id)

#: Invitations that became members: the invited member's first purchase earns both the
#: program's referral bonus, once (``converted_at``).
referrals = Table(
    "referrals",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("inviter_member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("invitee_member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    _created_at(),
    Column("converted_at", DateTimeUTC, nullable=True),
    #: Why it earned nothing (the two share an email, phone or card), when it did not.
    Column("refused", String(64), nullable=True),
    UniqueConstraint("program_id", "invitee_member_id", name="uq_referrals_program_invitee"),
)
Index("ix_referrals_inviter", referrals.c.program_id, referrals.c.inviter_member_id)

#: A member's invitation code per program (the link they share): random, so that it tells
#: nothing about the member.
invite_codes = Table(
    "invite_codes",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    _created_at(),
    UniqueConstraint("program_id", "member_id", name="uq_invite_codes_program_member"),
)

#: Answers to the Net Promoter question (0-10) with an optional comment; a row without a score
#: is a question the member dismissed (it counts as asked).
feedback_answers = Table(
    "feedback_answers",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("score", Integer, nullable=True),
    Column("comment", Text, nullable=True),
    _created_at(),
    CheckConstraint("score IS NULL OR (score >= 0 AND score <= 10)", name="score_0_to_10"),
)
Index(
    "ix_feedback_answers_program_created",
    feedback_answers.c.program_id,
    feedback_answers.c.created_at,
)
Index("ix_feedback_answers_member", feedback_answers.c.member_id, feedback_answers.c.created_at)

#: Apple Wallet passes issued to members: the serial is opaque (it travels in every web service
#: URL), ``updated_at`` is the pass's "last updated" tag.
wallet_passes = Table(
    "wallet_passes",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("serial", String(64), nullable=False, unique=True),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=False),
    UniqueConstraint("program_id", "member_id", name="uq_wallet_passes_program_member"),
)

#: Devices that registered a pass for updates (Apple's PassKit web service), with their push
#: token.
pass_registrations = Table(
    "pass_registrations",
    metadata,
    Column("device_library_id", String(128), primary_key=True),
    Column("pass_type_id", String(255), primary_key=True),
    Column("serial", String(64), primary_key=True),
    Column("push_token", String(255), nullable=False),
    _created_at(),
)
Index("ix_pass_registrations_serial", pass_registrations.c.serial)


# --- Issue 6: admin, analytics, data in and out ------------------------------------------------

#: Manual adjustments staff asked for. Within the program's threshold they post at once
#: (``posted`` with the journal); above it they wait (``pending``) until a second staff member
#: approves (then ``posted``) or rejects them, or the requester withdraws them (``cancelled``).
adjustment_requests = Table(
    "adjustment_requests",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", BigInteger, ForeignKey("staff_users.id"), nullable=False),
    Column("requested_by_label", Text, nullable=False),
    Column("requested_at", DateTimeUTC, nullable=False),
    Column("decided_by", BigInteger, ForeignKey("staff_users.id"), nullable=True),
    Column("decided_by_label", Text, nullable=True),
    Column("decided_at", DateTimeUTC, nullable=True),
    Column("decision_note", String(500), nullable=True),
    Column("journal_id", BigInteger, ForeignKey("journals.id"), nullable=True),
    CheckConstraint("points <> 0", name="points_not_zero"),
    CheckConstraint(
        "status IN ('pending', 'posted', 'rejected', 'cancelled')", name="status_known"
    ),
    CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="four_eyes"),
)
Index(
    "ix_adjustment_requests_program_status",
    adjustment_requests.c.program_id,
    adjustment_requests.c.status,
    adjustment_requests.c.id,
)
Index("ix_adjustment_requests_member", adjustment_requests.c.member_id, adjustment_requests.c.id)

#: Two member records of one person made one: the source's points moved to the target by ledger
#: transfers (``moved``: per program the points and the journal), the source left empty.
member_merges = Table(
    "member_merges",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("source_member_id", BigInteger, ForeignKey("members.id"), nullable=False, unique=True),
    Column("target_member_id", BigInteger, ForeignKey("members.id"), nullable=False, index=True),
    Column("staff_id", BigInteger, ForeignKey("staff_users.id"), nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("moved", JSON, nullable=False),
    Column("at", DateTimeUTC, nullable=False),
)

#: Where a merchant wants to hear about events (points earned, redeemed, expired, expiring soon,
#: tier changed). The signing secret is sealed like a vendor secret: signing needs it in clear.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=True),
    Column("url", String(2000), nullable=False),
    Column("description", String(200), nullable=False),
    #: The event types it receives (a JSON list of strings).
    Column("events", JSON, nullable=False),
    Column("secret_sealed", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTimeUTC, nullable=False),
    Column("disabled_at", DateTimeUTC, nullable=True),
)

#: One event for one endpoint. ``event_id`` is stable (the receiver's deduplication key) and
#: unique per endpoint, so that finding an event twice never sends it twice.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column("endpoint_id", BigInteger, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTimeUTC, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    _created_at(),
    Column("delivered_at", DateTimeUTC, nullable=True),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
)
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.next_attempt_at,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)
Index("ix_webhook_deliveries_endpoint", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.id)

#: Every attempt to deliver: the delivery log staff read.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    _id(),
    Column(
        "delivery_id", BigInteger, ForeignKey("webhook_deliveries.id"), nullable=False, index=True
    ),
    Column("at", DateTimeUTC, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)

#: How far the webhook dispatcher has read each event source (journals, tier_changes, ...).
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", DateTimeUTC, nullable=False),
)

#: CSV imports: what was checked and what was imported, with the validation report.
import_runs = Table(
    "import_runs",
    metadata,
    _id(),
    Column("merchant_id", BigInteger, ForeignKey("merchants.id"), nullable=False),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("skip_bad_lines", Boolean, nullable=False),
    Column("rows_total", BigInteger, nullable=False, server_default="0"),
    Column("rows_imported", BigInteger, nullable=False, server_default="0"),
    Column("rows_already_present", BigInteger, nullable=False, server_default="0"),
    Column("rows_invalid", BigInteger, nullable=False, server_default="0"),
    #: The first problems found, with their line numbers (a JSON list).
    Column("problems", JSON, nullable=False),
    Column("actor", Text, nullable=False),
    _created_at(),
    Column("finished_at", DateTimeUTC, nullable=True),
    CheckConstraint("kind IN ('members', 'transactions')", name="kind_known"),
    CheckConstraint("status IN ('rejected', 'imported', 'failed')", name="status_known"),
)
Index("ix_import_runs_merchant", import_runs.c.merchant_id, import_runs.c.id)

#: Sales without a member (from imported transaction files, or tills that report them): the
#: other side of "average order value of members vs non-members".
non_member_sales = Table(
    "non_member_sales",
    metadata,
    _id(),
    Column("program_id", BigInteger, ForeignKey("programs.id"), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("occurred_at", DateTimeUTC, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(32), nullable=False),
    _created_at(),
    UniqueConstraint("program_id", "reference", name="uq_non_member_sales_program_reference"),
)
Index(
    "ix_non_member_sales_program_occurred",
    non_member_sales.c.program_id,
    non_member_sales.c.occurred_at,
)
