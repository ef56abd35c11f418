"""A member's own data (DSGVO/GDPR): the profile, a download of everything stored about them,
and erasure.

**Profile.** Name, phone and language can be changed by the member. Changing the email address
is out of scope here: the address is how a member signs in, so a change needs a confirmation
mail to the new address first (a flow of its own). The phone number is normalised like at
enrollment and not checked for uniqueness: refusing a number because another member has it
would tell anyone signed in whose number it is; a number two members share finds neither at
the till (``scan_ambiguous``), never the wrong one.

**Export** (Art. 15 and 20): everything stored about the member across the merchant, as JSON
(``MemberExport``) or as CSV. Left out, on purpose: digests of session tokens and sign-in codes
(they open nothing and mean nothing to a person), mail bodies (they hold sign-in codes and
links; a sign-in mail's subject has its code blanked out), the staff names on manual tier
changes and the staff audit log (personal data of staff, not of the member), and the other
member of a transfer.

The CSV form is a ZIP archive with one CSV file per section (``member.csv``, ``journals.csv``,
``orders.csv``, ``order_lines.csv``, ...), because the sections have different columns: one CSV
with a section column would need the union of all columns, nearly all empty, and could not be
filtered or summed in a spreadsheet. Each file is UTF-8 with a byte-order mark (so that
spreadsheet programs on Windows read umlauts right), has a header row even when it has no data
rows, times in ISO 8601 UTC, and nested values (a quote, returned quantities) as JSON text.

**Erasure** (Art. 17) pseudonymizes the member: the name becomes ``ERASED_NAME``; email, phone,
language, segments, email verification and the static card number are cleared (the card number
column is nullable, so nothing fake is needed); the rotating-code secret generation is raised
(every wallet device's secret stops working); ``deleted_at`` is set. Every session is revoked,
every unused sign-in code burned, the mail addressed to them (sent or not) deleted, their used
rotating codes forgotten, their invitation code deleted, the comments of their Net Promoter
answers cleared (the scores stay in the program's figure), and their Apple Wallet passes with
the devices registered for updates (device ids, push tokens) deleted. Such a member is not found
by a scan or typed value at the till (``identify``) nor by sign-in or enrollment (those look
only at members without ``deleted_at``).

Kept, without personal data, under the member id alone: the ledger (journals, entries, lots,
holds), orders and returns, redemptions, POS transactions, tier history, qualifying activity and
referrals (two member ids and whether the bonus was paid). The merchant must keep sales and
discounts for its books (HGB section 257, AO section 147), and the ledger must stay whole: every
journal sums to zero and every account's cached balance equals its entries, so ``loyalty ledger
verify`` stays clean. The consent history is kept too: it is the proof that data was processed
lawfully while the member was one (Art. 7(1)), and it holds no personal data (kinds, text
versions, times).

**Points left on the accounts are forfeited**: nobody can use them any more (no card, no code,
no sign-in), and kept they would be a liability on the merchant's books for ever. Pending holds
of the member (an open sale at a till) are released first, their reward redemptions ending
released with the unit back in stock (a till voiding the sale later finds nothing pending); then
one ``expire`` journal per account (reason ``member erased``) moves the free points of every lot
to the program's ``expired`` (breakage) account, drawing the lots exactly as the expiry sweep
does, so that lot remainders keep summing to the balance. The wallet should say so before the
member confirms. Points a later refund of an earlier sale gives back stay on the (unusable)
account.

An audit entry ``member.erase`` (actor ``system``) records what was done, without personal
data. Erasing again changes nothing and answers what the first erasure answered.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType
from sqlalchemy import func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import READ_ONLY, in_transaction
from loyalty.db.tables import (
    accounts,
    audit_log,
    entries,
    feedback_answers,
    holds,
    invite_codes,
    journals,
    lots,
    mail_outbox,
    member_consents,
    member_sessions,
    members,
    order_returns,
    orders,
    pass_registrations,
    pos_transactions,
    promotion_awards,
    qualifying_activity,
    referrals,
    reward_redemptions,
    rewards,
    rotating_code_uses,
    sign_in_codes,
    tier_changes,
    tier_states,
    wallet_passes,
)
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import HoldStatus, JournalKind
from loyalty.domain.lots import Draw

from . import ledger_writes as w
from .audit import record_entry
from .contacts import normalize_phone
from .context import Caller, utc_now
from .lookups import member_accounts
from .member_merge import end_access
from .rewards import reconcile_redemptions

T = TypeVar("T")

#: What an erased member is called wherever a name is shown (admin pages, old receipts).
ERASED_NAME = "Gelöschtes Mitglied"
#: The reason on the journals that forfeit an erased member's points.
ERASURE_REASON = "member erased"
ERASE_ACTION = "member.erase"
LOCALES = ("de", "en")
MAX_NAME_LENGTH = 200
#: Digits in a mail subject that may be a sign-in code ("...: 123456", also "123 456").
_CODE_IN_TEXT = re.compile(r"\d(?:[ \u00a0]?\d){3,}")
CODE_BLANKED = "••••••"


# --- what the services answer ----------------------------------------------------------------


class MemberProfile(Struct, frozen=True, kw_only=True):
    member_id: int
    display_name: str
    email: str | None
    phone: str | None
    locale: str | None
    #: The static card number (printed cards, Apple Wallet).
    card_number: str | None
    created_at: datetime
    #: When a sign-in proved the address is the member's (None: not yet).
    email_verified_at: datetime | None


class AccountExport(Struct, frozen=True, kw_only=True):
    """The member's account in one program, with its balance at the time of the export."""

    program_id: int
    program_code: str
    program_name: str
    currency: str
    joined_at: datetime
    posted: int
    held: int
    available: int


