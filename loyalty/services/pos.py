"""The till's operations: identify, preview, redeem, complete, refund, void.

Every write is idempotent under the merchant's POS client: complete is keyed by the POS
transaction id, a refund by its refund id, void by the transaction id, a redemption by the
transaction id and the till's Idempotency-Key. Success is stored and replayed; a refusal of a
write keyed by the POS's own ids is not stored, because the till cannot pick another id to
send the corrected request (another member scanned, a fresh wallet code).

Complete earns on the order and captures the transaction's held redemptions in one database
transaction. A redemption needs the server and a rotating wallet code (each code redeems once
per member and 30-second step), or stays within the program's cap when the member was
identified by card number, phone or email.

Refunds: earned points come back out as the order is re-priced without the refunded units (see
``Orders.return_within``); redeemed points go back to the member by the program's policy
(``redeemed_on_refund``: 'return' in proportion to the refunded value, all of them once every
unit is refunded; 'keep': never). A void reverses everything, whatever the policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Struct
from sqlalchemy import ColumnElement, String, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import (
    accounts,
    journals,
    members,
    order_returns,
    orders,
    pos_transactions,
    programs,
    reward_redemptions,
)
from loyalty.domain.basket import Basket
from loyalty.domain.cards import TOTP_STEP, ScanKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import HoldStatus, JournalKind
from loyalty.domain.rewards import value

from .idempotency import MAX_KEY_LENGTH, Replayable, fingerprint
from .ledger import Ledger
from .lookups import undone_so_far
from .member_cards import Identified, identify, use_rotating_step
from .orders import OrderResult, Orders, TierMove
from .quotes import BasketDocument, QuoteView
from .results import Balance
from .rewards import AvailableReward, Rewards
from .rule_documents import LocalizedText
from .terminals import Terminal

#: How long after it was shown a wallet code still identifies its member for earning: a till
#: scans it at the start of a sale and completes at payment (Toast accrues after payment, later
#: still after an outage). Earning trusts the code no more than the printed card number, which
#: earns at any time; redemptions take only the code of the moment (+-1 step).
EARN_CODE_LOOKBACK_STEPS = int(timedelta(hours=4) / TOTP_STEP)


class TierBadge(Struct, frozen=True):
    code: str
    name: LocalizedText


class MemberAtTill(Struct, frozen=True, kw_only=True):
    """What the cashier sees after a scan: no personal data beyond the display name."""

    member_id: int
    display_name: str
    identified_by: str
    tier: TierBadge | None
    balance: Balance
    rewards: list[AvailableReward]


class RewardOnBasket(Struct, frozen=True, kw_only=True):
    reward_code: str
    name: LocalizedText
    kind: str
    usable: bool
    #: Points it costs (points-as-money: the smallest choice).
    points: int
    #: What it takes off this basket, in minor units (points-as-money: for ``points``).
    discount: int
    refusal: str | None = None


class Preview(Struct, frozen=True, kw_only=True):
    member: MemberAtTill
    quote: QuoteView
    rewards: list[RewardOnBasket]


class TillRedemption(Struct, frozen=True, kw_only=True):
    transaction_id: str
    redemption_id: int
    reward_code: str
    points: int
    discount: int
    hold_expires_at: datetime | None
    balance: Balance


class RedeemedReward(Struct, frozen=True):
    reward_code: str
    points: int
    discount: int


class Completed(Struct, frozen=True, kw_only=True):
    transaction_id: str
    status: str
    member_id: int
    points_earned: int
    quote: QuoteView
    redeemed: list[RedeemedReward]
    balance: Balance
    tier: str | None
    tier_changes: list[TierMove]


class Refunded(Struct, frozen=True, kw_only=True):
    transaction_id: str
    refund_id: str
    #: Earned points taken back (as far as the member still had them).
    points_reversed: int
    #: Redeemed points given back to the member.
    points_returned: int
    balance: Balance


class Voided(Struct, frozen=True, kw_only=True):
    transaction_id: str
    status: str
    points_reversed: int
    points_returned: int
    holds_released: int
    balance: Balance


class Released(Struct, frozen=True, kw_only=True):
    transaction_id: str
    holds_released: int
    balance: Balance


class TransactionLine(Struct, frozen=True):
    line_id: str
    sku: str
    quantity: int
    unit_price: int


class TransactionView(Struct, frozen=True, kw_only=True):
    transaction_id: str
    status: str
    member_id: int
    display_name: str
    identified_by: str
    offline: bool
    currency: str | None
    total: int | None
    points_earned: int
    points_returned_by_refunds: int
    points_redeemed: int
    occurred_at: datetime | None
    created_at: datetime
    lines: list[TransactionLine]


class TransactionList(Struct, frozen=True):
    day: str
    location: str
    transactions: list[TransactionView]


class PointOfSale:
    def __init__(
        self,
        ledger: Ledger,
        orders: Orders,
        rewards_service: Rewards,
        server_key: bytes,
    ) -> None:
        self._ledger = ledger
        self._orders = orders
        self._rewards = rewards_service
        self._key = server_key

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._ledger.clock

    # --- reads ---------------------------------------------------------------------------------

    async def identify(self, till: Terminal, scan: str) -> MemberAtTill:
        member, _ = await self.identify_with_card(till, scan)
        return member

    async def identify_with_card(
        self, till: Terminal, scan: str
    ) -> tuple[MemberAtTill, str | None]:
        """The member and their static card number: the account id a vendor that keeps one on
        its check (Toast) is given. Not in what a till sees: a member identified by their
        wallet code keeps the number to themselves."""
        now = self.clock()

        async def work(conn: AsyncConnection) -> tuple[MemberAtTill, str | None]:
            member, who = await self._member_at_till(conn, till, scan, now)
            return member, who.card_number

        return await in_transaction(self._ledger.engine, work, read_only=True)

    async def preview(self, till: Terminal, scan: str, basket: BasketDocument) -> Preview:
        now = self.clock()
        priced = basket.basket()

        async def work(conn: AsyncConnection) -> Preview:
            member, who = await self._member_at_till(conn, till, scan, now)
            quote = await self._orders.quote_within(
                conn,
                now,
                till.caller,
                program_id=till.program_id,
                member_id=member.member_id,
                basket=basket,
                segments=who.segments,
            )
            return Preview(
                member=member,
                quote=quote,
                rewards=[_on_basket(offer, priced) for offer in member.rewards],
            )

        return await in_transaction(self._ledger.engine, work, read_only=True)

    async def _member_at_till(
        self, conn: AsyncConnection, till: Terminal, scan: str, now: datetime
    ) -> tuple[MemberAtTill, Identified]:
        who = await identify(conn, till.caller, scan, now, self._key)
        usable = await self._rewards.available_within(
            conn, now, till.caller, till.program_id, who.member_id
        )
        tier = None
        if usable.tier is not None and usable.tier_name is not None:
            tier = TierBadge(usable.tier, usable.tier_name)
        return MemberAtTill(
            member_id=who.member_id,
            display_name=who.display_name,
            identified_by=str(who.kind),
            tier=tier,
            balance=await _member_balance(
                conn,
                accounts.c.program_id == till.program_id,
                accounts.c.member_id == who.member_id,
            ),
            rewards=usable.rewards,
        ), who

    async def transaction(self, till: Terminal, transaction_id: str) -> TransactionView:
        async def work(conn: AsyncConnection) -> TransactionView:
            rows = await _transaction_views(
                conn, till, pos_transactions.c.transaction_id == transaction_id
            )
            if not rows:
                raise _not_found(transaction_id)
            return rows[0]

        return await in_transaction(self._ledger.engine, work, read_only=True)

    async def transactions(self, till: Terminal, day: str | None = None) -> TransactionList:
        """The transactions of the till's location on ``day`` (YYYY-MM-DD in the program's time
        zone; default today), newest first."""

        async def work(conn: AsyncConnection) -> TransactionList:
            zone = ZoneInfo(
                str(
                    await conn.scalar(
                        select(programs.c.timezone).where(programs.c.id == till.program_id)
                    )
                )
            )
            if day is None:
                start_local = self.clock().astimezone(zone).date()
            else:
                try:
                    start_local = date.fromisoformat(day)
                except ValueError:
                    raise DomainError(
                        ErrorCode.VALIDATION_FAILED, "day is YYYY-MM-DD", day=day
                    ) from None
            start = datetime(
                start_local.year, start_local.month, start_local.day, tzinfo=zone
            ).astimezone(UTC)
            end = (start.astimezone(zone) + timedelta(days=1)).replace(hour=0).astimezone(UTC)
            views = await _transaction_views(
                conn,
                till,
                pos_transactions.c.location == till.location,
                pos_transactions.c.created_at >= start,
                pos_transactions.c.created_at < end,
            )
            return TransactionList(
                day=start_local.isoformat(), location=till.location, transactions=views
            )

        return await in_transaction(self._ledger.engine, work, read_only=True)

    # --- writes --------------------------------------------------------------------------------

    async def redeem(
        self,
        till: Terminal,
        key: str,
        *,
        transaction_id: str,
        scan: str,
        reward_code: str,
        points: int | None,
        basket: BasketDocument | None,
        captured_offline: bool = False,
    ) -> Replayable[TillRedemption]:
        if captured_offline:
            raise DomainError(
                ErrorCode.OFFLINE_REDEMPTION_REFUSED,
                "a redemption needs the server at the time of sale: it cannot be sent later",
            )
        priced = None if basket is None else basket.basket()

        async def work(conn: AsyncConnection) -> TillRedemption:
            now = self.clock()
            who = await identify(conn, till.caller, scan, now, self._key)
            result = await self._rewards.redeem_within(
                conn,
                now,
                till.caller,
                program_id=till.program_id,
                member_id=who.member_id,
                reward_code=reward_code,
                mode="hold",
                points=points,
                basket=priced,
                reference=_reference(transaction_id),
            )
            await _claim_transaction(conn, till, transaction_id, who, now)
            if who.kind is ScanKind.ROTATING_CODE:
                assert who.step is not None
                await use_rotating_step(
                    conn, who.member_id, who.step, now, _reference(transaction_id)
                )
            else:
                cap = int(
                    await conn.scalar(
                        select(programs.c.static_redeem_cap).where(programs.c.id == till.program_id)
                    )
                    or 0
                )
                held = await _pending_points(conn, till.program_id, transaction_id)
                if held > cap:
                    raise DomainError(
                        ErrorCode.SECOND_FACTOR_REQUIRED,
                        f"identified by {who.kind}, a member may redeem up to {cap} points per "
                        "sale; scan the wallet's rotating code to redeem more",
                        cap=cap,
                        requested=held,
                    )
            return TillRedemption(
                transaction_id=transaction_id,
                redemption_id=result.redemption_id,
                reward_code=result.reward_code,
                points=result.points,
                discount=result.discount,
                hold_expires_at=result.hold_expires_at,
                balance=result.balance,
            )

        body = (till.program_id, transaction_id, scan, reward_code, points, basket)
        return await self._ledger.executor.run(
            client_id=till.caller.client_id,
            key=_operation_key("redeem", transaction_id, key),
            request_hash=fingerprint("pos.redeem", *body),
            result_type=TillRedemption,
            work=work,
        )

    async def complete(
        self,
        till: Terminal,
        *,
        transaction_id: str,
        scan: str,
        basket: BasketDocument,
        occurred_at: datetime,
        captured_offline: bool,
        total: int | None,
    ) -> Replayable[Completed]:
        async def work(conn: AsyncConnection) -> Completed:
            now = self.clock()
            # The code was shown when the sale happened; sent later, it is checked for then.
            # A code scanned at the start of the sale still earns when payment comes later.
            who = await identify(
                conn,
                till.caller,
                scan,
                occurred_at if captured_offline else now,
                self._key,
                lookback_steps=EARN_CODE_LOOKBACK_STEPS,
            )
            order: OrderResult = await self._orders.record_within(
                conn,
                now,
                till.caller,
                program_id=till.program_id,
                member_id=who.member_id,
                reference=transaction_id,
                basket=basket,
                occurred_at=occurred_at,
                segments=who.segments,
            )
            balance = order.balance
            redeemed = []
            completed = {
                "status": "completed",
                "order_id": order.order_id,
                "currency": basket.currency,
                "total": total,
                "occurred_at": occurred_at,
                "offline": captured_offline,
            }
            # Most sales are new here. One opened before had rewards redeemed on it at the
            # till: those are captured with the sale.
            if not await _new_sale(conn, till, transaction_id, who, now, **completed):
                sale = await _lock_sale(conn, till, transaction_id)
                for pending in await _pending_redemptions(conn, till, transaction_id):
                    captured = await self._rewards.finish_within(
                        conn, now, till.caller, till.program_id, pending.id, HoldStatus.CAPTURED
                    )
                    balance = captured.balance
                    redeemed.append(
                        RedeemedReward(captured.reward_code, captured.points, captured.discount)
                    )
                await _save_sale(conn, till, transaction_id, who, now, sale, **completed)
            return Completed(
                transaction_id=transaction_id,
                status="completed",
                member_id=who.member_id,
                points_earned=order.points,
                quote=order.quote,
                redeemed=redeemed,
                balance=balance,
                tier=order.tier,
                tier_changes=order.tier_changes,
            )

        body = (till.program_id, transaction_id, scan, basket, occurred_at, captured_offline, total)
        return await self._ledger.executor.run(
            client_id=till.caller.client_id,
            key=_operation_key("complete", transaction_id),
            request_hash=fingerprint("pos.complete", *body),
            result_type=Completed,
            work=work,
            remember_refusals=False,
        )

    async def refund(
        self,
        till: Terminal,
        *,
        transaction_id: str,
        refund_id: str,
        quantities: dict[str, int],
    ) -> Replayable[Refunded]:
        """Refund units of a completed sale (none named: everything not yet refunded)."""

        async def work(conn: AsyncConnection) -> Refunded:
            now = self.clock()
            tx = await _completed_transaction(conn, till, transaction_id)
            reversed_points, balance = await self._return_units(
                conn, now, till, tx, quantities, refund_id
            )
            returned = 0
            if tx.redeemed_on_refund == "return":
                returned, returned_balance = await self._return_redeemed(
                    conn, now, till, tx, "order refunded"
                )
                balance = returned_balance or balance
            if balance is None:
                balance = await _member_balance(conn, accounts.c.id == tx.account_id)
            return Refunded(
                transaction_id=transaction_id,
                refund_id=refund_id,
                points_reversed=reversed_points,
                points_returned=returned,
                balance=balance,
            )

        body = (till.program_id, transaction_id, refund_id, sorted(quantities.items()))
        return await self._ledger.executor.run(
            client_id=till.caller.client_id,
            key=_operation_key("refund", transaction_id, refund_id),
            request_hash=fingerprint("pos.refund", *body),
            result_type=Refunded,
            work=work,
            remember_refusals=False,
        )

    async def void(self, till: Terminal, *, transaction_id: str) -> Replayable[Voided]:
        """Cancel a sale: an open one gives its holds back; a completed one is reversed whole
        (earned points out, redeemed points back, whatever the refund policy)."""

        async def work(conn: AsyncConnection) -> Voided:
            now = self.clock()
            tx = await _transaction_row(conn, till, transaction_id, lock=True)
            if tx.status == "voided":
                raise DomainError(
                    ErrorCode.TRANSACTION_NOT_OPEN, "the sale is already voided", status="voided"
                )
            released = 0
            reversed_points = returned = 0
            balance: Balance | None = None
            for pending in await _pending_redemptions(conn, till, transaction_id):
                result = await self._rewards.finish_within(
                    conn, now, till.caller, till.program_id, pending.id, HoldStatus.RELEASED
                )
                released += 1
                balance = result.balance
            if tx.status == "completed":
                reversed_points, reversed_balance = await self._return_units(
                    conn, now, till, tx, {}, f"void:{transaction_id}", required=False
                )
                returned, returned_balance = await self._return_redeemed(
                    conn, now, till, tx, "sale voided", everything=True
                )
                balance = returned_balance or reversed_balance or balance
            await conn.execute(
                update(pos_transactions)
                .where(pos_transactions.c.id == tx.id)
                .values(status="voided", updated_at=now)
            )
            return Voided(
                transaction_id=transaction_id,
                status="voided",
                points_reversed=reversed_points,
                points_returned=returned,
                holds_released=released,
                balance=balance or await _member_balance(conn, accounts.c.id == tx.account_id),
            )

        return await self._ledger.executor.run(
            client_id=till.caller.client_id,
            key=_operation_key("void", transaction_id),
            request_hash=fingerprint("pos.void", till.program_id, transaction_id),
            result_type=Voided,
            work=work,
            remember_refusals=False,
        )

    async def release(
        self, till: Terminal, key: str, *, transaction_id: str, redemption_ids: list[int]
    ) -> Replayable[Released]:
        """Give back the holds of some redemptions of an open sale (a vendor reversing one
        redemption step). Already released, or the sale voided since: nothing to do. Captured
        by a completed sale: ``not_reversible`` (refund or void the sale instead)."""

        async def work(conn: AsyncConnection) -> Released:
            now = self.clock()
            tx = await _transaction_row(conn, till, transaction_id, lock=True)
            rows = (
                await conn.execute(
                    select(reward_redemptions.c.id, reward_redemptions.c.status).where(
                        reward_redemptions.c.program_id == till.program_id,
                        reward_redemptions.c.reference == _reference(transaction_id),
                        reward_redemptions.c.id.in_(redemption_ids),
                    )
                )
            ).all()
            if tx.status == "completed" and any(row.status == "completed" for row in rows):
                raise DomainError(
                    ErrorCode.NOT_REVERSIBLE,
                    "the sale is completed and these redemptions are captured: refund or void it",
                    transaction_id=transaction_id,
                )
            released = 0
            for row in rows:
                if row.status == "pending":
                    await self._rewards.finish_within(
                        conn, now, till.caller, till.program_id, row.id, HoldStatus.RELEASED
                    )
                    released += 1
            return Released(
                transaction_id=transaction_id,
                holds_released=released,
                balance=await _member_balance(conn, accounts.c.id == tx.account_id),
            )

        return await self._ledger.executor.run(
            client_id=till.caller.client_id,
            key=_operation_key("release", transaction_id, key),
            request_hash=fingerprint(
                "pos.release", till.program_id, transaction_id, sorted(redemption_ids)
            ),
            result_type=Released,
            work=work,
            remember_refusals=False,
        )

    # --- helpers -------------------------------------------------------------------------------

    async def _return_units(
        self,
        conn: AsyncConnection,
        now: datetime,
        till: Terminal,
        tx: Any,
        quantities: dict[str, int],
        refund_id: str,
        *,
        required: bool = True,
    ) -> tuple[int, Balance | None]:
        left = await _units_left(conn, tx.order_id)
        if not quantities:
            quantities = {line: units for line, units in left.items() if units > 0}
            if not quantities:
                if required:
                    raise DomainError(
                        ErrorCode.RETURN_EXCEEDS_ORDER, "every unit of this sale is refunded"
                    )
                return 0, None
        result = await self._orders.return_within(
            conn,
            now,
            till.caller,
            program_id=till.program_id,
            reference=tx.transaction_id,
            quantities=quantities,
            return_reference=refund_id,
        )
        return result.points_clawed_back, result.balance

    async def _return_redeemed(
        self,
        conn: AsyncConnection,
        now: datetime,
        till: Terminal,
        tx: Any,
        reason: str,
        *,
        everything: bool = False,
    ) -> tuple[int, Balance | None]:
        """Give back the share of the sale's redeemed points that matches the share of its
        value refunded so far (all once nothing is left); returns what this call gave back."""
        captures = await _capture_journals(conn, till.program_id, tx.transaction_id)
        if not captures:
            return 0, None
        share_num, share_den = (1, 1) if everything else await _refunded_share(conn, tx.order_id)
        given = 0
        balance = None
        for journal_id, points in captures:
            refunded, was_reversed = await undone_so_far(conn, journal_id)
            if was_reversed:
                continue
            due = points * share_num // share_den - refunded
            if due <= 0:
                continue
            result = await self._ledger.undo_within(
                conn, now, till.caller, till.program_id, journal_id, due, reason
            )
            given += result.delta
            balance = result.balance
        return given, balance


def _on_basket(offer: AvailableReward, basket: Basket) -> RewardOnBasket:
    """What a reward would take off this basket (at its cheapest price), or why not."""
    definition = offer.reward.definition
    refusal = offer.refusal
    discount = 0
    try:
        discount = value(definition.reward(), basket, offer.points_from or None).discount
    except DomainError as error:
        refusal = refusal or str(error.code)
    return RewardOnBasket(
        reward_code=offer.reward.code,
        name=definition.name,
        kind=str(definition.kind),
        usable=refusal is None,
        points=offer.points_from,
        discount=discount,
        refusal=refusal,
    )


def _operation_key(operation: str, *ids: str) -> str:
    """The idempotency key of an operation on a sale. The ids may be 128 characters each, more
    than a key holds together: a long combination is keyed by its digest instead."""
    key = ":".join((operation, *ids))
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{operation}#{hashlib.sha256(key.encode()).hexdigest()}"


def _reference(transaction_id: str) -> str:
    return f"pos:{transaction_id}"


def _not_found(transaction_id: str) -> DomainError:
    return DomainError(
        ErrorCode.TRANSACTION_NOT_FOUND,
        "no sale with this transaction id at this merchant",
        transaction_id=transaction_id,
    )


async def _member_balance(conn: AsyncConnection, *account: ColumnElement[bool]) -> Balance:
    row = (await conn.execute(select(accounts.c.posted, accounts.c.held).where(*account))).one()
    return Balance(posted=row.posted, held=row.held, available=row.posted - row.held)


async def _claim_transaction(
    conn: AsyncConnection,
    till: Terminal,
    transaction_id: str,
    who: Identified,
    now: datetime,
    **changes: Any,
) -> None:
    """Make or update the sale's row (on its first redemption, or at completion with
    ``changes``). The caller has locked the member's account already (a redemption or an order
    did), so a missing enrollment has been reported. An existing sale must still be open and
    belong to the same member."""
    sale = await _lock_sale(conn, till, transaction_id)
    await _save_sale(conn, till, transaction_id, who, now, sale, **changes)


# A sale's row is looked up and written at every completion: statements built once.
_SALE = (
    select(pos_transactions.c.id, pos_transactions.c.status, accounts.c.member_id)
    .join(accounts, accounts.c.id == pos_transactions.c.account_id)
    .where(
        pos_transactions.c.merchant_id == bindparam("merchant_id"),
        pos_transactions.c.transaction_id == bindparam("transaction_id"),
    )
    .with_for_update(of=pos_transactions)
)
_SALE_ACCOUNT = (
    select(accounts.c.id)
    .where(
        accounts.c.program_id == bindparam("account_program_id"),
        accounts.c.member_id == bindparam("account_member_id"),
    )
    .scalar_subquery()
)
_INSERT_SALE = pos_transactions.insert().values(account_id=_SALE_ACCOUNT)
#: Per dialect (each has its own ON CONFLICT construct): the sale's row unless it exists.
_NEW_SALE = {
    dialect: insert(pos_transactions)
    .values(account_id=_SALE_ACCOUNT)
    .on_conflict_do_nothing(index_elements=["merchant_id", "transaction_id"])
    .returning(pos_transactions.c.id)
    for dialect, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


def _sale_row(
    till: Terminal, transaction_id: str, who: Identified, now: datetime, changes: dict[str, Any]
) -> dict[str, Any]:
    return {
        "merchant_id": till.merchant_id,
        "program_id": till.program_id,
        "terminal_id": till.terminal_id,
        "location": till.location,
        "transaction_id": transaction_id,
        "account_program_id": till.program_id,
        "account_member_id": who.member_id,
        "identified_by": str(who.kind),
        "created_at": now,
        "updated_at": now,
        "status": "open",
        **changes,
    }


async def _new_sale(
    conn: AsyncConnection,
    till: Terminal,
    transaction_id: str,
    who: Identified,
    now: datetime,
    **changes: Any,
) -> bool:
    """Write the sale's row if it has none yet (one round trip); False: it exists already."""
    row = _sale_row(till, transaction_id, who, now, changes)
    return await conn.scalar(_NEW_SALE[conn.dialect.name], row) is not None


