"""The reward catalogue and reward redemption.

Catalogue: staff create, update and archive the rewards of a program; every change is written to
the audit log in the transaction that makes it. A reward is stored as the manager wrote it
(``rewards.definition``, a :class:`RewardDefinition`) next to its ``active`` switch (kept equal to
the definition's) and its stock counter ``units_redeemed``.

Redemption: one idempotent transaction (``ledger.executor``) locks the reward row (``SELECT ...
FOR UPDATE``: two tills cannot both take the last unit; SQLite serializes writers anyway), then
the member's account, checks the reward (``check_redeemable``) with the member's effective tier,
their redemptions of it and the units taken, prices it (``value``) and then either

* ``hold``: holds the points (a POS authorization, captured by :meth:`Rewards.complete_redemption`
  when the order completes, given back by :meth:`Rewards.release_redemption` or by the hold's
  timeout); the redemption is ``pending`` until then, or
* ``voucher``: spends the points at once; the redemption is ``completed`` and carries a 12-digit
  voucher code.

Both take a unit of stock (``units_redeemed + 1``); a released redemption gives it back. Lock
order, everywhere: reward row, redemption row, member account.

Lapsed holds. A pending redemption follows its hold: once the hold can no longer be captured
(its ``expires_at`` has come, or the ledger released or expired it) the redemption is released
and its unit is back in stock; a hold captured directly through the ledger's hold endpoint
completes it. The ledger settles such holds lazily (on the member's next operation or in the
sweep), so this service reconciles the same way:

* on read, every view (:meth:`Rewards.get_redemption`, :meth:`Rewards.list_redemptions`, reward
  views, :meth:`Rewards.available_rewards`) shows the state that follows from the hold: a
  redemption whose hold is no longer pending is never shown ``pending``, and its unit already
  counts as back in stock;
* on write, the rows and the stock counter are brought in line by the next write that touches
  them: completing or releasing the redemption (which answers ``redemption_not_pending`` and
  persists the release), the member's next redemption of the reward, a redemption that finds the
  reward out of stock, and an update of the reward.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import ColumnElement, and_, func, not_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, holds, journals, programs, reward_redemptions, rewards
from loyalty.domain.basket import Basket, require_currency
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import HoldStatus, JournalKind
from loyalty.domain.rewards import Reward, RewardKind, check_redeemable, value

from . import ledger_writes as w
from .audit import record_change
from .context import Caller, Staff
from .idempotency import Replayable, fingerprint
from .ledger import Ledger
from .lookups import explain_missing_account, require_program
from .results import Balance, OperationResult
from .rule_documents import LocalizedText, RewardDefinition
from .tier_status import effective_tier, effective_tier_code

Mode = Literal["hold", "voucher"]
MODES: tuple[Mode, ...] = get_args(Mode)

#: Voucher codes: digits only (a till keys them in or scans them as a barcode).
VOUCHER_DIGITS = 12
_VOUCHER_ATTEMPTS = 8
MAX_REDEMPTIONS_LISTED = 200

_rr = reward_redemptions


class RedemptionStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    RELEASED = "released"


# -- what the service answers -------------------------------------------------------------


class RewardView(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A reward of the catalogue, with its stock."""

    reward_id: int
    program_id: int
    code: str
    active: bool
    definition: RewardDefinition
    #: Units held by pending redemptions or taken by completed ones.
    units_redeemed: int
    #: Units still available; None: unlimited stock.
    stock_left: int | None
    created_at: datetime
    updated_at: datetime | None = None


