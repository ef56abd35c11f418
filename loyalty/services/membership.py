"""Members and their program accounts come into being here, whoever enrolls them (the program
API, the wallet, a cashier)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import accounts, members
from loyalty.domain.errors import DomainError, ErrorCode

from .member_cards import issue_card_number


async def create_member(
    conn: AsyncConnection,
    merchant_id: int,
    *,
    display_name: str,
    at: datetime,
    email: str | None = None,
    phone: str | None = None,
    locale: str | None = None,
) -> int:
    """A new member of the merchant, with a fresh static card number."""
    member_id = await conn.scalar(
        members.insert()
        .values(
            merchant_id=merchant_id,
            display_name=display_name,
            email=email,
            phone=phone,
            locale=locale,
            created_at=at,
        )
        .returning(members.c.id)
    )
    assert member_id is not None
    await issue_card_number(conn, int(member_id))
    return int(member_id)


async def open_account(conn: AsyncConnection, program_id: int, member_id: int, at: datetime) -> int:
    """The member's account in the program; ``member_already_enrolled`` if there is one."""
    try:
        async with conn.begin_nested():
            account_id = await conn.scalar(
                accounts.insert()
                .values(program_id=program_id, member_id=member_id, kind="member", created_at=at)
                .returning(accounts.c.id)
            )
    except IntegrityError:
        raise DomainError(
            ErrorCode.ALREADY_ENROLLED, "the member is already enrolled in this program"
        ) from None
    assert account_id is not None
    return int(account_id)