async def _lock_sale(conn: AsyncConnection, till: Terminal, transaction_id: str) -> Any | None:
    found = await conn.execute(
        _SALE, {"merchant_id": till.merchant_id, "transaction_id": transaction_id}
    )
    return found.first()


async def _save_sale(
    conn: AsyncConnection,
    till: Terminal,
    transaction_id: str,
    who: Identified,
    now: datetime,
    sale: Any | None,
    **changes: Any,
) -> None:
    """``_claim_transaction`` on the sale ``_lock_sale`` found (None: a new sale)."""
    if sale is None:
        await conn.execute(_INSERT_SALE, _sale_row(till, transaction_id, who, now, changes))
        return
    if sale.status != "open":
        raise DomainError(
            ErrorCode.TRANSACTION_NOT_OPEN,
            f"the sale is already {sale.status}",
            status=sale.status,
        )
    if sale.member_id != who.member_id:
        raise DomainError(
            ErrorCode.TRANSACTION_MEMBER_MISMATCH, "this sale was opened for another member"
        )
    if changes:
        await conn.execute(
            update(pos_transactions)
            .where(pos_transactions.c.id == sale.id)
            .values(updated_at=now, **changes)
        )


async def _transaction_row(
    conn: AsyncConnection, till: Terminal, transaction_id: str, *, lock: bool = False
) -> Any:
    query = (
        select(pos_transactions, programs.c.redeemed_on_refund)
        .join(programs, programs.c.id == pos_transactions.c.program_id)
        .where(
            pos_transactions.c.merchant_id == till.merchant_id,
            pos_transactions.c.program_id == till.program_id,
            pos_transactions.c.transaction_id == transaction_id,
        )
    )
    if lock:
        query = query.with_for_update(of=pos_transactions)
    row = (await conn.execute(query)).first()
    if row is None:
        raise _not_found(transaction_id)
    return row


