"""Programs and members: creating a program with its system accounts, enrolling members.

Issue-3 material (rules, tiers, rewards) builds on these rows; here a program is what the
ledger needs: currency, expiry policy, time zone and the default hold timeout.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, members, programs
from loyalty.domain.adjustments import DEFAULT_APPROVAL_THRESHOLD, limits_in_force
from loyalty.domain.card_style import CardStyle, CardStyleError
from loyalty.domain.earning import Rounding
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy

from .audit import record_change
from .context import Caller, Staff
from .idempotency import IdempotentExecutor, Replayable, fingerprint
from .ledger_writes import SYSTEM_ACCOUNT_KINDS
from .lookups import require_member, require_program
from .membership import create_member, open_account
from .results import Balance, EnrollmentResult, ProgramView
from .rule_documents import RoundingName
from .rule_sets import insert_starter_rules


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
        settings: ProgramSettings | None = None,
        staff: Staff | None = None,
    ) -> Replayable[ProgramView]:
        """A program with its system accounts and rule-set version 1 (one point per unit of
        currency, in force at once). ``staff`` (the program-manager API) is audited."""
        policy = _policy(expiry_kind, expiry_value, timezone)
        extra = settings or ProgramSettings(name_de=name, name_en=name)
        _check_settings(extra)

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
                    **msgspec.structs.asdict(extra),
                )
                .returning(programs.c.id)
            )
            assert program_id is not None
            actor = _actor(caller, staff)
            await insert_starter_rules(conn, program_id, now, actor, extra.rounding)
            await conn.execute(
                accounts.insert(),
                [
                    {"program_id": program_id, "member_id": None, "kind": kind, "created_at": now}
                    for kind in SYSTEM_ACCOUNT_KINDS
                ],
            )
            view = await program_by_id(conn, caller, program_id)
            if staff is not None:
                await record_change(
                    conn,
                    staff,
                    action="program.create",
                    entity="program",
                    entity_id=program_id,
                    after=view,
                    program_id=program_id,
                    at=now,
                )
            return view

        body = (
            code,
            name,
            currency,
            timezone,
            str(expiry_kind),
            expiry_value,
            hold_timeout_seconds,
            extra,
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
                assert display_name is not None
                enrolled_id = await create_member(
                    conn, caller.merchant_id, display_name=display_name, email=email, at=now
                )
            else:
                await require_member(conn, caller, member_id)
                enrolled_id = member_id
            account_id = await open_account(conn, program_id, enrolled_id, now)
            return EnrollmentResult(
                member_id=enrolled_id,
                program_id=program_id,
                account_id=account_id,
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

    async def update_program(
        self, staff: Staff, program_id: int, changes: ProgramChanges
    ) -> ManagedProgramView:
        """Change a program's names, descriptions, point value, rounding, hold timeout or
        adjustment policy (audited). Currency, time zone and expiry stay: points already issued
        depend on them."""

        async def work(conn: AsyncConnection) -> ManagedProgramView:
            now = self._executor.now()
            before = await managed_program_by_id(conn, staff.caller, program_id, for_update=True)
            values = {
                name: value
                for name, value in msgspec.structs.asdict(changes).items()
                if value is not None and value is not UNSET
            }
            if changes.adjustment_limits is not UNSET:
                # null is a value here: back to the defaults.
                values["adjustment_limits"] = changes.adjustment_limits
            merged = ProgramSettings(
                **{
                    field: values.get(field, getattr(before, field))
                    for field in ProgramSettings.__struct_fields__
                }
            )
            _check_settings(merged)
            _check_card_colours(before, values)
            if "hold_timeout_seconds" in values and values["hold_timeout_seconds"] <= 0:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED, "hold_timeout_seconds must be positive"
                )
            if values:
                await conn.execute(
                    programs.update()
                    .where(programs.c.id == program_id)
                    .values(**values, updated_at=now)
                )
            after = await managed_program_by_id(conn, staff.caller, program_id)
            await record_change(
                conn,
                staff,
                action="program.update",
                entity="program",
                entity_id=program_id,
                before=before,
                after=after,
                program_id=program_id,
                at=now,
            )
            return after

        return await in_transaction(self._executor.engine, work)

    async def managed_programs(self, caller: Caller) -> list[ManagedProgramView]:
        """The merchant's programs as their managers see them."""

        async def work(conn: AsyncConnection) -> list[ManagedProgramView]:
            rows = await conn.execute(
                select(programs)
                .where(programs.c.merchant_id == caller.merchant_id)
                .order_by(programs.c.id)
            )
            return [managed_program_view(row) for row in rows]

        return await in_transaction(self._executor.engine, work, read_only=True)

    async def managed_program(self, caller: Caller, program_id: int) -> ManagedProgramView:
        async def work(conn: AsyncConnection) -> ManagedProgramView:
            return await managed_program_by_id(conn, caller, program_id)

        return await in_transaction(self._executor.engine, work, read_only=True)

    async def set_segments(
        self, staff: Staff, program_id: int, member_id: int, segments: list[str]
    ) -> SegmentsView:
        """Replace an enrolled member's segments (audited)."""

        async def work(conn: AsyncConnection) -> SegmentsView:
            now = self._executor.now()
            await require_program(conn, staff.caller, program_id)
            enrolled = await conn.scalar(
                select(
                    exists().where(
                        accounts.c.program_id == program_id, accounts.c.member_id == member_id
                    )
                )
            )
            if not enrolled:
                await require_member(conn, staff.caller, member_id)
                raise DomainError(ErrorCode.NOT_ENROLLED, "the member is not in this program")
            before = await conn.scalar(select(members.c.segments).where(members.c.id == member_id))
            cleaned = sorted(set(segments))
            await conn.execute(
                members.update().where(members.c.id == member_id).values(segments=cleaned)
            )
            await record_change(
                conn,
                staff,
                action="member.set_segments",
                entity="member",
                entity_id=member_id,
                before={"segments": before or []},
                after={"segments": cleaned},
                program_id=program_id,
                at=now,
            )
            return SegmentsView(member_id=member_id, segments=cleaned)

        return await in_transaction(self._executor.engine, work)