class LotExport(Struct, frozen=True, kw_only=True):
    """Points credited together, and when what is left of them expires."""

    lot_id: int
    program_id: int
    journal_id: int
    original: int
    remaining: int
    held: int
    expires_at: datetime | None
    created_at: datetime


class HoldExport(Struct, frozen=True, kw_only=True):
    hold_id: int
    program_id: int
    points: int
    captured: int
    status: str
    reference: str | None
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None


class JournalExport(Struct, frozen=True, kw_only=True):
    """One operation on the member's points; ``delta`` and ``held_delta`` from their side."""

    journal_id: int
    program_id: int
    kind: str
    points: int
    delta: int
    held_delta: int
    effective_at: datetime
    created_at: datetime
    reverses_journal_id: int | None
    hold_id: int | None
    reference: str | None
    reason: str | None


class EntryExport(Struct, frozen=True, kw_only=True):
    """A posting on the member's account (the other side is a program account)."""

    entry_id: int
    journal_id: int
    program_id: int
    amount: int


class OrderLineExport(Struct, frozen=True, kw_only=True):
    order_id: int
    line_id: str
    sku: str
    quantity: int
    #: Money in minor units (cents).
    unit_price: int
    line_discount: int
    category: str | None
    kind: str


class OrderExport(Struct, frozen=True, kw_only=True):
    order_id: int
    program_id: int
    reference: str
    occurred_at: datetime
    currency: str | None
    location: str | None
    #: The member's tier that priced the order.
    tier: str | None
    points: int
    qualifying_spend: int
    journal_id: int | None
    created_at: datetime
    #: Why the order earned what it did: a line per rule that fired.
    quote: Any
    #: What was known about the member when it was priced (segments, caps used).
    context: Any
    lines: list[OrderLineExport]


class ReturnExport(Struct, frozen=True, kw_only=True):
    return_id: int
    order_id: int
    #: Returned units per order line id.
    quantities: Any
    points: int
    qualifying_spend: int
    journal_id: int | None
    reference: str | None
    created_at: datetime


class RedemptionExport(Struct, frozen=True, kw_only=True):
    redemption_id: int
    program_id: int
    reward_code: str
    status: str
    points: int
    discount: int
    voucher_code: str | None
    hold_id: int | None
    journal_id: int | None
    reference: str | None
    created_at: datetime
    resolved_at: datetime | None


class PosTransactionExport(Struct, frozen=True, kw_only=True):
    program_id: int
    transaction_id: str
    location: str
    status: str
    #: How the till named the member: card_number, rotating_code, phone, email.
    identified_by: str
    offline: bool
    order_id: int | None
    currency: str | None
    total: int | None
    occurred_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConsentExport(Struct, frozen=True, kw_only=True):
    """Every consent given or withdrawn, oldest first."""

    program_id: int
    kind: str
    granted: bool
    text_version: str
    source: str
    at: datetime


class TierStateExport(Struct, frozen=True, kw_only=True):
    program_id: int
    earned: str
    since: datetime
    review_at: datetime
    manual: str | None
    manual_until: datetime | None


class TierChangeExport(Struct, frozen=True, kw_only=True):
    program_id: int
    before: str | None
    after: str
    reason: str
    at: datetime
    qualifying_total: int | None


class QualifyingActivityExport(Struct, frozen=True, kw_only=True):
    """What counts towards tiers and earning caps."""

    program_id: int
    occurred_at: datetime
    points: int
    spend: int
    order_id: int | None
    return_id: int | None


