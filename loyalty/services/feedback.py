"""The one Net Promoter question ("How likely are you to recommend us?", 0-10) with an optional
comment, asked in the wallet after a purchase and at most once per the program's interval.

The wallet asks when the member has made a purchase since they last answered or dismissed the
question, and that was at least ``feedback_interval_days`` ago (or never). A dismissal is kept
as an answer without a score: it counts as asked. The score of a period is the share of
promoters (9-10) minus the share of detractors (0-6), in percent, over the answers with a score.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from msgspec import Meta, Struct
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, feedback_answers, orders, programs
from loyalty.domain.errors import DomainError, ErrorCode

from .context import utc_now

Score = Annotated[int, Meta(ge=0, le=10)]
MAX_COMMENT = 2000


class FeedbackComment(Struct, frozen=True, kw_only=True):
    score: int
    comment: str
    at: datetime


class NetPromoterScore(Struct, frozen=True, kw_only=True):
    program_id: int
    since: datetime
    until: datetime
    answers: int
    promoters: int
    passives: int
    detractors: int
    #: Promoters minus detractors, in percent of the answers (None without answers).
    score: float | None
    comments: list[FeedbackComment]


def net_promoter_score(scores: list[int]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)


class Feedback:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def due(self, program_id: int, member_id: int) -> bool:
        """Whether the wallet should ask the member now."""

        async def work(conn: AsyncConnection) -> bool:
            return await _due(conn, program_id, member_id, self._clock())

        return await in_transaction(self._engine, work, read_only=True)

    async def answer(
        self, program_id: int, member_id: int, score: int | None, comment: str | None
    ) -> None:
        """Keep the member's answer (``score`` None: dismissed); ``feedback_not_due`` when the
        question was not asked now."""
        text = (comment or "").strip()[:MAX_COMMENT] or None

        async def work(conn: AsyncConnection) -> None:
            now = self._clock()
            if not await _due(conn, program_id, member_id, now):
                raise DomainError(
                    ErrorCode.FEEDBACK_NOT_DUE,
                    "the question is asked after a purchase, at most once per interval",
                )
            await conn.execute(
                feedback_answers.insert().values(
                    program_id=program_id,
                    member_id=member_id,
                    score=score,
                    comment=text if score is not None else None,
                    created_at=now,
                )
            )

        await in_transaction(self._engine, work)

    async def score(self, program_id: int, since: datetime, until: datetime) -> NetPromoterScore:
        async def work(conn: AsyncConnection) -> NetPromoterScore:
            rows = (
                await conn.execute(
                    select(
                        feedback_answers.c.score,
                        feedback_answers.c.comment,
                        feedback_answers.c.created_at,
                    )
                    .where(
                        feedback_answers.c.program_id == program_id,
                        feedback_answers.c.score.is_not(None),
                        feedback_answers.c.created_at >= since,
                        feedback_answers.c.created_at < until,
                    )
                    .order_by(feedback_answers.c.created_at.desc())
                )
            ).all()
            scores = [row.score for row in rows]
            return NetPromoterScore(
                program_id=program_id,
                since=since,
                until=until,
                answers=len(scores),
                promoters=sum(1 for s in scores if s >= 9),
                passives=sum(1 for s in scores if 7 <= s <= 8),
                detractors=sum(1 for s in scores if s <= 6),
                score=net_promoter_score(scores),
                comments=[
                    FeedbackComment(score=row.score, comment=row.comment, at=row.created_at)
                    for row in rows
                    if row.comment
                ],
            )

        return await in_transaction(self._engine, work, read_only=True)


async def _due(conn: AsyncConnection, program_id: int, member_id: int, now: datetime) -> bool:
    interval = await conn.scalar(
        select(programs.c.feedback_interval_days).where(programs.c.id == program_id)
    )
    if interval is None:
        return False
    last_asked = await conn.scalar(
        select(func.max(feedback_answers.c.created_at)).where(
            feedback_answers.c.program_id == program_id, feedback_answers.c.member_id == member_id
        )
    )
    if last_asked is not None and last_asked > now - timedelta(days=int(interval)):
        return False
    purchase = (
        select(orders.c.id)
        .join(accounts, accounts.c.id == orders.c.account_id)
        .where(accounts.c.program_id == program_id, accounts.c.member_id == member_id)
    )
    if last_asked is not None:
        purchase = purchase.where(orders.c.created_at > last_asked)
    return await conn.scalar(purchase.limit(1)) is not None