async def _completed_transaction(conn: AsyncConnection, till: Terminal, transaction_id: str) -> Any:
    row = await _transaction_row(conn, till, transaction_id, lock=True)
    if row.status != "completed":
        raise DomainError(
            ErrorCode.TRANSACTION_NOT_OPEN,
            f"only a completed sale can be refunded; this one is {row.status}",
            status=row.status,
        )
    return row


_PENDING_REDEMPTIONS = (
    select(reward_redemptions.c.id)
    .where(
        reward_redemptions.c.program_id == bindparam("program_id"),
        reward_redemptions.c.reference == bindparam("reference"),
        reward_redemptions.c.status == "pending",
    )
    .order_by(reward_redemptions.c.id)
)


async def _pending_redemptions(
    conn: AsyncConnection, till: Terminal, transaction_id: str
) -> list[Any]:
    found = await conn.execute(
        _PENDING_REDEMPTIONS,
        {"program_id": till.program_id, "reference": _reference(transaction_id)},
    )
    return list(found.all())


async def _pending_points(conn: AsyncConnection, program_id: int, transaction_id: str) -> int:
    total = await conn.scalar(
        select(func.coalesce(func.sum(reward_redemptions.c.points), 0)).where(
            reward_redemptions.c.program_id == program_id,
            reward_redemptions.c.reference == _reference(transaction_id),
            reward_redemptions.c.status == "pending",
        )
    )
    return int(total or 0)