class PromotionAwardExport(Struct, frozen=True, kw_only=True):
    program_id: int
    promotion_code: str
    order_id: int
    points: int


class SessionExport(Struct, frozen=True, kw_only=True):
    """A wallet sign-in (the token itself is never stored)."""

    program_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class SignInCodeExport(Struct, frozen=True, kw_only=True):
    """A sign-in code or link that was mailed (the code itself is never stored)."""

    program_id: int
    purpose: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    failed_attempts: int


class MailExport(Struct, frozen=True, kw_only=True):
    """Mail sent to the member: what and when, not the text (it held sign-in codes); any
    code in the subject is blanked out."""

    mail_id: int
    kind: str
    subject: str
    created_at: datetime
    sent_at: datetime | None


class WalletCodeUseExport(Struct, frozen=True, kw_only=True):
    """A rotating wallet code that redeemed (kept a few minutes against replays)."""

    step: int
    used_at: datetime
    reference: str | None


class InviteCodeExport(Struct, frozen=True, kw_only=True):
    """The member's invitation link code in a program."""

    program_id: int
    code: str
    created_at: datetime


class ReferralExport(Struct, frozen=True, kw_only=True):
    """An invitation the member sent (``inviter``) or joined with (``invitee``); the other
    person is not named."""

    program_id: int
    role: str
    created_at: datetime
    converted_at: datetime | None
    refused: str | None


class FeedbackExport(Struct, frozen=True, kw_only=True):
    """An answer to the Net Promoter question (no score: dismissed)."""

    program_id: int
    score: int | None
    comment: str | None
    created_at: datetime


class WalletPassExport(Struct, frozen=True, kw_only=True):
    """An Apple Wallet pass issued to the member, and how many devices receive its updates."""

    program_id: int
    serial: str
    created_at: datetime
    updated_at: datetime
    devices: int


class MemberExport(Struct, frozen=True, kw_only=True):
    """Everything stored about a member across the merchant's programs."""

    generated_at: datetime
    merchant_id: int
    profile: MemberProfile
    segments: list[str]
    accounts: list[AccountExport]
    lots: list[LotExport]
    holds: list[HoldExport]
    journals: list[JournalExport]
    entries: list[EntryExport]
    orders: list[OrderExport]
    returns: list[ReturnExport]
    redemptions: list[RedemptionExport]
    pos_transactions: list[PosTransactionExport]
    consents: list[ConsentExport]
    tier_states: list[TierStateExport]
    tier_changes: list[TierChangeExport]
    qualifying_activity: list[QualifyingActivityExport]
    promotion_awards: list[PromotionAwardExport]
    sessions: list[SessionExport]
    sign_in_codes: list[SignInCodeExport]
    mail: list[MailExport]
    wallet_code_uses: list[WalletCodeUseExport]
    invite_codes: list[InviteCodeExport]
    referrals: list[ReferralExport]
    feedback: list[FeedbackExport]
    wallet_passes: list[WalletPassExport]


class Erased(Struct, frozen=True, kw_only=True):
    """What an erasure did (the same answer when it is asked again)."""

    member_id: int
    erased_at: datetime
    #: Free points taken off the member's accounts (to the programs' breakage accounts).
    points_forfeited: int
    holds_released: int
    sessions_ended: int
    sign_in_codes_burned: int
    mails_deleted: int


# --- the service -----------------------------------------------------------------------------


