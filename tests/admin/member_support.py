"""What the member-support tests share: a program of the shop with members who have points,
made through the ledger API (as a shop's own systems would), and direct reads of the tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, lots, members
from tests.admin.conftest import AdminStack
from tests.app.conftest import Api

_CODES = itertools.count(1)


@dataclass
class Shop:
    admin: AdminStack
    program_id: int
    api: Api

    def member(self, name: str, *, email: str | None = None, phone: str | None = None) -> int:
        body: dict[str, Any] = {"display_name": name}
        if email is not None:
            body["email"] = email
        member_id: int = self.api.ok(f"/programs/{self.program_id}/members", body)["member_id"]
        if phone is not None:
            self.set_member(member_id, phone=phone)
        return member_id

    def enroll(self, member_id: int) -> None:
        self.api.ok(f"/programs/{self.program_id}/members", {"member_id": member_id})

    def earn(self, member_id: int, points: int) -> dict[str, Any]:
        return self.api.ok(
            f"/programs/{self.program_id}/members/{member_id}/earn", {"points": points}
        )

    def hold(self, member_id: int, points: int) -> dict[str, Any]:
        return self.api.ok(
            f"/programs/{self.program_id}/members/{member_id}/holds", {"points": points}
        )

    def balance(self, member_id: int, program_id: int | None = None) -> dict[str, Any]:
        pid = program_id or self.program_id
        found: dict[str, Any] = self.api.read(f"/programs/{pid}/members/{member_id}/balance")
        return found

    def available(self, member_id: int, program_id: int | None = None) -> int:
        return int(self.balance(member_id, program_id)["available"])

    def set_member(self, member_id: int, **values: Any) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(update(members).where(members.c.id == member_id).values(**values))

        async def go() -> None:
            await in_transaction(self.admin.stack.engine, work)

        self.admin.stack.run(go)

    def member_row(self, member_id: int) -> dict[str, Any]:
        async def read(conn: AsyncConnection) -> dict[str, Any]:
            row = (await conn.execute(select(members).where(members.c.id == member_id))).one()
            return dict(row._mapping)

        return self.admin.stack.read_db(read)

    def lots_of(self, account_member_id: int, program_id: int | None = None) -> list[Any]:
        """(remaining, expires_at) of the member's lots with points left, by expiry."""
        pid = program_id or self.program_id

        async def read(conn: AsyncConnection) -> list[Any]:
            rows = await conn.execute(
                select(lots.c.remaining, lots.c.expires_at)
                .join(accounts, accounts.c.id == lots.c.account_id)
                .where(
                    accounts.c.member_id == account_member_id,
                    accounts.c.program_id == pid,
                    lots.c.remaining > 0,
                )
                .order_by(lots.c.expires_at, lots.c.id)
            )
            return [(row.remaining, row.expires_at) for row in rows]

        return self.admin.stack.read_db(read)


def open_shop(admin: AdminStack, *, api: Api | None = None, **program: Any) -> Shop:
    """A program of the shop (points expire 30 days after they are earned unless told)."""
    chosen = api or admin.stack.shop
    overrides = {"code": f"bonus-{next(_CODES)}", **program}
    created = admin.stack.create_program(chosen, **overrides)
    return Shop(admin=admin, program_id=created["program_id"], api=chosen)