async def _capture_journals(
    conn: AsyncConnection, program_id: int, transaction_id: str
) -> list[tuple[int, int]]:
    rows = await conn.execute(
        select(reward_redemptions.c.journal_id, journals.c.points)
        .join(journals, journals.c.id == reward_redemptions.c.journal_id)
        .where(
            reward_redemptions.c.program_id == program_id,
            reward_redemptions.c.reference == _reference(transaction_id),
            reward_redemptions.c.status == "completed",
            journals.c.kind == JournalKind.CAPTURE,
        )
        .order_by(reward_redemptions.c.id)
    )
    return [(int(j), int(p)) for j, p in rows]


async def _order_lines(conn: AsyncConnection, order_id: int) -> list[Any]:
    basket = await conn.scalar(select(orders.c.basket).where(orders.c.id == order_id))
    return list(msgspec.convert(basket, BasketDocument).lines)


async def _returned_units(conn: AsyncConnection, order_id: int) -> dict[str, int]:
    returned: dict[str, int] = {}
    for (quantities,) in await conn.execute(
        select(order_returns.c.quantities).where(order_returns.c.order_id == order_id)
    ):
        for line_id, units in quantities.items():
            returned[line_id] = returned.get(line_id, 0) + int(units)
    return returned


async def _units_left(conn: AsyncConnection, order_id: int) -> dict[str, int]:
    returned = await _returned_units(conn, order_id)
    return {
        line.line_id: line.quantity - returned.get(line.line_id, 0)
        for line in await _order_lines(conn, order_id)
    }