class MemberPrivacy:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def profile(self, member_id: int, program_id: int) -> MemberProfile:
        """The member's personal data; ``member_not_found`` unless they are a live member of
        the program."""

        async def work(conn: AsyncConnection) -> MemberProfile:
            enrolled = await conn.scalar(
                select(accounts.c.id).where(
                    accounts.c.member_id == member_id, accounts.c.program_id == program_id
                )
            )
            if enrolled is None:
                raise _member_not_found(member_id)
            return _profile(await _live_member(conn, member_id))

        return await in_transaction(self._engine, work, read_only=True)

    async def update_profile(
        self,
        member_id: int,
        *,
        display_name: str | UnsetType = UNSET,
        phone: str | UnsetType | None = UNSET,
        locale: str | UnsetType | None = UNSET,
    ) -> MemberProfile:
        """Change what is given; ``UNSET`` leaves a field, None (or an empty phone) clears the
        phone or the language. The email address cannot be changed here (see the module
        docs)."""
        values: dict[str, Any] = {}
        if not isinstance(display_name, UnsetType):
            name = display_name.strip()
            if not name or len(name) > MAX_NAME_LENGTH:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED,
                    f"a name of 1 to {MAX_NAME_LENGTH} characters is required",
                    field="display_name",
                )
            values["display_name"] = name
        if not isinstance(phone, UnsetType):
            values["phone"] = normalize_phone(phone) if phone and phone.strip() else None
        if not isinstance(locale, UnsetType):
            if locale is not None and locale not in LOCALES:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED,
                    f"the language is one of {', '.join(LOCALES)}",
                    field="locale",
                )
            values["locale"] = locale

        async def work(conn: AsyncConnection) -> MemberProfile:
            await _live_member(conn, member_id, lock=True)
            if values:
                await conn.execute(
                    update(members).where(members.c.id == member_id).values(**values)
                )
            return _profile(await _live_member(conn, member_id))

        return await in_transaction(self._engine, work)

    async def export(self, member_id: int, merchant_id: int) -> MemberExport:
        """Everything stored about the member (see the module docs), read in one snapshot."""

        async def work(conn: AsyncConnection) -> MemberExport:
            return await _export(conn, member_id, merchant_id, self._clock())

        return await _snapshot(self._engine, work)

    async def export_csv(self, member_id: int, merchant_id: int) -> bytes:
        """The export as a ZIP archive of CSV files (see the module docs)."""
        return csv_archive(await self.export(member_id, merchant_id))

    async def erase(self, member_id: int, merchant_id: int, at: datetime) -> Erased:
        """Pseudonymize the member and forfeit their points (see the module docs)."""

        async def work(conn: AsyncConnection) -> Erased:
            return await _erase(conn, member_id, merchant_id, at)

        return await in_transaction(self._engine, work)


# --- reading -----------------------------------------------------------------------------------


def _member_not_found(member_id: int) -> DomainError:
    return DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member", member_id=member_id)