class AvailableReward(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reward: RewardView
    redeemable: bool
    #: The fewest points the reward can be redeemed for (points-as-money: the smallest choice).
    points_from: int
    #: Why the member cannot redeem it now (an error code such as reward_out_of_stock or
    #: insufficient_points); None when redeemable.
    refusal: str | None = None
    refusal_detail: str | None = None


class AvailableRewards(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    program_id: int
    member_id: int
    at: datetime
    #: The member's effective tier at ``at`` (None: the program has no tiers).
    tier: str | None
    available_points: int
    rewards: list[AvailableReward]
    tier_name: LocalizedText | None = None


class RedemptionView(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A redemption as it stands (a lapsed hold shows as released, see the module docs)."""

    redemption_id: int
    program_id: int
    member_id: int
    reward_code: str
    status: str
    points: int
    #: Money off, minor units.
    discount: int
    created_at: datetime
    voucher_code: str | None = None
    hold_id: int | None = None
    hold_expires_at: datetime | None = None
    #: The journal that spent the points (the voucher's redeem or the hold's capture).
    journal_id: int | None = None
    reference: str | None = None
    resolved_at: datetime | None = None


class RedemptionResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a redeem, complete or release did."""

    redemption_id: int
    program_id: int
    member_id: int
    reward_code: str
    status: str
    points: int
    #: Money off, minor units (a free item: the unit price of ``line_id``).
    discount: int
    #: The journal this operation wrote: hold, redeem, capture or release.
    journal_id: int
    #: The member's balance afterwards.
    balance: Balance
    created_at: datetime
    voucher_code: str | None = None
    hold_id: int | None = None
    hold_expires_at: datetime | None = None
    #: The basket line a free-item reward makes free.
    line_id: str | None = None
    reference: str | None = None


# -- the service ----------------------------------------------------------------------------


class Rewards:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._engine = ledger.engine

    def _now(self) -> datetime:
        return self._ledger.clock()

    # -- catalogue (staff) ----------------------------------------------------------------

    async def create_reward(
        self, staff: Staff, program_id: int, definition: RewardDefinition
    ) -> RewardView:
        definition.reward()  # invalid_reward / invalid_window before anything runs

        async def work(conn: AsyncConnection) -> RewardView:
            now = self._now()
            await require_program(conn, staff.caller, program_id)
            reward_id = await conn.scalar(
                rewards.insert()
                .values(
                    program_id=program_id,
                    code=definition.code,
                    definition=msgspec.to_builtins(definition),
                    active=definition.active,
                    units_redeemed=0,
                    created_at=now,
                )
                .returning(rewards.c.id)
            )
            assert reward_id is not None
            await record_change(
                conn,
                staff,
                action="reward.create",
                entity="reward",
                entity_id=definition.code,
                at=now,
                after=definition,
                program_id=program_id,
            )
            return _reward_view(int(reward_id), program_id, definition, 0, now, None)

        try:
            return await in_transaction(self._engine, work)
        except IntegrityError as error:
            # The unique constraint decides (also between two managers creating it at once).
            if _violates(error, "uq_rewards_program_code", "rewards.program_id, rewards.code"):
                raise DomainError(
                    ErrorCode.REWARD_CODE_TAKEN,
                    "the program has a reward with this code",
                    reward=definition.code,
                ) from None
            raise

    async def update_reward(
        self, staff: Staff, program_id: int, code: str, definition: RewardDefinition
    ) -> RewardView:
        """Replace the reward's definition. Pending redemptions keep the points they hold; the
        stock may not drop below the units already redeemed."""
        if definition.code != code:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                "the code in the body must be the reward's code (a code cannot change)",
                reward=code,
                body_code=definition.code,
            )
        definition.reward()

        async def work(conn: AsyncConnection) -> RewardView:
            now = self._now()
            row = await _reward_row(conn, staff.caller, program_id, code, lock=True)
            units = row.units_redeemed - await reconcile_redemptions(
                conn, now, _rr.c.reward_id == row.id
            )
            if definition.stock is not None and definition.stock < units:
                raise DomainError(
                    ErrorCode.INVALID_REWARD,
                    f"stock cannot drop below the {units} units already redeemed",
                    reward=code,
                    stock=definition.stock,
                    units_redeemed=units,
                )
            await conn.execute(
                update(rewards)
                .where(rewards.c.id == row.id)
                .values(
                    definition=msgspec.to_builtins(definition),
                    active=definition.active,
                    updated_at=now,
                )
            )
            await record_change(
                conn,
                staff,
                action="reward.update",
                entity="reward",
                entity_id=code,
                at=now,
                before=_definition(row),
                after=definition,
                program_id=program_id,
            )
            return _reward_view(row.id, program_id, definition, units, row.created_at, now)

        return await in_transaction(self._engine, work)

    async def archive_reward(self, staff: Staff, program_id: int, code: str) -> RewardView:
        """Switch the reward off (members no longer see it; pending redemptions still complete).
        Archiving an archived reward changes nothing."""

        async def work(conn: AsyncConnection) -> RewardView:
            now = self._now()
            row = await _reward_row(conn, staff.caller, program_id, code, lock=True)
            lapsed = await _lapsed_units(conn, now, _rr.c.reward_id == row.id)
            units = row.units_redeemed - lapsed.get(row.id, 0)
            before = _definition(row)
            if not before.active:
                return _view_of(row, units, before)
            after = msgspec.structs.replace(before, active=False)
            await conn.execute(
                update(rewards)
                .where(rewards.c.id == row.id)
                .values(definition=msgspec.to_builtins(after), active=False, updated_at=now)
            )
            await record_change(
                conn,
                staff,
                action="reward.archive",
                entity="reward",
                entity_id=code,
                at=now,
                before=before,
                after=after,
                program_id=program_id,
            )
            return _reward_view(row.id, program_id, after, units, row.created_at, now)

        return await in_transaction(self._engine, work)

    async def list_rewards(
        self, scope: Caller, program_id: int, *, include_inactive: bool = False
    ) -> list[RewardView]:
        """The program's rewards by code (staff pass ``staff.caller``)."""

        async def work(conn: AsyncConnection) -> list[RewardView]:
            await require_program(conn, scope, program_id)
            query = select(rewards).where(rewards.c.program_id == program_id)
            if not include_inactive:
                query = query.where(rewards.c.active.is_(True))
            rows = (await conn.execute(query.order_by(rewards.c.code))).all()
            lapsed = await _lapsed_units(conn, self._now(), _rr.c.program_id == program_id)
            return [_view_of(row, row.units_redeemed - lapsed.get(row.id, 0)) for row in rows]

        return await in_transaction(self._engine, work, read_only=True)

    async def get_reward(self, scope: Caller, program_id: int, code: str) -> RewardView:
        async def work(conn: AsyncConnection) -> RewardView:
            row = await _reward_row(conn, scope, program_id, code)
            lapsed = await _lapsed_units(conn, self._now(), _rr.c.reward_id == row.id)
            return _view_of(row, row.units_redeemed - lapsed.get(row.id, 0))

        return await in_transaction(self._engine, work, read_only=True)

    # -- members --------------------------------------------------------------------------

    async def available_rewards(
        self, caller: Caller, program_id: int, member_id: int, at: datetime | None = None
    ) -> AvailableRewards:
        """The program's active rewards, each with whether the member can redeem it at ``at``
        (default now) and, when not, the code of the first refusal: the reward's own checks
        (window, tier, limit, stock) in ``check_redeemable``'s order, then insufficient_points
        when the member's available points do not reach the reward's cheapest price."""

        async def work(conn: AsyncConnection) -> AvailableRewards:
            return await self.available_within(
                conn, at or self._now(), caller, program_id, member_id
            )

        return await in_transaction(self._engine, work, read_only=True)

    async def available_within(
        self, conn: AsyncConnection, when: datetime, caller: Caller, program_id: int, member_id: int
    ) -> AvailableRewards:
        """``available_rewards`` inside the caller's transaction."""
        account = await _account_row(conn, caller, program_id, member_id)
        # Holds whose time is up are as good as released (the ledger releases them first).
        lapsed_held = await conn.scalar(
            select(func.coalesce(func.sum(holds.c.points), 0)).where(
                holds.c.account_id == account.id,
                holds.c.status == HoldStatus.PENDING,
                holds.c.expires_at <= when,
            )
        )
        available = account.posted - account.held + int(lapsed_held or 0)
        rows = (
            await conn.execute(
                select(rewards)
                .where(rewards.c.program_id == program_id, rewards.c.active.is_(True))
                .order_by(rewards.c.code)
            )
        ).all()
        lapsed = await _lapsed_units(conn, when, _rr.c.program_id == program_id)
        used = await _member_counts(conn, when, _rr.c.account_id == account.id)
        level = await effective_tier(conn, program_id, account.id, when)
        tier = None if level is None else level.code
        items = []
        for row in rows:
            definition = _definition(row)
            reward = definition.reward()
            units = row.units_redeemed - lapsed.get(row.id, 0)
            cheapest = _cheapest(reward)
            refusal: DomainError | None = None
            try:
                check_redeemable(reward, when, tier, used.get(row.id, 0), units)
                if available < cheapest:
                    raise DomainError(
                        ErrorCode.INSUFFICIENT_POINTS,
                        "the member does not have enough available points",
                    )
            except DomainError as error:
                refusal = error
            items.append(
                AvailableReward(
                    reward=_view_of(row, units, definition),
                    redeemable=refusal is None,
                    points_from=cheapest,
                    refusal=None if refusal is None else str(refusal.code),
                    refusal_detail=None if refusal is None else refusal.detail,
                )
            )
        return AvailableRewards(
            program_id=program_id,
            member_id=member_id,
            at=when,
            tier=tier,
            tier_name=None if level is None else LocalizedText(de=level.name.de, en=level.name.en),
            available_points=available,
            rewards=items,
        )

    async def redeem_reward(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        reward_code: str,
        mode: Mode,
        points: int | None = None,
        basket: Basket | None = None,
        reference: str | None = None,
    ) -> Replayable[RedemptionResult]:
        """Redeem a reward for the member: hold its points (``hold``) or spend them and issue a
        voucher code (``voucher``). ``points`` is the member's choice for points-as-money (for a
        fixed-price reward None or its price); ``basket`` prices the discount."""
        if mode not in MODES:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED, "mode must be 'hold' or 'voucher'", mode=mode
            )

        async def work(conn: AsyncConnection) -> RedemptionResult:
            return await self.redeem_within(
                conn,
                self._now(),
                caller,
                program_id=program_id,
                member_id=member_id,
                reward_code=reward_code,
                mode=mode,
                points=points,
                basket=basket,
                reference=reference,
            )

        body = (program_id, member_id, reward_code, mode, points, basket, reference)
        return await self._ledger.executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint("reward.redeem", *body),
            result_type=RedemptionResult,
            work=work,
            journal_id_of=lambda result: result.journal_id,
        )

    async def redeem_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        *,
        program_id: int,
        member_id: int,
        reward_code: str,
        mode: Mode,
        points: int | None = None,
        basket: Basket | None = None,
        reference: str | None = None,
    ) -> RedemptionResult:
        """``redeem_reward`` inside the caller's transaction."""
        row = await _reward_row(conn, caller, program_id, reward_code, lock=True)
        account = await self._ledger.lock_member(conn, caller, program_id, member_id, now)
        if basket is not None:
            require_currency(basket.currency, account.currency)
        reward = _definition(row).reward()
        mine = (_rr.c.account_id == account.id, _rr.c.reward_id == row.id)
        # The member's own lapsed redemptions of this reward no longer count against them.
        units = row.units_redeemed - await reconcile_redemptions(conn, now, *mine)
        if reward.stock is not None and units >= reward.stock:
            # Out of stock by the counter: units of other members' lapsed holds come back.
            units -= await reconcile_redemptions(conn, now, _rr.c.reward_id == row.id)
        tier = None
        if reward.tiers:
            tier = await effective_tier_code(conn, program_id, account.id, now)
        used = 0
        if reward.per_member_limit is not None:
            used = (await _member_counts(conn, now, *mine)).get(row.id, 0)
        check_redeemable(reward, now, tier, used, units)
        worth = value(reward, basket, points)
        hold_id = hold_expires_at = None
        if mode == "hold":
            operation = await self._ledger.hold_within(
                conn, now, caller, account, worth.points, reference=reference
            )
            assert operation.hold is not None
            hold_id, hold_expires_at = operation.hold.hold_id, operation.hold.expires_at
            status, spent_by = RedemptionStatus.PENDING, None
        else:
            operation = await self._ledger.redeem_within(
                conn, now, caller, account, worth.points, reference=reference
            )
            status, spent_by = RedemptionStatus.COMPLETED, operation.journal_id
        redemption_id, voucher_code = await _insert_redemption(
            conn,
            voucher=mode == "voucher",
            program_id=program_id,
            reward_id=row.id,
            account_id=account.id,
            status=str(status),
            points=worth.points,
            discount=worth.discount,
            hold_id=hold_id,
            journal_id=spent_by,
            reference=reference,
            created_at=now,
            resolved_at=now if status is RedemptionStatus.COMPLETED else None,
        )
        await _change_units(conn, row.id, +1)
        return RedemptionResult(
            redemption_id=redemption_id,
            program_id=program_id,
            member_id=member_id,
            reward_code=row.code,
            status=str(status),
            points=worth.points,
            discount=worth.discount,
            journal_id=operation.journal_id,
            balance=operation.balance,
            created_at=now,
            voucher_code=voucher_code,
            hold_id=hold_id,
            hold_expires_at=hold_expires_at,
            line_id=worth.line_id,
            reference=reference,
        )

    async def complete_redemption(
        self, caller: Caller, key: str, *, program_id: int, redemption_id: int
    ) -> Replayable[RedemptionResult]:
        """The order completed: capture the held points. redemption_not_pending when it is not
        pending (including a hold that lapsed: the redemption is then released)."""
        return await self._finish(caller, key, program_id, redemption_id, HoldStatus.CAPTURED)

    async def release_redemption(
        self, caller: Caller, key: str, *, program_id: int, redemption_id: int
    ) -> Replayable[RedemptionResult]:
        """The order was voided: give the held points and the unit of stock back."""
        return await self._finish(caller, key, program_id, redemption_id, HoldStatus.RELEASED)

    async def _finish(
        self,
        caller: Caller,
        key: str,
        program_id: int,
        redemption_id: int,
        outcome: HoldStatus,
    ) -> Replayable[RedemptionResult]:
        async def work(conn: AsyncConnection) -> RedemptionResult:
            return await self.finish_within(
                conn, self._now(), caller, program_id, redemption_id, outcome
            )

        operation = "reward.complete" if outcome is HoldStatus.CAPTURED else "reward.release"
        try:
            return await self._ledger.executor.run(
                client_id=caller.client_id,
                key=key,
                request_hash=fingerprint(operation, program_id, redemption_id),
                result_type=RedemptionResult,
                work=work,
                journal_id_of=lambda result: result.journal_id,
            )
        except DomainError as error:
            if error.code is ErrorCode.REDEMPTION_NOT_PENDING:
                # The refusal rolled back; make what it reported (a lapsed hold) durable.
                await self._settle_redemption(caller, program_id, redemption_id)
            raise

    async def finish_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        program_id: int,
        redemption_id: int,
        outcome: HoldStatus,
    ) -> RedemptionResult:
        """Capture (the order completed) or release (voided) a pending redemption inside the
        caller's transaction; redemption_not_pending otherwise."""
        row, _ = await _lock_redemption(conn, caller, program_id, redemption_id)
        # After the locks the hold cannot change: a pending one is still pending and in time
        # for resolve_within, which settles the member's stale holds with the same ``now``.
        status = _effective_status(row, now)
        if status is not RedemptionStatus.PENDING:
            raise DomainError(
                ErrorCode.REDEMPTION_NOT_PENDING,
                f"the redemption is {status}, not pending",
                redemption_id=redemption_id,
                redemption_status=str(status),
            )
        operation = await self._ledger.resolve_within(
            conn, now, caller, program_id, row.hold_id, outcome, None
        )
        captured = outcome is HoldStatus.CAPTURED
        new_status = RedemptionStatus.COMPLETED if captured else RedemptionStatus.RELEASED
        await conn.execute(
            update(_rr)
            .where(_rr.c.id == redemption_id)
            .values(
                status=str(new_status),
                resolved_at=now,
                journal_id=operation.journal_id if captured else None,
            )
        )
        if not captured:
            await _change_units(conn, row.reward_id, -1)
        return _finished(row, new_status, operation)

    async def _settle_redemption(self, caller: Caller, program_id: int, redemption_id: int) -> None:
        """Persist the state a redemption's hold implies: release stale holds of the member (as
        the ledger does before any operation) and bring the redemption and stock in line."""

        async def work(conn: AsyncConnection) -> None:
            now = self._now()
            row, account = await _lock_redemption(conn, caller, program_id, redemption_id)
            if row.status != RedemptionStatus.PENDING:
                return
            if await w.settle_stale_holds(conn, caller, account, now):
                await w.save_account(conn, account)
            await reconcile_redemptions(conn, now, _rr.c.id == redemption_id)

        await in_transaction(self._engine, work)

    async def get_redemption(
        self, caller: Caller, program_id: int, redemption_id: int
    ) -> RedemptionView:
        async def work(conn: AsyncConnection) -> RedemptionView:
            rows = (
                await conn.execute(
                    _redemption_query(caller, program_id).where(_rr.c.id == redemption_id)
                )
            ).all()
            if not rows:
                raise _redemption_not_found(redemption_id)
            return (await _redemption_views(conn, rows, self._now()))[0]

        return await in_transaction(self._engine, work, read_only=True)

    async def list_redemptions(
        self, caller: Caller, program_id: int, member_id: int, *, limit: int = 50
    ) -> list[RedemptionView]:
        """The member's redemptions in the program, newest first."""

        async def work(conn: AsyncConnection) -> list[RedemptionView]:
            account = await _account_row(conn, caller, program_id, member_id)
            rows = (
                await conn.execute(
                    _redemption_query(caller, program_id)
                    .where(_rr.c.account_id == account.id)
                    .order_by(_rr.c.id.desc())
                    .limit(max(1, min(limit, MAX_REDEMPTIONS_LISTED)))
                )
            ).all()
            return await _redemption_views(conn, rows, self._now())

        return await in_transaction(self._engine, work, read_only=True)


