"""Referrals: a member invites others with a link; when an invited person joins and completes a
first purchase, both earn the program's referral bonus, once.

The invitation code is random (it tells nothing about the member) and one per member and
program. Joining through it records the referral; the invited member's first order converts
it in that order's transaction: both accounts earn ``referral_bonus_points`` (0: the referral is
counted, nothing is earned). It earns nothing, and says why, when the two share an email
address, a phone number or a card number (one person inviting themselves), or when the invited
member was already a member before.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import invite_codes, members, programs, referrals

from .context import Caller, utc_now
from .ledger import Ledger
from .ledger_writes import Account

#: Letters and digits that cannot be mistaken for each other when typed from a screen.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 10
SHARED_CONTACT = "shared_contact"
INVITER_ERASED = "inviter_erased"


class Invitation(Struct, frozen=True, kw_only=True):
    code: str
    #: People who joined with the code, and those of them who made their first purchase.
    joined: int
    converted: int
    #: What each of the two earns at the invited member's first purchase.
    bonus_points: int


def _new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))


async def invite_code_of(
    conn: AsyncConnection, program_id: int, member_id: int, at: datetime
) -> str:
    """The member's invitation code in the program, made the first time it is asked for."""
    found = await conn.scalar(
        select(invite_codes.c.code).where(
            invite_codes.c.program_id == program_id, invite_codes.c.member_id == member_id
        )
    )
    if found is not None:
        return str(found)
    for _ in range(5):
        code = _new_code()
        try:
            async with conn.begin_nested():
                await conn.execute(
                    invite_codes.insert().values(
                        code=code, program_id=program_id, member_id=member_id, created_at=at
                    )
                )
        except IntegrityError:
            # Another request made the member's code just now, or (most unlikely) the code
            # exists: look again.
            again = await conn.scalar(
                select(invite_codes.c.code).where(
                    invite_codes.c.program_id == program_id, invite_codes.c.member_id == member_id
                )
            )
            if again is not None:
                return str(again)
            continue
        return code
    raise RuntimeError("could not draw an unused invitation code")  # pragma: no cover


async def note_invitation(
    conn: AsyncConnection, program_id: int, code: str | None, invitee_id: int, at: datetime
) -> bool:
    """Record that ``invitee_id``, new in the program, joined with ``code``; False when the
    code is unknown, of another program or the member's own."""
    if not code:
        return False
    inviter = await conn.scalar(
        select(invite_codes.c.member_id).where(
            invite_codes.c.code == code.strip().upper(), invite_codes.c.program_id == program_id
        )
    )
    if inviter is None or inviter == invitee_id:
        return False
    try:
        async with conn.begin_nested():
            await conn.execute(
                referrals.insert().values(
                    program_id=program_id,
                    inviter_member_id=inviter,
                    invitee_member_id=invitee_id,
                    created_at=at,
                )
            )
    except IntegrityError:
        return False  # already invited by someone
    return True


async def _share_contact(conn: AsyncConnection, one: int, other: int) -> bool:
    rows = (
        await conn.execute(
            select(members.c.email, members.c.phone, members.c.card_number).where(
                members.c.id.in_((one, other))
            )
        )
    ).all()
    if len(rows) != 2:
        return True
    first, second = rows
    return any(
        a is not None and a == b
        for a, b in (
            (first.email, second.email),
            (first.phone, second.phone),
            (first.card_number, second.card_number),
        )
    )


async def convert_on_first_purchase(
    conn: AsyncConnection,
    ledger: Ledger,
    caller: Caller,
    invitee: Account,
    now: datetime,
) -> int:
    """In the invited member's order transaction: convert their pending referral, crediting
    both members the program's bonus. The points the invitee earned (0 if none)."""
    referral = (
        await conn.execute(
            select(referrals.c.id, referrals.c.inviter_member_id)
            .where(
                referrals.c.program_id == invitee.program_id,
                referrals.c.invitee_member_id == invitee.member_id,
                referrals.c.converted_at.is_(None),
                referrals.c.refused.is_(None),
            )
            .with_for_update()
        )
    ).first()
    if referral is None:
        return 0
    refused = None
    if await _share_contact(conn, referral.inviter_member_id, invitee.member_id):
        refused = SHARED_CONTACT
    elif await conn.scalar(
        select(members.c.deleted_at).where(members.c.id == referral.inviter_member_id)
    ):
        refused = INVITER_ERASED  # nobody could ever use the inviter's share
    bonus = int(
        await conn.scalar(
            select(programs.c.referral_bonus_points).where(programs.c.id == invitee.program_id)
        )
        or 0
    )
    await conn.execute(
        update(referrals)
        .where(referrals.c.id == referral.id)
        .values(converted_at=now, refused=refused)
    )
    if refused is not None or bonus <= 0:
        return 0
    reference = f"referral:{referral.id}"
    await ledger.earn_within(conn, now, caller, invitee, bonus, reference=reference)
    inviter = await ledger.lock_member(
        conn, caller, invitee.program_id, referral.inviter_member_id, now
    )
    await ledger.earn_within(conn, now, caller, inviter, bonus, reference=reference)
    return bonus


class Referrals:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def invitation(self, program_id: int, member_id: int) -> Invitation:
        async def work(conn: AsyncConnection) -> Invitation:
            code = await invite_code_of(conn, program_id, member_id, self._clock())
            counts: Any = (
                await conn.execute(
                    select(
                        func.count(),
                        func.count(referrals.c.converted_at).filter(referrals.c.refused.is_(None)),
                    ).where(
                        referrals.c.program_id == program_id,
                        referrals.c.inviter_member_id == member_id,
                    )
                )
            ).one()
            bonus = await conn.scalar(
                select(programs.c.referral_bonus_points).where(programs.c.id == program_id)
            )
            return Invitation(
                code=code, joined=counts[0], converted=counts[1], bonus_points=int(bonus or 0)
            )

        return await in_transaction(self._engine, work)
