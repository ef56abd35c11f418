"""Programs and members: creating a program with its system accounts, enrolling members.

Issue-3 material (rules, tiers, rewards) builds on these rows; here a program is what the
ledger needs: currency, expiry policy, time zone and the default hold timeout.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import accounts, members, programs
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy

from .context import Caller
from .idempotency import IdempotentExecutor, Replayable, fingerprint
from .ledger_writes import SYSTEM_ACCOUNT_KINDS
from .lookups import require_member, require_program
from .results import Balance, EnrollmentResult, ProgramView


class Programs:
    def __init__(self, executor: IdempotentExecutor) -> None:
        self._executor = executor

    async def create_program(
        self,
        caller: Caller,
        key: str,
        *,
        code: str,
        name: str,
        currency: str,
        timezone: str = "Europe/Berlin",
        expiry_kind: str = ExpiryKind.NEVER,
        expiry_value: int = 0,
        hold_timeout_seconds: int = 900,
    ) -> Replayable[ProgramView]:
        policy = _policy(expiry_kind, expiry_value, timezone)

        async def work(conn: AsyncConnection) -> ProgramView:
            now = self._executor.now()
            taken = await conn.scalar(
                select(
                    exists().where(
                        programs.c.merchant_id == caller.merchant_id, programs.c.code == code
                    )
                )
            )
            if taken:
                raise DomainError(ErrorCode.PROGRAM_CODE_TAKEN, "a program with this code exists")
            program_id = await conn.scalar(
                programs.insert()
                .values(
                    merchant_id=caller.merchant_id,
                    code=code,
                    name=name,
                    currency=currency,
                    timezone=timezone,
                    expiry_kind=str(policy.kind),
                    expiry_value=policy.value,
                    hold_timeout_seconds=hold_timeout_seconds,
                    created_at=now,
                )
                .returning(programs.c.id)
            )
            assert program_id is not None
            await conn.execute(
                accounts.insert(),
                [
                    {"program_id": program_id, "member_id": None, "kind": kind, "created_at": now}
                    for kind in SYSTEM_ACCOUNT_KINDS
                ],
            )
            return ProgramView(
                program_id=program_id,
                code=code,
                name=name,
                currency=currency,
                timezone=timezone,
                expiry_kind=str(policy.kind),
                expiry_value=policy.value,
                hold_timeout_seconds=hold_timeout_seconds,
                created_at=now,
            )

        body = (
            code,
            name,
            currency,
            timezone,
            str(expiry_kind),
            expiry_value,
            hold_timeout_seconds,
        )
        return await self._executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint("program", *body),
            result_type=ProgramView,
            work=work,
        )

    async def enroll(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int | None = None,
        display_name: str | None = None,
        email: str | None = None,
    ) -> Replayable[EnrollmentResult]:
        """Enroll an existing member (``member_id``) or a new one (``display_name``)."""
        if (member_id is None) == (display_name is None):
            raise DomainError(
                ErrorCode.VALIDATION_FAILED, "give either member_id or display_name, not both"
            )

        async def work(conn: AsyncConnection) -> EnrollmentResult:
            now = self._executor.now()
            await require_program(conn, caller, program_id)
            if member_id is None:
                new_id = await conn.scalar(
                    members.insert()
                    .values(
                        merchant_id=caller.merchant_id,
                        display_name=display_name,
                        email=email,
                        created_at=now,
                    )
                    .returning(members.c.id)
                )
                assert new_id is not None
                enrolled_id = int(new_id)
            else:
                await require_member(conn, caller, member_id)
                enrolled_id = member_id
            try:
                async with conn.begin_nested():
                    account_id = await conn.scalar(
                        accounts.insert()
                        .values(
                            program_id=program_id,
                            member_id=enrolled_id,
                            kind="member",
                            created_at=now,
                        )
                        .returning(accounts.c.id)
                    )
            except IntegrityError:
                raise DomainError(
                    ErrorCode.ALREADY_ENROLLED, "the member is already enrolled in this program"
                ) from None
            assert account_id is not None
            return EnrollmentResult(
                member_id=enrolled_id,
                program_id=program_id,
                account_id=int(account_id),
                balance=Balance(posted=0, held=0, available=0),
            )

        body = (program_id, member_id, display_name, email)
        return await self._executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint("enroll", *body),
            result_type=EnrollmentResult,
            work=work,
        )


def _policy(kind: str, value: int, timezone: str) -> ExpiryPolicy:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(ErrorCode.VALIDATION_FAILED, f"unknown time zone {timezone!r}") from None
    try:
        return ExpiryPolicy(ExpiryKind(kind), value, timezone)
    except ValueError as error:
        raise DomainError(ErrorCode.VALIDATION_FAILED, str(error)) from None


def program_view(row: Any) -> ProgramView:
    return ProgramView(
        program_id=row.id,
        code=row.code,
        name=row.name,
        currency=row.currency,
        timezone=row.timezone,
        expiry_kind=row.expiry_kind,
        expiry_value=row.expiry_value,
        hold_timeout_seconds=row.hold_timeout_seconds,
        created_at=row.created_at,
    )