# -- helpers --------------------------------------------------------------------------------


def new_voucher_code() -> str:
    """Twelve random digits from a CSPRNG (leading zeros included)."""
    return f"{secrets.randbelow(10**VOUCHER_DIGITS):0{VOUCHER_DIGITS}d}"


def _definition(row: Any) -> RewardDefinition:
    return msgspec.convert(row.definition, RewardDefinition)


def _reward_view(
    reward_id: int,
    program_id: int,
    definition: RewardDefinition,
    units: int,
    created_at: datetime,
    updated_at: datetime | None,
) -> RewardView:
    stock = definition.stock
    return RewardView(
        reward_id=reward_id,
        program_id=program_id,
        code=definition.code,
        active=definition.active,
        definition=definition,
        units_redeemed=units,
        stock_left=None if stock is None else max(stock - units, 0),
        created_at=created_at,
        updated_at=updated_at,
    )


def _view_of(row: Any, units: int, definition: RewardDefinition | None = None) -> RewardView:
    """The view of a stored reward (``definition``: its definition, when already decoded)."""
    if definition is None:
        definition = _definition(row)
    return _reward_view(row.id, row.program_id, definition, units, row.created_at, row.updated_at)


def _cheapest(reward: Reward) -> int:
    if reward.kind is RewardKind.POINTS_AS_MONEY:
        return max(reward.min_points, reward.points_per_step)
    return reward.points_cost


