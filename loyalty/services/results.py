"""What the services answer: msgspec Structs, used as the API's response bodies as they are."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Balance(msgspec.Struct, frozen=True):
    posted: int
    held: int
    available: int


class HoldView(msgspec.Struct, frozen=True):
    hold_id: int
    program_id: int
    member_id: int
    points: int
    captured: int
    status: str
    expires_at: datetime
    reference: str | None = None


class OperationResult(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger operation, as it was recorded."""

    journal_id: int
    kind: str
    program_id: int
    member_id: int
    points: int
    delta: int
    balance: Balance
    effective_at: datetime
    created_at: datetime
    #: Points that expire with the lot an earn created (None: never).
    lot_expires_at: datetime | None = None
    hold: HoldView | None = None
    reverses_journal_id: int | None = None
    #: Transfers (and their reversals): the other member and their balance afterwards.
    counter_member_id: int | None = None
    counter_balance: Balance | None = None
    reference: str | None = None


class ProgramView(msgspec.Struct, frozen=True):
    program_id: int
    code: str
    name: str
    currency: str
    timezone: str
    expiry_kind: str
    expiry_value: int
    hold_timeout_seconds: int
    created_at: datetime
    #: What one point is worth in millionths of the currency unit (10_000 = 0.01 EUR).
    point_value_micros: int = 10_000
    rounding: str = "down"
    name_de: str = ""
    name_en: str = ""
    description_de: str = ""
    description_en: str = ""
    static_redeem_cap: int = 500
    redeemed_on_refund: str = "return"
    referral_bonus_points: int = 0
    feedback_interval_days: int = 90
    #: The card's colours (#rrggbb); None: the default style.
    card_background: str | None = None
    card_foreground: str | None = None
    card_accent: str | None = None


class MemberView(msgspec.Struct, frozen=True):
    member_id: int
    display_name: str
    email: str | None
    created_at: datetime
    program_ids: list[int]


class EnrollmentResult(msgspec.Struct, frozen=True):
    member_id: int
    program_id: int
    account_id: int
    balance: Balance


class ExpiringPoints(msgspec.Struct, frozen=True):
    expires_at: datetime
    points: int


class BalanceView(msgspec.Struct, frozen=True):
    program_id: int
    member_id: int
    posted: int
    held: int
    available: int
    #: Free points by expiry date, soonest first (points already due are listed until swept).
    expiring: list[ExpiringPoints]
    version: int


class HistoryItem(msgspec.Struct, frozen=True, kw_only=True):
    journal_id: int
    kind: str
    points: int
    #: Change to this member's posted balance, and to their held points.
    delta: int
    held_delta: int
    effective_at: datetime
    created_at: datetime
    reverses_journal_id: int | None = None
    hold_id: int | None = None
    counter_member_id: int | None = None
    reference: str | None = None
    reason: str | None = None


class HistoryPage(msgspec.Struct, frozen=True):
    items: list[HistoryItem]
    #: Pass as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


class JournalView(msgspec.Struct, frozen=True, kw_only=True):
    journal_id: int
    kind: str
    program_id: int
    member_id: int
    points: int
    delta: int
    held_delta: int
    effective_at: datetime
    created_at: datetime
    refunded: int
    reversed: bool
    reverses_journal_id: int | None = None
    hold_id: int | None = None
    counter_member_id: int | None = None
    actor: str | None = None
    reason: str | None = None
    reference: str | None = None