async def _refunded_share(conn: AsyncConnection, order_id: int) -> tuple[int, int]:
    """The refunded part of the sale's value (after line discounts) as a fraction; exactly 1
    once every unit is refunded."""
    returned = await _returned_units(conn, order_id)
    lines = await _order_lines(conn, order_id)
    total = refunded = 0
    every_unit = True
    for line in lines:
        net = line.quantity * line.unit_price - line.line_discount
        total += net
        units = returned.get(line.line_id, 0)
        refunded += net * units // line.quantity
        every_unit = every_unit and units == line.quantity
    if every_unit or total <= 0:
        return (1, 1) if every_unit else (0, 1)
    return refunded, total


async def _transaction_views(
    conn: AsyncConnection, till: Terminal, *where: Any
) -> list[TransactionView]:
    earned = (
        select(func.coalesce(func.sum(order_returns.c.points), 0))
        .where(order_returns.c.order_id == pos_transactions.c.order_id)
        .scalar_subquery()
    )
    redeemed = (
        select(func.coalesce(func.sum(reward_redemptions.c.points), 0))
        .where(
            reward_redemptions.c.program_id == pos_transactions.c.program_id,
            reward_redemptions.c.reference
            == literal("pos:", String) + pos_transactions.c.transaction_id,
            reward_redemptions.c.status == "completed",
        )
        .scalar_subquery()
    )
    rows = (
        await conn.execute(
            select(
                pos_transactions,
                members.c.display_name,
                accounts.c.member_id,
                orders.c.points.label("points_earned"),
                orders.c.basket,
                earned.label("points_returned"),
                redeemed.label("points_redeemed"),
            )
            .join(accounts, accounts.c.id == pos_transactions.c.account_id)
            .join(members, members.c.id == accounts.c.member_id)
            .outerjoin(orders, orders.c.id == pos_transactions.c.order_id)
            .where(
                pos_transactions.c.merchant_id == till.merchant_id,
                pos_transactions.c.program_id == till.program_id,
                *where,
            )
            .order_by(pos_transactions.c.created_at.desc(), pos_transactions.c.id.desc())
            .limit(500)
        )
    ).all()
    views = []
    for row in rows:
        lines = []
        if row.basket is not None:
            document = msgspec.convert(row.basket, BasketDocument)
            lines = [
                TransactionLine(line.line_id, line.sku, line.quantity, line.unit_price)
                for line in document.lines
            ]
        views.append(
            TransactionView(
                transaction_id=row.transaction_id,
                status=row.status,
                member_id=row.member_id,
                display_name=row.display_name,
                identified_by=row.identified_by,
                offline=row.offline,
                currency=row.currency,
                total=row.total,
                points_earned=int(row.points_earned or 0),
                points_returned_by_refunds=int(row.points_returned or 0),
                points_redeemed=int(row.points_redeemed or 0),
                occurred_at=row.occurred_at,
                created_at=row.created_at,
                lines=lines,
            )
        )
    return views