class SegmentsView(msgspec.Struct, frozen=True):
    member_id: int
    segments: list[str]


class ProgramSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a manager sets beyond the ledger's needs: texts, point value and rounding."""

    name_de: str = ""
    name_en: str = ""
    description_de: str = ""
    description_en: str = ""
    #: What one point is worth in millionths of the currency unit (10_000 = 0.01 EUR).
    point_value_micros: int = 10_000
    rounding: str = "down"


Text200 = Annotated[str, msgspec.Meta(max_length=200)]
Text2000 = Annotated[str, msgspec.Meta(max_length=2000)]
PointValue = Annotated[
    int,
    msgspec.Meta(
        description="What one point is worth, in millionths of the currency unit "
        "(10000 = 0.01 EUR); the basis of the points liability.",
        examples=[10_000],
    ),
]


HexColour = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#12355b"])]


class ProgramChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A manager's change to a program (the request body as it is): only the fields sent
    change."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    name_de: Text200 | None = None
    name_en: Text200 | None = None
    description_de: Text2000 | None = None
    description_en: Text2000 | None = None
    point_value_micros: PointValue | None = None
    rounding: RoundingName | None = None
    hold_timeout_seconds: Annotated[int, msgspec.Meta(ge=5, le=604_800)] | None = None
    #: Points a member identified by static card number, phone or email may redeem per sale.
    static_redeem_cap: Annotated[int, msgspec.Meta(ge=0, le=10**12)] | None = None
    #: Whether a refund gives the sale's redeemed points back ("return") or not ("keep").
    redeemed_on_refund: Literal["return", "keep"] | None = None
    #: Points the inviting and the invited member each earn at the invited one's first
    #: purchase (0: no referral bonus).
    referral_bonus_points: Annotated[int, msgspec.Meta(ge=0, le=10**9)] | None = None
    #: The wallet asks a member the Net Promoter question at most once in this many days.
    feedback_interval_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    #: The card's colours, #rrggbb; set together so they can be checked for contrast.
    card_background: HexColour | None = None
    card_foreground: HexColour | None = None
    card_accent: HexColour | None = None
    #: Manual adjustments of more points than this (either sign) wait for a second staff
    #: member's approval (0: all of them).
    adjustment_approval_threshold: Annotated[int, msgspec.Meta(ge=0, le=10**12)] | None = None
    #: The most points one adjustment of each role may move (null for a role: no limit; a
    #: role left out may not adjust). Send null to go back to the defaults.
    adjustment_limits: AdjustmentLimits | UnsetType | None = UNSET


