"""Membership cards on the server: the member behind a scan, rotating-code secrets, and the
one-use rule for rotating codes that redeem.

A member's TOTP secret is never stored: it is derived from the server key, the member id and
the member's ``card_secret_version`` (HMAC-SHA256, first 20 bytes). The wallet receives it once
per session; raising the version revokes every device that holds the old one. A leaked database
therefore reveals no secret, and there is nothing to encrypt or rotate per row.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import members, rotating_code_uses
from loyalty.domain.cards import (
    TOTP_SECRET_BYTES,
    TOTP_STEP,
    ScanKind,
    classify_scan,
    new_card_number,
    parse_rotating_code,
    verify_totp,
)
from loyalty.domain.errors import DomainError, ErrorCode

from .context import Caller

#: Attempts to draw an unused card number (14 random digits: a clash is already unlikely).
CARD_NUMBER_ATTEMPTS = 5


def card_secret(server_key: bytes, member_id: int, version: int) -> bytes:
    message = f"loyalty-rotating-code:{member_id}:{version}".encode()
    return hmac.new(server_key, message, hashlib.sha256).digest()[:TOTP_SECRET_BYTES]


@dataclass(frozen=True, slots=True)
class Identified:
    member_id: int
    display_name: str
    kind: ScanKind
    #: The time step a rotating code matched (what a redemption must record as used).
    step: int | None = None
    #: The static card number (what a vendor that keeps an account id on its check stores).
    card_number: str | None = None
    #: The member's segments (what earning rules may target), read with the member.
    segments: frozenset[str] = frozenset()


def _not_found(kind: ScanKind) -> DomainError:
    return DomainError(
        ErrorCode.CARD_NOT_FOUND,
        "no member of this merchant has this code, card number, phone number or email",
        scan_kind=str(kind),
    )


_IDENTIFIED_COLUMNS = (
    members.c.id,
    members.c.display_name,
    members.c.card_secret_version,
    members.c.card_number,
    members.c.segments,
)


def _mine(merchant_id: Any) -> ColumnElement[bool]:
    # An erased member (deleted_at set) is nobody: their card number, email and phone are gone
    # already, and the member number inside a rotating code must not find them either. Nor is
    # a member merged into another (merged_into_id set): their points are the other one's now.
    return and_(
        members.c.merchant_id == merchant_id,
        members.c.deleted_at.is_(None),
        members.c.merged_into_id.is_(None),
    )


# The scans a till sends all day are looked up by statements built once (see ledger_writes).
_MEMBER_BY_NUMBER = select(*_IDENTIFIED_COLUMNS).where(
    _mine(bindparam("merchant_id")), members.c.id == bindparam("member_number")
)
_MEMBER_BY_CARD = (
    select(*_IDENTIFIED_COLUMNS)
    .where(_mine(bindparam("merchant_id")), members.c.card_number == bindparam("card_number"))
    .limit(2)
)


async def identify(
    conn: AsyncConnection,
    caller: Caller,
    value: str,
    at: datetime,
    server_key: bytes,
    *,
    lookback_steps: int = 0,
) -> Identified:
    """The member a scan or typed value names, within the caller's merchant.

    ``lookback_steps``: a rotating code is also accepted if it was valid up to that many steps
    before ``at`` (earning only: redemptions take the code of the moment)."""
    scan = classify_scan(value)
    row: Any
    if scan.kind is ScanKind.ROTATING_CODE:
        member_number, digits = parse_rotating_code(scan.value)
        found = await conn.execute(
            _MEMBER_BY_NUMBER, {"merchant_id": caller.merchant_id, "member_number": member_number}
        )
        row = found.first()
        if row is None:
            raise _not_found(scan.kind)
        secret = card_secret(server_key, row.id, row.card_secret_version)
        step = verify_totp(secret, digits, at, lookback=lookback_steps)
        return Identified(
            row.id, row.display_name, scan.kind, step, row.card_number, _segments(row)
        )
    if scan.kind is ScanKind.CARD_NUMBER:
        found = await conn.execute(
            _MEMBER_BY_CARD, {"merchant_id": caller.merchant_id, "card_number": scan.value}
        )
    else:
        contact = func.lower(members.c.email) if scan.kind is ScanKind.EMAIL else members.c.phone
        found = await conn.execute(
            select(*_IDENTIFIED_COLUMNS)
            .where(_mine(caller.merchant_id), contact == scan.value)
            .limit(2)
        )
    rows = found.all()
    if not rows:
        raise _not_found(scan.kind)
    if len(rows) > 1:
        raise DomainError(
            ErrorCode.SCAN_AMBIGUOUS,
            "several members share this phone number or email; scan the card instead",
            scan_kind=str(scan.kind),
        )
    row = rows[0]
    return Identified(
        row.id, row.display_name, scan.kind, card_number=row.card_number, segments=_segments(row)
    )


def _segments(row: Any) -> frozenset[str]:
    return frozenset(row.segments or ())


async def use_rotating_step(
    conn: AsyncConnection, member_id: int, step: int, at: datetime, sale: str | None = None
) -> None:
    """Record that the member's code of ``step`` redeemed on ``sale``. The code may redeem
    again on the same sale (two rewards at one till); anywhere else it is a replay."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                rotating_code_uses.insert().values(
                    member_id=member_id, step=step, used_at=at, reference=sale
                )
            )
        return
    except IntegrityError:
        pass
    used_on = await conn.scalar(
        select(rotating_code_uses.c.reference).where(
            rotating_code_uses.c.member_id == member_id, rotating_code_uses.c.step == step
        )
    )
    if sale is None or used_on != sale:
        raise DomainError(
            ErrorCode.ROTATING_CODE_REPLAYED,
            "this wallet code was already used to redeem; ask the member to show the new code",
        )


async def forget_used_codes(engine: AsyncEngine, now: datetime) -> int:
    """Drop uses older than any code still accepted (they can never match again)."""
    before = now - 4 * TOTP_STEP

    async def work(conn: AsyncConnection) -> int:
        return await _forget_used_steps(conn, before)

    return await in_transaction(engine, work)


async def _forget_used_steps(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(
        rotating_code_uses.delete().where(rotating_code_uses.c.used_at < before)
    )
    return int(result.rowcount or 0)


async def issue_card_number(conn: AsyncConnection, member_id: int) -> str:
    """Give the member a fresh static card number (unique per deployment)."""
    for _ in range(CARD_NUMBER_ATTEMPTS):
        number = new_card_number()
        try:
            async with conn.begin_nested():
                await conn.execute(
                    members.update().where(members.c.id == member_id).values(card_number=number)
                )
        except IntegrityError:
            continue
        return number
    raise RuntimeError("could not draw an unused card number")  # pragma: no cover