def _redemption_not_found(redemption_id: int) -> DomainError:
    return DomainError(
        ErrorCode.REDEMPTION_NOT_FOUND, "no such redemption", redemption_id=redemption_id
    )


def _violates(error: IntegrityError, *names: str) -> bool:
    text = str(error)
    return any(name in text for name in names)


async def _reward_row(
    conn: AsyncConnection, caller: Caller, program_id: int, code: str, *, lock: bool = False
) -> Any:
    """The reward with its program's ``currency``; with ``lock``, locked until the transaction
    ends (the stock counter lives on it). program_not_found or reward_not_found."""
    query = (
        select(rewards, programs.c.currency)
        .join(programs, programs.c.id == rewards.c.program_id)
        .where(
            rewards.c.program_id == program_id,
            rewards.c.code == code,
            programs.c.merchant_id == caller.merchant_id,
        )
    )
    if lock:
        query = query.with_for_update(of=rewards)
    row = (await conn.execute(query)).first()
    if row is None:
        await require_program(conn, caller, program_id)
        raise DomainError(ErrorCode.REWARD_NOT_FOUND, "no such reward", reward=code)
    return row


async def _account_row(
    conn: AsyncConnection, caller: Caller, program_id: int, member_id: int
) -> Any:
    """The member's account (``id``, ``posted``, ``held``), unlocked: for reads."""
    row = (
        await conn.execute(
            select(accounts.c.id, accounts.c.posted, accounts.c.held)
            .join(programs, programs.c.id == accounts.c.program_id)
            .where(
                accounts.c.program_id == program_id,
                accounts.c.member_id == member_id,
                programs.c.merchant_id == caller.merchant_id,
            )
        )
    ).first()
    if row is None:
        await explain_missing_account(conn, caller, program_id, member_id)
        raise AssertionError("unreachable")
    return row