AdjustmentLimits = Annotated[
    dict[
        Literal["owner", "program_manager", "support"],
        Annotated[int, msgspec.Meta(ge=0, le=10**12)] | None,
    ],
    msgspec.Meta(examples=[{"owner": None, "support": 10_000, "program_manager": 2_000}]),
]


class ManagedProgramView(ProgramView, frozen=True, kw_only=True):
    """A program as its managers see it: with the manual-adjustment policy."""

    adjustment_approval_threshold: int = DEFAULT_APPROVAL_THRESHOLD
    #: The program's own table (None: the defaults apply).
    adjustment_limits: dict[str, int | None] | None = None
    #: The table that applies (the program's own or the defaults).
    adjustment_limits_in_force: dict[str, int | None] = {}


def _check_card_colours(before: ProgramView, values: dict[str, Any]) -> None:
    """The card's colours as they will be, checked together (text and accent must be legible
    on the background: WCAG contrast); all three or none."""
    names = ("card_background", "card_foreground", "card_accent")
    if not any(name in values for name in names):
        return
    colours = [values.get(name, getattr(before, name)) for name in names]
    if any(colour is None for colour in colours):
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            "set card_background, card_foreground and card_accent together",
            field="card_background",
        )
    try:
        CardStyle(*colours)
    except CardStyleError as error:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED, str(error), field="card_foreground"
        ) from None
    values.update(dict(zip(names, (c.lower() for c in colours), strict=True)))


def _check_settings(settings: ProgramSettings) -> None:
    if settings.point_value_micros < 0:
        raise DomainError(ErrorCode.INVALID_RATE, "point_value_micros must not be negative")
    if settings.rounding not in {str(r) for r in Rounding}:
        raise DomainError(ErrorCode.VALIDATION_FAILED, "rounding must be one of down, half_up, up")


def _actor(caller: Caller, staff: Staff | None) -> str:
    if staff is not None:
        return staff.label
    return f"api:{caller.client_id}"


async def program_by_id(
    conn: AsyncConnection, caller: Caller, program_id: int, *, for_update: bool = False
) -> ProgramView:
    query = select(programs).where(
        programs.c.id == program_id, programs.c.merchant_id == caller.merchant_id
    )
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
    return program_view(row)


def _policy(kind: str, value: int, timezone: str) -> ExpiryPolicy:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(ErrorCode.VALIDATION_FAILED, f"unknown time zone {timezone!r}") from None
    try:
        return ExpiryPolicy(ExpiryKind(kind), value, timezone)
    except ValueError as error:
        raise DomainError(ErrorCode.VALIDATION_FAILED, str(error)) from None


async def managed_program_by_id(
    conn: AsyncConnection, caller: Caller, program_id: int, *, for_update: bool = False
) -> ManagedProgramView:
    query = select(programs).where(
        programs.c.id == program_id, programs.c.merchant_id == caller.merchant_id
    )
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
    return managed_program_view(row)


def managed_program_view(row: Any) -> ManagedProgramView:
    return ManagedProgramView(
        **msgspec.structs.asdict(program_view(row)),
        adjustment_approval_threshold=row.adjustment_approval_threshold,
        adjustment_limits=row.adjustment_limits,
        adjustment_limits_in_force=limits_in_force(row.adjustment_limits),
    )


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
        point_value_micros=row.point_value_micros,
        rounding=row.rounding,
        name_de=row.name_de or "",
        name_en=row.name_en or "",
        description_de=row.description_de or "",
        description_en=row.description_en or "",
        static_redeem_cap=row.static_redeem_cap,
        redeemed_on_refund=row.redeemed_on_refund,
        referral_bonus_points=row.referral_bonus_points,
        feedback_interval_days=row.feedback_interval_days,
        card_background=row.card_background,
        card_foreground=row.card_foreground,
        card_accent=row.card_accent,
    )
