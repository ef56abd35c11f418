"""Merging two member records of one person: the source's points move to the target by ledger
transfers, the source record stays (empty) and points to the target.

In one transaction, for each program where the source has an account:

1. the target's account is opened if it has none;
2. both accounts are locked (in account-id order, as every transfer locks them) and their
   holds whose time is up are settled; a source with a pending hold (an open sale at a till) is
   refused with ``member_has_pending_holds``: the sale must finish or be voided first, since its
   points cannot be moved while held;
3. the source's available points move with one ``transfer`` journal (the receiver gets one lot
   per lot drawn, with its expiry date: a merge never extends a point's life). The journals stay
   with the source's account, so both members' histories show the move, and ``loyalty ledger
   verify`` stays clean.

Then the source is marked ``merged_into_id`` = target, a ``member_merges`` row records what
moved (per program the points and the journal), and an audit entry is written for each of the
two members (``member.merge`` on the source, ``member.merge_in`` on the target).

**The source becomes nobody.** Its wallet sessions end, its unused sign-in codes are burned, its
rotating-code secret generation is raised (wallet codes of its devices stop working), its
invitation code and Apple Wallet passes are deleted, and it is no longer found at the till, by
wallet sign-in or by enrollment (they skip members with ``merged_into_id``, as they skip erased
ones). Its name, email, phone and card number **stay on the source record**: they document what
was merged (support finds the old card number and sees where it went), and they are not copied
to the target, which keeps its own (a card number is unique; whose email is the right one is
for the member to say: change it on the target). The source's orders, redemptions, tier history
and consents stay with the source (they are facts about that record); the target's tier is not
recomputed: assign one by hand if the merged history deserves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import (
    accounts,
    invite_codes,
    member_merges,
    member_sessions,
    members,
    pass_registrations,
    sign_in_codes,
    wallet_passes,
)
from loyalty.domain.errors import DomainError, ErrorCode

from . import ledger_writes as w
from .audit import record_change
from .context import Staff
from .ledger import Ledger
from .membership import open_account

MERGE_ACTION = "member.merge"
MERGE_IN_ACTION = "member.merge_in"
#: journals.reason holds at most this many characters.
MAX_JOURNAL_REASON = 500


class MovedPoints(msgspec.Struct, frozen=True):
    """What one program's transfer moved (``journal_id`` None when there were no points)."""

    program_id: int
    points: int
    journal_id: int | None


class MergeView(msgspec.Struct, frozen=True, kw_only=True):
    merge_id: int
    source_member_id: int
    target_member_id: int
    at: datetime
    #: Who merged ("Name <email>") and why.
    actor: str
    staff_id: int
    reason: str
    moved: list[MovedPoints]