async def _change_units(conn: AsyncConnection, reward_id: int, units: int) -> None:
    """Take units of stock (positive) or give them back (negative)."""
    await conn.execute(
        update(rewards)
        .where(rewards.c.id == reward_id)
        .values(units_redeemed=rewards.c.units_redeemed + units)
    )


def _hold_settled(now: datetime) -> ColumnElement[bool]:
    """The (joined) hold is no longer pending, or its time is up."""
    return or_(holds.c.status != HoldStatus.PENDING, holds.c.expires_at <= now)


def _hold_released(now: datetime) -> ColumnElement[bool]:
    """The (joined) hold is settled without a capture: it gave its points back, or will."""
    return and_(_hold_settled(now), holds.c.status != HoldStatus.CAPTURED)


async def _lapsed_units(
    conn: AsyncConnection, now: datetime, *where: ColumnElement[bool]
) -> dict[int, int]:
    """Per reward: pending redemptions whose hold lapsed, i.e. units back in stock that the
    counter has not given back yet."""
    rows = await conn.execute(
        select(_rr.c.reward_id, func.count().label("units"))
        .join(holds, holds.c.id == _rr.c.hold_id)
        .where(_rr.c.status == RedemptionStatus.PENDING, _hold_released(now), *where)
        .group_by(_rr.c.reward_id)
    )
    return {row.reward_id: int(row.units) for row in rows}


