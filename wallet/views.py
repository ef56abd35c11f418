"""What the wallet's pages show, gathered from the services and put in the member's words:
balance, tier and what it takes to reach the next or keep this one, points expiring soon,
activity, and the rewards with the affordable ones marked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loyalty.domain.errors import DomainError
from loyalty.services.context import Caller
from loyalty.services.queries import Queries
from loyalty.services.referrals import Invitation
from loyalty.services.results import HistoryItem, ProgramView
from loyalty.services.rewards import AvailableReward, Rewards
from loyalty.services.tiers import Tiers, TierStatusView

from .i18n import Formatter

#: Points expiring within this time are shown on the home page.
EXPIRY_HORIZON = timedelta(days=90)
HOME_HISTORY = 5
HISTORY_PAGE = 25


@dataclass(frozen=True, slots=True)
class Line:
    """One activity line: what happened, when, and the change in points."""

    label: str
    when: str
    delta: str
    positive: bool


@dataclass(frozen=True, slots=True)
class TierLine:
    name: str
    #: 0-100: the way from this tier's threshold to the next one's.
    progress: int
    next_text: str
    keep_text: str


@dataclass(frozen=True, slots=True)
class RewardLine:
    code: str
    name: str
    description: str
    points: str
    affordable: bool
    #: Why not (in words), when not affordable.
    note: str


@dataclass(frozen=True, slots=True)
class Expiring:
    points: str
    text: str


def caller_for(member_id: int, merchant_id: int) -> Caller:
    return Caller(client_id=f"wallet:{member_id}", merchant_id=merchant_id)


def _line(item: HistoryItem, fmt: Formatter) -> Line:
    label = fmt.texts().get(f"kind_{item.kind}", fmt.t("kind_other"))
    change = item.delta if item.delta else -item.held_delta
    sign = "+" if change > 0 else "\u2212" if change < 0 else "\u00b1"
    return Line(
        label=label,
        when=fmt.datetime(item.effective_at),
        delta=f"{sign}{fmt.points(abs(change))}",
        positive=change > 0,
    )


def _amount(status: TierStatusView, value: int, fmt: Formatter, currency: str) -> str:
    return fmt.points(value) if status.basis == "points" else fmt.money(value, currency)


def tier_line(status: TierStatusView, fmt: Formatter, currency: str) -> TierLine:
    name = getattr(status.current.name, fmt.language) or status.current.code
    if status.next is None or status.to_next is None:
        progress, next_text = 100, fmt.t("tier_top")
    else:
        span = max(status.next.threshold - status.current.threshold, 1)
        done = min(max(status.qualifying_total - status.current.threshold, 0), span)
        progress = round(100 * done / span)
        next_name = getattr(status.next.name, fmt.language) or status.next.code
        missing = _amount(status, status.to_next, fmt, currency)
        next_text = fmt.t("tier_next", missing=missing, tier=next_name)
    if status.to_keep > 0:
        keep_text = fmt.t(
            "tier_keep",
            missing=_amount(status, status.to_keep, fmt, currency),
            date=fmt.date(status.keep_by),
            tier=name,
        )
    else:
        keep_text = fmt.t("tier_kept", tier=name, date=fmt.date(status.keep_by))
    return TierLine(name=name, progress=progress, next_text=next_text, keep_text=keep_text)


def reward_line(offer: AvailableReward, available: int, fmt: Formatter) -> RewardLine:
    definition = offer.reward.definition
    note = ""
    affordable = offer.redeemable
    if not affordable:
        if offer.refusal == "insufficient_points":
            note = fmt.t("not_affordable", missing=fmt.points(offer.points_from - available))
        else:
            note = offer.refusal_detail or ""
    description = getattr(definition, "description", None)
    return RewardLine(
        code=offer.reward.code,
        name=getattr(definition.name, fmt.language) or offer.reward.code,
        description=getattr(description, fmt.language, "") if description is not None else "",
        points=fmt.points(offer.points_from),
        affordable=affordable,
        note=note,
    )


@dataclass(frozen=True, slots=True)
class Home:
    available: str
    held: str
    worth: str
    tier: TierLine | None
    expiring: list[Expiring]
    history: list[Line]
    rewards: list[RewardLine]
    balance_value: int
    #: Ask the Net Promoter question now.
    feedback_due: bool
    invitation: Invitation
    invite_link: str
    invite_text: str
    invite_counts: str
    #: The member has not accepted the program terms yet (the cashier enrolled them).
    terms_missing: bool


async def home(
    state: Any,
    member_id: int,
    merchant_id: int,
    program: ProgramView,
    fmt: Formatter,
    now: datetime,
) -> Home:
    """Everything on the home page (several reads; the page is not on the till's hot path)."""
    program_id = program.program_id
    queries: Queries = state.queries
    rewards: Rewards = state.rewards
    tiers: Tiers = state.tiers
    caller = caller_for(member_id, merchant_id)
    balance = await queries.balance(caller, program_id, member_id)
    page = await queries.history(caller, program_id, member_id, cursor=None, limit=HOME_HISTORY)
    offers = await rewards.available_rewards(caller, program_id, member_id)
    tier = None
    try:
        tier = tier_line(await tiers.status(caller, program_id, member_id), fmt, program.currency)
    except DomainError:
        tier = None  # the program has no tiers
    soon = [
        Expiring(points=fmt.points(e.points), text=fmt.t("expires_on", date=fmt.date(e.expires_at)))
        for e in balance.expiring
        if e.expires_at <= now + EXPIRY_HORIZON
    ]
    worth = balance.available * program.point_value_micros // 10_000
    invitation = await state.referrals.invitation(program_id, member_id)
    invite_text = (
        fmt.t("invite_lead", bonus=fmt.points(invitation.bonus_points))
        if invitation.bonus_points
        else fmt.t("invite_lead_plain")
    )
    return Home(
        available=fmt.number(balance.available),
        held=fmt.points(balance.held),
        worth=fmt.money(worth, program.currency),
        tier=tier,
        expiring=soon,
        history=[_line(item, fmt) for item in page.items],
        rewards=[reward_line(o, offers.available_points, fmt) for o in offers.rewards],
        balance_value=balance.available,
        feedback_due=await state.feedback.due(program_id, member_id),
        invitation=invitation,
        invite_link=f"{state.settings.base_url}/wallet/{program_id}?invite={invitation.code}",
        invite_text=invite_text,
        invite_counts=fmt.t(
            "invite_counts", joined=invitation.joined, converted=invitation.converted
        ),
        terms_missing=not any(
            c.kind == "terms" and c.granted
            for c in await state.enrollment.consents(member_id, program_id)
        ),
    )


async def history_page(
    state: Any,
    member_id: int,
    merchant_id: int,
    program_id: int,
    cursor: str | None,
    fmt: Formatter,
) -> tuple[list[Line], str | None]:
    queries: Queries = state.queries
    page = await queries.history(
        caller_for(member_id, merchant_id), program_id, member_id, cursor=cursor, limit=HISTORY_PAGE
    )
    return [_line(item, fmt) for item in page.items], page.next_cursor


async def rewards_page(
    state: Any, member_id: int, merchant_id: int, program_id: int, fmt: Formatter
) -> list[RewardLine]:
    rewards: Rewards = state.rewards
    offers = await rewards.available_rewards(
        caller_for(member_id, merchant_id), program_id, member_id
    )
    return [reward_line(o, offers.available_points, fmt) for o in offers.rewards]