async def require_current_member(
    conn: AsyncConnection, merchant_id: int, member_id: int, *, lock: bool = False
) -> Any:
    """The member row, if it is the merchant's and still someone: ``member_not_found``,
    ``member_erased`` or ``member_merged`` (with ``merged_into_id``) otherwise."""
    query = select(members).where(members.c.id == member_id, members.c.merchant_id == merchant_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _current(row, member_id)


def _current(row: Any, member_id: int) -> Any:
    if row is None:
        raise DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member", member_id=member_id)
    if row.deleted_at is not None:
        raise DomainError(
            ErrorCode.MEMBER_ERASED,
            "this member was erased: their record holds no data and no points any more",
            member_id=member_id,
        )
    if row.merged_into_id is not None:
        raise DomainError(
            ErrorCode.MEMBER_MERGED,
            f"this member was merged into member {row.merged_into_id}: work on that one",
            member_id=member_id,
            merged_into_id=row.merged_into_id,
        )
    return row


class MemberMerges:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def merge(self, staff: Staff, source_id: int, target_id: int, reason: str) -> MergeView:
        """Merge ``source_id`` into ``target_id`` (both of the staff's merchant), audited."""
        reason = reason.strip()
        if not reason:
            raise DomainError(ErrorCode.REASON_REQUIRED, "say why the two records are merged")
        if source_id == target_id:
            raise DomainError(ErrorCode.MERGE_INTO_ITSELF, "a member cannot be merged into itself")

        async def work(conn: AsyncConnection) -> MergeView:
            return await self._merge(
                conn, self._ledger.clock(), staff, source_id, target_id, reason
            )

        return await in_transaction(self._ledger.engine, work)

    async def _merge(
        self,
        conn: AsyncConnection,
        now: datetime,
        staff: Staff,
        source_id: int,
        target_id: int,
        reason: str,
    ) -> MergeView:
        # Both member rows first, in id order: two merges of the same pair (either way round)
        # wait for each other here, and the loser then finds the source merged.
        rows = {
            row.id: row
            for row in (
                await conn.execute(
                    select(members)
                    .where(
                        members.c.id.in_([source_id, target_id]),
                        members.c.merchant_id == staff.merchant_id,
                    )
                    .order_by(members.c.id)
                    .with_for_update()
                )
            ).all()
        }
        source = _current(rows.get(source_id), source_id)
        target = _current(rows.get(target_id), target_id)
        transfer_reason = f"merge of member {source.id} into {target.id}: {reason}"
        moved: list[MovedPoints] = []
        for program_id in await _programs_of(conn, source.id):
            moved.append(
                await self._move_program(
                    conn, now, staff, program_id, source.id, target.id, transfer_reason
                )
            )
        await conn.execute(
            update(members)
            .where(members.c.id == source.id)
            .values(
                merged_into_id=target.id,
                card_secret_version=members.c.card_secret_version + 1,
            )
        )
        ended = await end_access(conn, source.id, now)
        merge_id = await conn.scalar(
            member_merges.insert()
            .values(
                merchant_id=staff.merchant_id,
                source_member_id=source.id,
                target_member_id=target.id,
                staff_id=staff.staff_id,
                actor=staff.label,
                reason=reason,
                moved=msgspec.to_builtins(moved),
                at=now,
            )
            .returning(member_merges.c.id)
        )
        assert merge_id is not None
        view = MergeView(
            merge_id=int(merge_id),
            source_member_id=source.id,
            target_member_id=target.id,
            at=now,
            actor=staff.label,
            staff_id=staff.staff_id,
            reason=reason,
            moved=moved,
        )
        after = {**msgspec.to_builtins(view), **ended}
        await record_change(
            conn,
            staff,
            action=MERGE_ACTION,
            entity="member",
            entity_id=source.id,
            at=now,
            before={"merged_into_id": None},
            after=after,
        )
        await record_change(
            conn,
            staff,
            action=MERGE_IN_ACTION,
            entity="member",
            entity_id=target.id,
            at=now,
            after=after,
        )
        return view

    async def _move_program(
        self,
        conn: AsyncConnection,
        now: datetime,
        staff: Staff,
        program_id: int,
        source_id: int,
        target_id: int,
        reason: str,
    ) -> MovedPoints:
        caller = staff.caller
        if not await _has_account(conn, program_id, target_id):
            await open_account(conn, program_id, target_id, now)
        found = await w.lock_members(conn, caller, program_id, [source_id, target_id])
        for account in found.values():
            await w.settle_stale_holds(conn, caller, account, now)
        source, target = found[source_id], found[target_id]
        if source.held:
            raise DomainError(
                ErrorCode.MEMBER_HAS_PENDING_HOLDS,
                "the member to merge has points held for an open sale; finish or void it first",
                member_id=source_id,
                program_id=program_id,
                held=source.held,
            )
        points = source.posted - source.held
        if points <= 0:
            return MovedPoints(program_id=program_id, points=0, journal_id=None)
        result = await self._ledger.transfer_within(
            conn, now, caller, source, target, points, reason=reason[:MAX_JOURNAL_REASON]
        )
        return MovedPoints(program_id=program_id, points=points, journal_id=result.journal_id)


async def merges_of(conn: AsyncConnection, member_id: int) -> list[MergeView]:
    """Merges the member took part in (as source or target), oldest first."""
    rows = await conn.execute(
        select(member_merges)
        .where(
            (member_merges.c.source_member_id == member_id)
            | (member_merges.c.target_member_id == member_id)
        )
        .order_by(member_merges.c.id)
    )
    return [
        MergeView(
            merge_id=row.id,
            source_member_id=row.source_member_id,
            target_member_id=row.target_member_id,
            at=row.at,
            actor=row.actor,
            staff_id=row.staff_id,
            reason=row.reason,
            moved=msgspec.convert(row.moved, list[MovedPoints]),
        )
        for row in rows
    ]


async def _programs_of(conn: AsyncConnection, member_id: int) -> Sequence[int]:
    rows = await conn.scalars(
        select(accounts.c.program_id)
        .where(accounts.c.member_id == member_id)
        .order_by(accounts.c.program_id)
    )
    return list(rows.all())


async def _has_account(conn: AsyncConnection, program_id: int, member_id: int) -> bool:
    found = await conn.scalar(
        select(accounts.c.id).where(
            accounts.c.program_id == program_id, accounts.c.member_id == member_id
        )
    )
    return found is not None


async def end_access(conn: AsyncConnection, member_id: int, at: datetime) -> dict[str, int]:
    """What lets a person act as the member ends: sessions, sign-in codes, the invitation
    link, wallet passes (on a merge's source and on erasure; a merge keeps the contact data,
    see the module text). The counts of sessions ended and sign-in codes burned."""
    sessions = await conn.execute(
        update(member_sessions)
        .where(member_sessions.c.member_id == member_id, member_sessions.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    codes = await conn.execute(
        update(sign_in_codes)
        .where(sign_in_codes.c.member_id == member_id, sign_in_codes.c.used_at.is_(None))
        .values(used_at=at)
    )
    await conn.execute(invite_codes.delete().where(invite_codes.c.member_id == member_id))
    serials = select(wallet_passes.c.serial).where(wallet_passes.c.member_id == member_id)
    await conn.execute(pass_registrations.delete().where(pass_registrations.c.serial.in_(serials)))
    await conn.execute(wallet_passes.delete().where(wallet_passes.c.member_id == member_id))
    return {
        "sessions_ended": int(sessions.rowcount or 0),
        "sign_in_codes_burned": int(codes.rowcount or 0),
    }