async def _member_counts(
    conn: AsyncConnection, now: datetime, *where: ColumnElement[bool]
) -> dict[int, int]:
    """Per reward: the redemptions (of a member, by ``where``) that count against a per-member
    limit."""
    counts = or_(
        _rr.c.status == RedemptionStatus.COMPLETED,
        and_(_rr.c.status == RedemptionStatus.PENDING, not_(_hold_released(now))),
    )
    rows = await conn.execute(
        select(_rr.c.reward_id, func.count().label("used"))
        .outerjoin(holds, holds.c.id == _rr.c.hold_id)
        .where(counts, *where)
        .group_by(_rr.c.reward_id)
    )
    return {row.reward_id: int(row.used) for row in rows}


async def _capture_journal(conn: AsyncConnection, hold_id: int) -> int | None:
    found = await conn.scalar(
        select(journals.c.id).where(
            journals.c.hold_id == hold_id, journals.c.kind == JournalKind.CAPTURE
        )
    )
    return None if found is None else int(found)


#: The columns of a redemption's hold that decide what the redemption is (see the module docs).
_HOLD_COLUMNS = (
    holds.c.status.label("hold_status"),
    holds.c.expires_at.label("hold_expires_at"),
    holds.c.resolved_at.label("hold_resolved_at"),
)