async def _live_member(
    conn: AsyncConnection, member_id: int, *, merchant_id: int | None = None, lock: bool = False
) -> Any:
    query = select(members).where(members.c.id == member_id, members.c.deleted_at.is_(None))
    if merchant_id is not None:
        query = query.where(members.c.merchant_id == merchant_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise _member_not_found(member_id)
    return row


def _profile(row: Any) -> MemberProfile:
    return MemberProfile(
        member_id=row.id,
        display_name=row.display_name,
        email=row.email,
        phone=row.phone,
        locale=row.locale,
        card_number=row.card_number,
        created_at=row.created_at,
        email_verified_at=row.email_verified_at,
    )


async def _snapshot(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run read-only ``work`` in one snapshot (REPEATABLE READ on PostgreSQL; a SQLite
    transaction is one already), so that every section of an export is of the same instant."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn = await conn.execution_options(**READ_ONLY)
        async with conn.begin():
            return await work(conn)


async def _export(
    conn: AsyncConnection, member_id: int, merchant_id: int, now: datetime
) -> MemberExport:
    member = await _live_member(conn, member_id, merchant_id=merchant_id)
    account_rows = (await conn.execute(member_accounts(member_id, merchant_id))).all()
    program_of = {row.id: row.program_id for row in account_rows}
    ids = list(program_of)
    program_ids = [row.program_id for row in account_rows]

    async def rows(query: Any) -> list[Any]:
        return list((await conn.execute(query)).all())

    journal_rows = await rows(
        select(journals)
        .where(or_(journals.c.account_id.in_(ids), journals.c.counter_account_id.in_(ids)))
        .order_by(journals.c.id)
    )
    order_rows = await rows(
        select(orders).where(orders.c.account_id.in_(ids)).order_by(orders.c.id)
    )
    mail_rows: list[Any] = []
    if member.email is not None:
        mail_rows = await rows(
            select(mail_outbox)
            .where(
                mail_outbox.c.merchant_id == merchant_id,
                func.lower(mail_outbox.c.to_address) == member.email.lower(),
            )
            .order_by(mail_outbox.c.id)
        )
    pass_rows = await rows(
        select(
            wallet_passes,
            select(func.count())
            .select_from(pass_registrations)
            .where(pass_registrations.c.serial == wallet_passes.c.serial)
            .scalar_subquery()
            .label("devices"),
        )
        .where(wallet_passes.c.member_id == member_id)
        .order_by(wallet_passes.c.id)
    )
    return MemberExport(
        generated_at=now,
        merchant_id=merchant_id,
        profile=_profile(member),
        segments=sorted(member.segments or ()),
        accounts=[
            AccountExport(
                program_id=row.program_id,
                program_code=row.code,
                program_name=row.name,
                currency=row.currency,
                joined_at=row.created_at,
                posted=row.posted,
                held=row.held,
                available=row.posted - row.held,
            )
            for row in account_rows
        ],
        lots=[
            LotExport(
                lot_id=row.id,
                program_id=program_of[row.account_id],
                journal_id=row.journal_id,
                original=row.original,
                remaining=row.remaining,
                held=row.held,
                expires_at=row.expires_at,
                created_at=row.created_at,
            )
            for row in await rows(
                select(lots).where(lots.c.account_id.in_(ids)).order_by(lots.c.id)
            )
        ],
        holds=[
            HoldExport(
                hold_id=row.id,
                program_id=row.program_id,
                points=row.points,
                captured=row.captured,
                status=row.status,
                reference=row.reference,
                expires_at=row.expires_at,
                created_at=row.created_at,
                resolved_at=row.resolved_at,
            )
            for row in await rows(
                select(holds).where(holds.c.account_id.in_(ids)).order_by(holds.c.id)
            )
        ],
        journals=[_journal(row, program_of) for row in journal_rows],
        entries=[
            EntryExport(
                entry_id=row.id,
                journal_id=row.journal_id,
                program_id=program_of[row.account_id],
                amount=row.amount,
            )
            for row in await rows(
                select(entries).where(entries.c.account_id.in_(ids)).order_by(entries.c.id)
            )
        ],
        orders=[_order(row) for row in order_rows],
        returns=[
            ReturnExport(
                return_id=row.id,
                order_id=row.order_id,
                quantities=row.quantities,
                points=row.points,
                qualifying_spend=row.qualifying_spend,
                journal_id=row.journal_id,
                reference=row.reference,
                created_at=row.created_at,
            )
            for row in await rows(
                select(order_returns)
                .join(orders, orders.c.id == order_returns.c.order_id)
                .where(orders.c.account_id.in_(ids))
                .order_by(order_returns.c.id)
            )
        ],
        redemptions=[
            RedemptionExport(
                redemption_id=row.id,
                program_id=row.program_id,
                reward_code=row.reward_code,
                status=row.status,
                points=row.points,
                discount=row.discount,
                voucher_code=row.voucher_code,
                hold_id=row.hold_id,
                journal_id=row.journal_id,
                reference=row.reference,
                created_at=row.created_at,
                resolved_at=row.resolved_at,
            )
            for row in await rows(
                select(reward_redemptions, rewards.c.code.label("reward_code"))
                .join(rewards, rewards.c.id == reward_redemptions.c.reward_id)
                .where(reward_redemptions.c.account_id.in_(ids))
                .order_by(reward_redemptions.c.id)
            )
        ],
        pos_transactions=[
            PosTransactionExport(
                program_id=row.program_id,
                transaction_id=row.transaction_id,
                location=row.location,
                status=row.status,
                identified_by=row.identified_by,
                offline=row.offline,
                order_id=row.order_id,
                currency=row.currency,
                total=row.total,
                occurred_at=row.occurred_at,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in await rows(
                select(pos_transactions)
                .where(
                    pos_transactions.c.account_id.in_(ids),
                    pos_transactions.c.merchant_id == merchant_id,
                )
                .order_by(pos_transactions.c.id)
            )
        ],
        consents=[
            ConsentExport(
                program_id=row.program_id,
                kind=row.kind,
                granted=row.granted,
                text_version=row.text_version,
                source=row.source,
                at=row.at,
            )
            for row in await rows(
                select(member_consents)
                .where(
                    member_consents.c.member_id == member_id,
                    member_consents.c.program_id.in_(program_ids),
                )
                .order_by(member_consents.c.id)
            )
        ],
        tier_states=[
            TierStateExport(
                program_id=row.program_id,
                earned=row.earned,
                since=row.since,
                review_at=row.review_at,
                manual=row.manual,
                manual_until=row.manual_until,
            )
            for row in await rows(
                select(tier_states)
                .where(tier_states.c.account_id.in_(ids))
                .order_by(tier_states.c.program_id)
            )
        ],
        tier_changes=[
            TierChangeExport(
                program_id=program_of[row.account_id],
                before=row.before,
                after=row.after,
                reason=row.reason,
                at=row.at,
                qualifying_total=row.qualifying_total,
            )
            for row in await rows(
                select(tier_changes)
                .where(tier_changes.c.account_id.in_(ids))
                .order_by(tier_changes.c.id)
            )
        ],
        qualifying_activity=[
            QualifyingActivityExport(
                program_id=program_of[row.account_id],
                occurred_at=row.occurred_at,
                points=row.points,
                spend=row.spend,
                order_id=row.order_id,
                return_id=row.return_id,
            )
            for row in await rows(
                select(qualifying_activity)
                .where(qualifying_activity.c.account_id.in_(ids))
                .order_by(qualifying_activity.c.id)
            )
        ],
        promotion_awards=[
            PromotionAwardExport(
                program_id=row.program_id,
                promotion_code=row.promotion_code,
                order_id=row.order_id,
                points=row.points,
            )
            for row in await rows(
                select(promotion_awards)
                .where(promotion_awards.c.account_id.in_(ids))
                .order_by(promotion_awards.c.id)
            )
        ],
        sessions=[
            SessionExport(
                program_id=row.program_id,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )
            for row in await rows(
                select(member_sessions)
                .where(member_sessions.c.member_id == member_id)
                .order_by(member_sessions.c.created_at)
            )
        ],
        sign_in_codes=[
            SignInCodeExport(
                program_id=row.program_id,
                purpose=row.purpose,
                created_at=row.created_at,
                expires_at=row.expires_at,
                used_at=row.used_at,
                failed_attempts=row.failed_attempts,
            )
            for row in await rows(
                select(sign_in_codes)
                .where(sign_in_codes.c.member_id == member_id)
                .order_by(sign_in_codes.c.id)
            )
        ],
        mail=[
            MailExport(
                mail_id=row.id,
                kind=row.kind,
                subject=_CODE_IN_TEXT.sub(CODE_BLANKED, row.subject),
                created_at=row.created_at,
                sent_at=row.sent_at,
            )
            for row in mail_rows
        ],
        wallet_code_uses=[
            WalletCodeUseExport(step=row.step, used_at=row.used_at, reference=row.reference)
            for row in await rows(
                select(rotating_code_uses)
                .where(rotating_code_uses.c.member_id == member_id)
                .order_by(rotating_code_uses.c.step)
            )
        ],
        invite_codes=[
            InviteCodeExport(program_id=row.program_id, code=row.code, created_at=row.created_at)
            for row in await rows(
                select(invite_codes)
                .where(invite_codes.c.member_id == member_id)
                .order_by(invite_codes.c.program_id)
            )
        ],
        referrals=[
            ReferralExport(
                program_id=row.program_id,
                role="inviter" if row.inviter_member_id == member_id else "invitee",
                created_at=row.created_at,
                converted_at=row.converted_at,
                refused=row.refused,
            )
            for row in await rows(
                select(referrals)
                .where(
                    or_(
                        referrals.c.inviter_member_id == member_id,
                        referrals.c.invitee_member_id == member_id,
                    )
                )
                .order_by(referrals.c.id)
            )
        ],
        feedback=[
            FeedbackExport(
                program_id=row.program_id,
                score=row.score,
                comment=row.comment,
                created_at=row.created_at,
            )
            for row in await rows(
                select(feedback_answers)
                .where(feedback_answers.c.member_id == member_id)
                .order_by(feedback_answers.c.id)
            )
        ],
        wallet_passes=[
            WalletPassExport(
                program_id=row.program_id,
                serial=row.serial,
                created_at=row.created_at,
                updated_at=row.updated_at,
                devices=int(row.devices),
            )
            for row in pass_rows
        ],
    )


def _journal(row: Any, program_of: dict[int, int]) -> JournalExport:
    # As a transfer's receiver the member saw the opposite of what the sender did.
    as_receiver = row.account_id not in program_of
    return JournalExport(
        journal_id=row.id,
        program_id=row.program_id,
        kind=row.kind,
        points=row.points,
        delta=-row.delta if as_receiver else row.delta,
        held_delta=0 if as_receiver else row.held_delta,
        effective_at=row.effective_at,
        created_at=row.created_at,
        reverses_journal_id=row.reverses_id,
        hold_id=row.hold_id,
        reference=row.reference,
        reason=row.reason,
    )


def _order(row: Any) -> OrderExport:
    basket = row.basket if isinstance(row.basket, dict) else {}
    lines = [line for line in basket.get("lines") or () if isinstance(line, dict)]
    return OrderExport(
        order_id=row.id,
        program_id=row.program_id,
        reference=row.reference,
        occurred_at=row.occurred_at,
        currency=basket.get("currency"),
        location=basket.get("location"),
        tier=row.tier,
        points=row.points,
        qualifying_spend=row.qualifying_spend,
        journal_id=row.journal_id,
        created_at=row.created_at,
        quote=row.quote,
        context=row.context,
        lines=[
            OrderLineExport(
                order_id=row.id,
                line_id=str(line.get("line_id", "")),
                sku=str(line.get("sku", "")),
                quantity=int(line.get("quantity", 0)),
                unit_price=int(line.get("unit_price", 0)),
                line_discount=int(line.get("line_discount", 0)),
                category=line.get("category"),
                kind=str(line.get("kind", "merchandise")),
            )
            for line in lines
        ],
    )


# --- CSV -------------------------------------------------------------------------------------

#: (file name, section of ``MemberExport``, the section's row type), in archive order.
CSV_SECTIONS: tuple[tuple[str, str, type[Struct]], ...] = (
    ("accounts.csv", "accounts", AccountExport),
    ("lots.csv", "lots", LotExport),
    ("holds.csv", "holds", HoldExport),
    ("journals.csv", "journals", JournalExport),
    ("entries.csv", "entries", EntryExport),
    ("orders.csv", "orders", OrderExport),
    ("returns.csv", "returns", ReturnExport),
    ("redemptions.csv", "redemptions", RedemptionExport),
    ("pos_transactions.csv", "pos_transactions", PosTransactionExport),
    ("consents.csv", "consents", ConsentExport),
    ("tier_states.csv", "tier_states", TierStateExport),
    ("tier_changes.csv", "tier_changes", TierChangeExport),
    ("qualifying_activity.csv", "qualifying_activity", QualifyingActivityExport),
    ("promotion_awards.csv", "promotion_awards", PromotionAwardExport),
    ("sessions.csv", "sessions", SessionExport),
    ("sign_in_codes.csv", "sign_in_codes", SignInCodeExport),
    ("mail.csv", "mail", MailExport),
    ("wallet_code_uses.csv", "wallet_code_uses", WalletCodeUseExport),
    ("invite_codes.csv", "invite_codes", InviteCodeExport),
    ("referrals.csv", "referrals", ReferralExport),
    ("feedback.csv", "feedback", FeedbackExport),
    ("wallet_passes.csv", "wallet_passes", WalletPassExport),
)
#: Order lines get a file of their own (``orders.csv`` leaves them out).
_NESTED = {"lines"}


def csv_archive(export: MemberExport) -> bytes:
    """``export`` as a ZIP of CSV files: ``member.csv`` (the profile and segments, one row),
    one file per section, and ``order_lines.csv``."""
    buffer = io.BytesIO()
    stamp = export.generated_at.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _csv(columns, rows))

        profile = msgspec.to_builtins(export.profile)
        add(
            "member.csv",
            [*MemberProfile.__struct_fields__, "segments", "merchant_id", "generated_at"],
            [
                {
                    **profile,
                    "segments": export.segments,
                    "merchant_id": export.merchant_id,
                    "generated_at": msgspec.to_builtins(export.generated_at),
                }
            ],
        )
        for name, section, kind in CSV_SECTIONS:
            columns = [f for f in kind.__struct_fields__ if f not in _NESTED]
            add(name, columns, msgspec.to_builtins(getattr(export, section)))
        add(
            "order_lines.csv",
            list(OrderLineExport.__struct_fields__),
            msgspec.to_builtins([line for order in export.orders for line in order.lines]),
        )
    return buffer.getvalue()


def _csv(columns: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return text.getvalue().encode("utf-8-sig")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


# --- erasure ---------------------------------------------------------------------------------


async def _erase(conn: AsyncConnection, member_id: int, merchant_id: int, at: datetime) -> Erased:
    member = (
        await conn.execute(
            select(members.c.id, members.c.email, members.c.deleted_at)
            .where(members.c.id == member_id, members.c.merchant_id == merchant_id)
            .with_for_update()
        )
    ).first()
    if member is None:
        raise _member_not_found(member_id)
    if member.deleted_at is not None:
        return await _erased_before(conn, member_id, merchant_id, member.deleted_at)

    caller = Caller(client_id="system:erasure", merchant_id=merchant_id)
    account_ids = list(
        (
            await conn.scalars(
                select(accounts.c.id)
                .where(accounts.c.member_id == member_id)
                .order_by(accounts.c.id)
            )
        ).all()
    )
    # Locks in the order every reward write takes them: the rewards of pending redemptions,
    # those redemptions, then the accounts (in id order).
    pending = (
        await conn.execute(
            select(reward_redemptions.c.id, reward_redemptions.c.reward_id).where(
                reward_redemptions.c.account_id.in_(account_ids),
                reward_redemptions.c.status == "pending",
            )
        )
    ).all()
    reward_ids = sorted({row.reward_id for row in pending})
    if reward_ids:
        await conn.execute(
            select(rewards.c.id)
            .where(rewards.c.id.in_(reward_ids))
            .order_by(rewards.c.id)
            .with_for_update()
        )
        await conn.execute(
            select(reward_redemptions.c.id)
            .where(reward_redemptions.c.id.in_([row.id for row in pending]))
            .order_by(reward_redemptions.c.id)
            .with_for_update()
        )
    forfeited = 0
    released = 0
    for account in (await w.lock_accounts(conn, account_ids)).values():
        gave_back = await _release_holds(conn, caller, account, at)
        taken = await _forfeit(conn, caller, account, at)
        if gave_back or taken:
            await w.save_account(conn, account)
        released += gave_back
        forfeited += taken
    if reward_ids:
        # Redemptions whose hold is now released end released, their unit back in stock (a
        # till voiding the sale later finds nothing pending).
        await reconcile_redemptions(conn, at, reward_redemptions.c.account_id.in_(account_ids))

    await conn.execute(
        update(members)
        .where(members.c.id == member_id)
        .values(
            display_name=ERASED_NAME,
            email=None,
            phone=None,
            locale=None,
            card_number=None,
            segments=null(),
            email_verified_at=None,
            card_secret_version=members.c.card_secret_version + 1,
            deleted_at=at,
        )
    )
    # Sessions, sign-in codes, the invitation link and wallet passes (devices stop receiving
    # pass updates) end as on a merge's source.
    ended = await end_access(conn, member_id, at)
    mails_deleted = 0
    if member.email is not None:
        mails = await conn.execute(
            mail_outbox.delete().where(
                mail_outbox.c.merchant_id == merchant_id,
                func.lower(mail_outbox.c.to_address) == member.email.lower(),
            )
        )
        mails_deleted = int(mails.rowcount or 0)
    await conn.execute(
        rotating_code_uses.delete().where(rotating_code_uses.c.member_id == member_id)
    )
    # What the member wrote to the program goes (the score stays in the program's Net
    # Promoter figure).
    await conn.execute(
        update(feedback_answers)
        .where(feedback_answers.c.member_id == member_id, feedback_answers.c.comment.is_not(None))
        .values(comment=None)
    )
    erased = Erased(
        member_id=member_id,
        erased_at=at,
        points_forfeited=forfeited,
        holds_released=released,
        sessions_ended=ended["sessions_ended"],
        sign_in_codes_burned=ended["sign_in_codes_burned"],
        mails_deleted=mails_deleted,
    )
    await record_entry(
        conn,
        merchant_id,
        None,
        action=ERASE_ACTION,
        entity="member",
        entity_id=member_id,
        at=at,
        after=erased,
    )
    return erased


async def _release_holds(
    conn: AsyncConnection, caller: Caller, account: w.Account, at: datetime
) -> int:
    """Give back every pending hold of the account: those whose time is up as the ledger
    always does, the rest released (the sale they were for cannot finish for this member)."""
    count = len(await w.settle_stale_holds(conn, caller, account, at))
    pending = (
        await conn.execute(
            select(holds.c.id, holds.c.points)
            .where(holds.c.account_id == account.id, holds.c.status == HoldStatus.PENDING)
            .order_by(holds.c.id)
        )
    ).all()
    for row in pending:
        await w.resolve_hold(conn, caller, account, row.id, row.points, (), HoldStatus.RELEASED, at)
    return count + len(pending)


async def _forfeit(conn: AsyncConnection, caller: Caller, account: w.Account, at: datetime) -> int:
    """Move every free point of the account to the program's breakage account, as the expiry
    sweep does with due lots: one ``expire`` journal, a draw per lot."""
    draws = [Draw(lot.id, lot.free) for lot in await w.free_lots(conn, account.id)]
    points = sum(draw.points for draw in draws)
    if not points:
        return 0
    expired = (await w.system_accounts(conn, account.program_id))["expired"]
    journal_id = await w.insert_journal(
        conn,
        caller,
        account,
        JournalKind.EXPIRE,
        points=points,
        delta=-points,
        at=at,
        reason=ERASURE_REASON,
    )
    await w.insert_entries(conn, journal_id, [(account.id, -points), (expired, points)])
    await w.change_lots(conn, journal_id, taken=draws, record=draws)
    account.posted -= points
    return points


async def _erased_before(
    conn: AsyncConnection, member_id: int, merchant_id: int, deleted_at: datetime
) -> Erased:
    """The answer of the erasure that was done: its audit entry records it."""
    recorded = await conn.scalar(
        select(audit_log.c.after)
        .where(
            audit_log.c.merchant_id == merchant_id,
            audit_log.c.action == ERASE_ACTION,
            audit_log.c.entity == "member",
            audit_log.c.entity_id == str(member_id),
        )
        .order_by(audit_log.c.id)
        .limit(1)
    )
    if recorded is not None:
        return msgspec.convert(recorded, Erased)
    return Erased(
        member_id=member_id,
        erased_at=deleted_at,
        points_forfeited=0,
        holds_released=0,
        sessions_ended=0,
        sign_in_codes_burned=0,
        mails_deleted=0,
    )