async def reconcile_redemptions(
    conn: AsyncConnection, now: datetime, *where: ColumnElement[bool]
) -> int:
    """Bring pending redemptions whose hold is settled in line with it: a captured hold
    completes the redemption, any other ends it released with its unit back in stock. The
    caller holds the lock of every reward the rows belong to. Returns the units given back."""
    rows = (
        await conn.execute(
            select(_rr, *_HOLD_COLUMNS)
            .join(holds, holds.c.id == _rr.c.hold_id)
            .where(_rr.c.status == RedemptionStatus.PENDING, _hold_settled(now), *where)
        )
    ).all()
    given_back = 0
    for row in rows:
        status, resolved_at, journal_id = await _as_its_hold_implies(conn, row, now)
        await conn.execute(
            update(_rr)
            .where(_rr.c.id == row.id)
            .values(status=str(status), resolved_at=resolved_at, journal_id=journal_id)
        )
        if status is RedemptionStatus.RELEASED:
            await _change_units(conn, row.reward_id, -1)
            given_back += 1
    return given_back


async def _insert_redemption(
    conn: AsyncConnection, *, voucher: bool, **values: Any
) -> tuple[int, str | None]:
    """Insert the redemption; a voucher gets a fresh random code (a collision, about one in
    10^12 per issued code, is retried with another)."""
    if not voucher:
        new_id = await conn.scalar(_rr.insert().values(**values).returning(_rr.c.id))
        assert new_id is not None
        return int(new_id), None
    for _ in range(_VOUCHER_ATTEMPTS):
        code = new_voucher_code()
        try:
            async with conn.begin_nested():
                new_id = await conn.scalar(
                    _rr.insert().values(voucher_code=code, **values).returning(_rr.c.id)
                )
        except IntegrityError as error:
            if not _violates(error, "voucher_code"):
                raise
            continue
        assert new_id is not None
        return int(new_id), code
    raise AssertionError(f"no unused voucher code in {_VOUCHER_ATTEMPTS} attempts")


def _redemption_query(caller: Caller, program_id: int) -> Any:
    return (
        select(_rr, rewards.c.code.label("reward_code"), accounts.c.member_id, *_HOLD_COLUMNS)
        .join(rewards, rewards.c.id == _rr.c.reward_id)
        .join(accounts, accounts.c.id == _rr.c.account_id)
        .join(programs, programs.c.id == _rr.c.program_id)
        .outerjoin(holds, holds.c.id == _rr.c.hold_id)
        .where(_rr.c.program_id == program_id, programs.c.merchant_id == caller.merchant_id)
    )


async def _lock_redemption(
    conn: AsyncConnection, caller: Caller, program_id: int, redemption_id: int
) -> tuple[Any, w.Account]:
    """The redemption with its hold and the member's account, after locking its reward row,
    the redemption row and the account (in that order: the order every write here uses)."""
    reward_id = await conn.scalar(
        select(_rr.c.reward_id)
        .join(programs, programs.c.id == _rr.c.program_id)
        .where(
            _rr.c.id == redemption_id,
            _rr.c.program_id == program_id,
            programs.c.merchant_id == caller.merchant_id,
        )
    )
    if reward_id is None:
        raise _redemption_not_found(redemption_id)
    await conn.execute(
        select(rewards.c.id).where(rewards.c.id == reward_id).with_for_update(of=rewards)
    )
    account_id = await conn.scalar(
        select(_rr.c.account_id).where(_rr.c.id == redemption_id).with_for_update(of=_rr)
    )
    assert account_id is not None
    account = (await w.lock_accounts(conn, [account_id]))[account_id]
    # Read after the locks: the hold cannot change any more until this transaction ends.
    row = (
        await conn.execute(_redemption_query(caller, program_id).where(_rr.c.id == redemption_id))
    ).one()
    return row, account


def _effective_status(row: Any, now: datetime) -> RedemptionStatus:
    status = RedemptionStatus(row.status)
    if status is not RedemptionStatus.PENDING or row.hold_status is None:
        return status
    if row.hold_status == HoldStatus.CAPTURED:
        return RedemptionStatus.COMPLETED
    if row.hold_status != HoldStatus.PENDING or row.hold_expires_at <= now:
        return RedemptionStatus.RELEASED
    return status


async def _as_its_hold_implies(
    conn: AsyncConnection, row: Any, now: datetime
) -> tuple[RedemptionStatus, datetime | None, int | None]:
    """The redemption's status, ``resolved_at`` and ``journal_id`` as its hold implies: what a
    view shows and what ``reconcile_redemptions`` persists."""
    status = _effective_status(row, now)
    if status.value == row.status:
        return status, row.resolved_at, row.journal_id
    journal_id = None
    if status is RedemptionStatus.COMPLETED:
        journal_id = await _capture_journal(conn, row.hold_id)
    return status, row.hold_resolved_at or row.hold_expires_at, journal_id


async def _redemption_views(
    conn: AsyncConnection, rows: Sequence[Any], now: datetime
) -> list[RedemptionView]:
    views = []
    for row in rows:
        status, resolved_at, journal_id = await _as_its_hold_implies(conn, row, now)
        views.append(
            RedemptionView(
                redemption_id=row.id,
                program_id=row.program_id,
                member_id=row.member_id,
                reward_code=row.reward_code,
                status=str(status),
                points=row.points,
                discount=row.discount,
                created_at=row.created_at,
                voucher_code=row.voucher_code,
                hold_id=row.hold_id,
                hold_expires_at=row.hold_expires_at,
                journal_id=journal_id,
                reference=row.reference,
                resolved_at=resolved_at,
            )
        )
    return views


def _finished(row: Any, status: RedemptionStatus, operation: OperationResult) -> RedemptionResult:
    return RedemptionResult(
        redemption_id=row.id,
        program_id=row.program_id,
        member_id=row.member_id,
        reward_code=row.reward_code,
        status=str(status),
        points=row.points,
        discount=row.discount,
        journal_id=operation.journal_id,
        balance=operation.balance,
        created_at=row.created_at,
        voucher_code=row.voucher_code,
        hold_id=row.hold_id,
        hold_expires_at=row.hold_expires_at,
        reference=row.reference,
    )
