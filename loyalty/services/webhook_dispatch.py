"""Outgoing webhooks at work: finding events after the fact and sending them.

Nothing here runs on a request's path. The ledger writes its journals and tier changes as it
always did; :class:`WebhookDispatcher` (run by the app's background task every few seconds, or
by ``loyalty webhooks deliver``) reads them afterwards and queues one delivery per event and
endpoint, then sends what is due with ``httpx`` and its own timeouts. A slow or dead receiver
costs a background task its time, never a till its answer.

Finding events. Each source (journals, tier changes) is read by id from a cursor in
``webhook_cursors``; a delivery's ``(endpoint_id, event_id)`` is unique, so reading an event
twice queues it once. On PostgreSQL ids are handed out before commit, so a transaction holding
a lower id may commit after a higher id was read; the dispatcher therefore reads everything
above its durable cursor on every pass and moves the durable cursor only past ids that were
already visible at least ``lag`` ago (an id below one that was visible then was handed out
before it, so its transaction is either committed by now or has stayed open longer than
``lag``). An event is missed only if the transaction that wrote it stays open longer than
``lag`` (60 s by default) after writing it; ledger transactions take milliseconds. The price is
re-reading the ids of the last one to two ``lag`` periods on every pass, which the unique key
turns into no-ops. On SQLite, where one writer commits at a time, ids become visible in order
and the cursor follows the last id read. The cursor row is locked (``FOR UPDATE SKIP LOCKED``)
for the pass, so several app processes never read the same source at once: the others skip it.

Expiring points are found once a day (the cursor holds the day): free points whose last valid
day lies within ``expiring_within_days`` days give one ``points.expiring_soon`` event per
member and day. Points earned later with a last valid day already inside that window are
announced at the next day's scan.

Sending. A pass claims due deliveries (``next_attempt_at <= now``, oldest first, with
``FOR UPDATE SKIP LOCKED`` so that processes share the work) by moving ``next_attempt_at`` a
lease ahead, commits, and only then makes the HTTP requests, so no transaction is open while a
receiver thinks. A 2xx answer delivers; anything else, a timeout or a refused connection is a
failed attempt, retried by the schedule of ``loyalty.domain.webhooks``, and after the last
attempt the delivery has failed. Every attempt is written to ``webhook_attempts``. A process
that dies after claiming leaves its deliveries to be claimed again when the lease runs out, so
delivery is at least once: receivers deduplicate on ``webhook-id``.

Members erased under the DSGVO get no events, and a queued delivery about a member erased
since is not sent (it is marked failed, "member erased").
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import msgspec
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import __version__
from loyalty.db.engine import database_now, in_transaction, is_postgres
from loyalty.db.tables import (
    accounts,
    journals,
    lots,
    members,
    programs,
    tier_changes,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
)
from loyalty.domain import webhooks as wh
from loyalty.domain.webhooks import DeliveryStatus, EventType

from .context import utc_now
from .secret_box import SecretBox, UnreadableSecretError

log = logging.getLogger("loyalty.webhooks")

#: How often the app's background task runs a pass (at most; never more often than the sweep).
WEBHOOK_INTERVAL_SECONDS = 5.0
#: How long a stopping app waits for a pass under way (longer than one request may take).
WEBHOOK_STOP_SECONDS = 15.0
USER_AGENT = f"loyalty-webhooks/{__version__}"
#: What of a refusing receiver's answer the log keeps.
ERROR_BODY_CHARS = 200
MAX_ERROR_CHARS = 500
JOURNALS_SOURCE = "journals"
TIERS_SOURCE = "tier_changes"
EXPIRING_SOURCE = "expiring_soon"


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    #: PostgreSQL: how long an id must have been visible before the durable cursor passes it.
    lag: timedelta = timedelta(seconds=60)
    #: Notice period of ``points.expiring_soon``, in days.
    expiring_within_days: int = 14
    #: Rows of a source read per query, and queries per transaction on PostgreSQL (SQLite
    #: commits after each, so that tills never wait long for its single write lock).
    scan_batch: int = 500
    scan_batches_per_transaction: int = 40
    #: Member accounts with expiring points handled per transaction.
    expiring_batch: int = 200
    #: Deliveries claimed per pass, and requests in flight at once.
    send_batch: int = 50
    concurrency: int = 8
    #: Per request: the whole exchange, and establishing the connection.
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    #: A claimed delivery is claimed again after this, if its sender died.
    lease: timedelta = timedelta(minutes=2)


class FoundEvents(msgspec.Struct, frozen=True):
    queued: int

    def __str__(self) -> str:
        return f"webhooks: {self.queued} deliveries queued"


class SentDeliveries(msgspec.Struct, frozen=True):
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def __str__(self) -> str:
        return (
            f"webhooks: {self.delivered} delivered, {self.retrying} to retry, {self.failed} failed"
        )


class DispatchResult(msgspec.Struct, frozen=True):
    found: FoundEvents
    sent: SentDeliveries

    def __str__(self) -> str:
        return f"{self.found}; {self.sent}"


@dataclass(frozen=True, slots=True)
class _Claimed:
    delivery_id: int
    event_id: str
    payload: dict[str, Any]
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    table: Table
    event_types: frozenset[EventType]
    read: Callable[
        [AsyncConnection, int, int, Sequence[int], int], Awaitable[tuple[list[wh.Event], int]]
    ]


@dataclass
class _Pass:
    """One transaction's work on one source."""

    queued: int = 0
    more: bool = False
    locked: bool = False
    #: How far it read.
    position: int = 0


class WebhookDispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        clock: Callable[[], datetime] = utc_now,
        *,
        settings: DispatchSettings | None = None,
        random: Callable[[], float] = random_module.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``random`` spreads the retry delays (tests pass a constant); ``transport`` replaces
        the network (tests)."""
        self._engine = engine
        self._box = box
        self._clock = clock
        self.settings = settings or DispatchSettings()
        self._random = random
        self._transport = transport
        self._sources = (
            _Source(JOURNALS_SOURCE, journals, wh.JOURNAL_EVENTS, _journal_events),
            _Source(TIERS_SOURCE, tier_changes, frozenset({EventType.TIER_CHANGED}), _tier_events),
        )

    async def run_once(self) -> DispatchResult:
        """One pass: queue the events found since the last pass, then send what is due."""
        found = await self.find_events()
        sent = await self.send_due()
        return DispatchResult(found=found, sent=sent)

    # --- finding events ------------------------------------------------------------------------

    async def find_events(self) -> FoundEvents:
        subscriptions = await in_transaction(self._engine, _subscriptions, read_only=True)
        queued = 0
        for source in self._sources:
            queued += await self._drain(partial(self._scan_source, source, subscriptions))
        queued += await self._drain(partial(self._scan_expiring, subscriptions))
        return FoundEvents(queued=queued)

    async def _drain(self, scan: Callable[..., Awaitable[_Pass]]) -> int:
        """Run ``scan`` transaction after transaction while it has more to read; each goes on
        where the one before stopped (``resume_after``)."""
        queued = 0
        resume_after: int | None = None
        for _ in range(1000):  # bounded: a pass ends even while a flood of journals arrives
            done = await in_transaction(self._engine, partial(scan, resume_after=resume_after))
            queued += done.queued
            if not done.more or done.locked:
                break
            resume_after = done.position
        return queued

    async def _scan_source(
        self,
        source: _Source,
        subscriptions: list[wh.Subscription],
        conn: AsyncConnection,
        *,
        resume_after: int | None,
    ) -> _Pass:
        now = self._clock()
        top = int(await conn.scalar(select(func.max(source.table.c.id))) or 0)
        relevant = [s for s in subscriptions if s.events & {str(t) for t in source.event_types}]
        # A new cursor starts where the ledger stands when no endpoint listens yet (the usual
        # case: the app's first pass comes before anyone configured an endpoint); else at the
        # beginning, and each endpoint gets what happened from its creation on.
        durable = await _lock_cursor(conn, source.name, start=0 if relevant else top, now=now)
        if durable is None:
            return _Pass(locked=True)
        merchant_ids = sorted({s.merchant_id for s in relevant})
        postgres = is_postgres(conn)
        batches = self.settings.scan_batches_per_transaction if postgres else 1
        result = _Pass()
        # Within one pass (PostgreSQL), a later transaction goes on where the earlier stopped.
        position = max(durable, resume_after or 0)
        if not relevant:
            position = max(durable, top)
        else:
            for _ in range(batches):
                events, last_id = await source.read(
                    conn, position, top, merchant_ids, self.settings.scan_batch
                )
                result.queued += await _enqueue(conn, events, relevant, now)
                if last_id == 0:  # nothing more up to ``top``
                    position = max(position, top)
                    break
                position = last_id
            else:
                result.more = True
        result.position = position
        if postgres:
            await self._advance_after_lag(conn, source.name, durable, position, top, now)
        elif position != durable:
            await _set_cursor(conn, source.name, position, now)
        return result

    async def _advance_after_lag(
        self, conn: AsyncConnection, name: str, durable: int, position: int, top: int, now: datetime
    ) -> None:
        # ``name:seen`` remembers the highest id visible at a database time; once that time is
        # ``lag`` old, no id at or below it can still appear (short of a transaction open for
        # longer than ``lag``), so the durable cursor may pass it, as far as was read.
        seen_name = f"{name}:seen"
        db_now = await database_now(conn)  # after ``top`` was read: an upper bound on its time
        seen = (
            await conn.execute(
                select(webhook_cursors.c.last_id, webhook_cursors.c.updated_at).where(
                    webhook_cursors.c.source == seen_name
                )
            )
        ).first()
        if seen is not None and seen.updated_at > db_now - self.settings.lag:
            return
        if seen is not None:
            passed = max(durable, min(int(seen.last_id), position))
            if passed != durable:
                await _set_cursor(conn, name, passed, now)
        await _upsert_cursor(conn, seen_name, top, db_now)

    async def _scan_expiring(
        self,
        subscriptions: list[wh.Subscription],
        conn: AsyncConnection,
        *,
        resume_after: int | None,
    ) -> _Pass:
        now = self._clock()
        today = now.date().toordinal()
        done_day = await _lock_cursor(conn, EXPIRING_SOURCE, start=today - 1, now=now)
        if done_day is None:
            return _Pass(locked=True)
        if done_day >= today:
            return _Pass()
        relevant = [s for s in subscriptions if str(EventType.POINTS_EXPIRING_SOON) in s.events]
        if not relevant:
            await _set_cursor(conn, EXPIRING_SOURCE, today, now)
            return _Pass()
        account_name = f"{EXPIRING_SOURCE}:account"
        after_account = int(
            await conn.scalar(
                select(webhook_cursors.c.last_id).where(webhook_cursors.c.source == account_name)
            )
            or 0
        )
        days = self.settings.expiring_within_days
        # Two days more than the notice period in UTC: the local day decides, in the domain.
        window = (lots.c.expires_at > now, lots.c.expires_at <= now + timedelta(days=days + 2))
        merchant_ids = sorted({s.merchant_id for s in relevant})
        account_ids = [
            row[0]
            for row in await conn.execute(
                select(lots.c.account_id)
                .join(accounts, accounts.c.id == lots.c.account_id)
                .join(programs, programs.c.id == accounts.c.program_id)
                .where(
                    *window,
                    lots.c.remaining > lots.c.held,
                    lots.c.account_id > after_account,
                    programs.c.merchant_id.in_(merchant_ids),
                )
                .group_by(lots.c.account_id)
                .order_by(lots.c.account_id)
                .limit(self.settings.expiring_batch)
            )
        ]
        events: list[wh.Event] = []
        if account_ids:
            rows = await conn.execute(
                select(
                    lots.c.account_id,
                    (lots.c.remaining - lots.c.held).label("free"),
                    lots.c.expires_at,
                    accounts.c.member_id,
                    accounts.c.program_id,
                    programs.c.code,
                    programs.c.merchant_id,
                    programs.c.timezone,
                )
                .join(accounts, accounts.c.id == lots.c.account_id)
                .join(programs, programs.c.id == accounts.c.program_id)
                .join(members, members.c.id == accounts.c.member_id)
                .where(
                    *window,
                    lots.c.remaining > lots.c.held,
                    lots.c.account_id.in_(account_ids),
                    members.c.deleted_at.is_(None),
                )
            )
            free_lots = [
                wh.FreeLot(
                    account_id=row.account_id,
                    member_id=row.member_id,
                    program=wh.ProgramRef(row.program_id, row.code, row.merchant_id),
                    timezone=row.timezone,
                    free=int(row.free),
                    expires_at=row.expires_at,
                )
                for row in rows
            ]
            events = wh.expiring_soon_events(free_lots, now, days)
        queued = await _enqueue(conn, events, relevant, now)
        if len(account_ids) < self.settings.expiring_batch:
            await _set_cursor(conn, EXPIRING_SOURCE, today, now)
            await _upsert_cursor(conn, account_name, 0, now)
            return _Pass(queued=queued)
        await _upsert_cursor(conn, account_name, account_ids[-1], now)
        return _Pass(queued=queued, more=True)

    # --- sending -------------------------------------------------------------------------------

    async def send_due(self) -> SentDeliveries:
        """Claim and send the deliveries whose time has come (one batch)."""
        now = self._clock()
        claimed = await in_transaction(self._engine, partial(self._claim, now=now, ids=None))
        return await self._send(claimed)

    async def deliver_now(self, delivery_ids: Iterable[int]) -> SentDeliveries:
        """Attempt these pending deliveries at once, whatever their schedule (a test message)."""
        now = self._clock()
        ids = list(delivery_ids)
        claimed = await in_transaction(self._engine, partial(self._claim, now=now, ids=ids))
        return await self._send(claimed)

    async def _claim(
        self, conn: AsyncConnection, *, now: datetime, ids: list[int] | None
    ) -> list[_Claimed]:
        query = (
            select(
                webhook_deliveries.c.id,
                webhook_deliveries.c.event_id,
                webhook_deliveries.c.event_type,
                webhook_deliveries.c.payload,
                webhook_deliveries.c.attempts,
                webhook_endpoints.c.url,
                webhook_endpoints.c.secret_sealed,
            )
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
            .where(
                webhook_deliveries.c.status == DeliveryStatus.PENDING,
                webhook_endpoints.c.disabled_at.is_(None),
            )
        )
        if ids is None:
            query = (
                query.where(webhook_deliveries.c.next_attempt_at <= now)
                .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
                .limit(self.settings.send_batch)
            )
        else:
            query = query.where(webhook_deliveries.c.id.in_(ids))
        rows = (
            await conn.execute(query.with_for_update(of=webhook_deliveries, skip_locked=True))
        ).all()
        if not rows:
            return []
        erased = await _erased_members(conn, [row.payload for row in rows])
        claimed: list[_Claimed] = []
        refused: dict[int, str] = {}
        for row in rows:
            member_ids = _member_ids(row.payload)
            if member_ids & erased:
                refused[row.id] = "member erased: not sent"
                continue
            try:
                secret = self._box.open(row.secret_sealed)
            except UnreadableSecretError:
                refused[row.id] = "the signing secret does not open with this server key: rotate it"
                continue
            claimed.append(
                _Claimed(row.id, row.event_id, row.payload, row.attempts, row.url, secret)
            )
        for delivery_id, reason in refused.items():
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(status=str(DeliveryStatus.FAILED), next_attempt_at=None, last_error=reason)
            )
        if claimed:
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_([c.delivery_id for c in claimed]))
                .values(next_attempt_at=now + self.settings.lease)
            )
        return claimed

    async def _send(self, claimed: list[_Claimed]) -> SentDeliveries:
        if not claimed:
            return SentDeliveries()
        settings = self.settings
        timeout = httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        gate = asyncio.Semaphore(settings.concurrency)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=self._transport
        ) as client:

            async def one(delivery: _Claimed) -> DeliveryStatus:
                async with gate:
                    return await self._attempt(client, delivery)

            outcomes = await asyncio.gather(*(one(delivery) for delivery in claimed))
        return SentDeliveries(
            delivered=outcomes.count(DeliveryStatus.DELIVERED),
            retrying=outcomes.count(DeliveryStatus.PENDING),
            failed=outcomes.count(DeliveryStatus.FAILED),
        )

    async def _attempt(self, client: httpx.AsyncClient, delivery: _Claimed) -> DeliveryStatus:
        body = msgspec.json.encode(delivery.payload)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **wh.signature_headers(delivery.secret, delivery.event_id, self._clock(), body),
        }
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            async with client.stream("POST", delivery.url, content=body, headers=headers) as answer:
                status_code = answer.status_code
                if not wh.accepted(status_code):
                    error = f"HTTP {status_code}{await _answer_excerpt(answer)}"
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.timeout_seconds:g} s"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return await in_transaction(
            self._engine,
            partial(
                self._record,
                delivery=delivery,
                status_code=status_code,
                error=None if error is None else error[:MAX_ERROR_CHARS],
                duration_ms=duration_ms,
            ),
        )

    async def _record(
        self,
        conn: AsyncConnection,
        *,
        delivery: _Claimed,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
    ) -> DeliveryStatus:
        at = self._clock()
        attempts = delivery.attempts + 1
        outcome = wh.after_attempt(status_code, attempts, at, self._random())
        await conn.execute(
            webhook_attempts.insert().values(
                delivery_id=delivery.delivery_id,
                at=at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
        )
        # Only the claim this attempt was made under: a replay in the meantime starts afresh.
        await conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.id == delivery.delivery_id,
                webhook_deliveries.c.status == DeliveryStatus.PENDING,
                webhook_deliveries.c.attempts == delivery.attempts,
            )
            .values(
                status=str(outcome.status),
                attempts=attempts,
                next_attempt_at=outcome.next_attempt_at,
                last_status_code=status_code,
                last_error=error,
                delivered_at=at if outcome.status is DeliveryStatus.DELIVERED else None,
            )
        )
        return outcome.status


# --- queueing ------------------------------------------------------------------------------


async def _subscriptions(conn: AsyncConnection) -> list[wh.Subscription]:
    rows = await conn.execute(
        select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.merchant_id,
            webhook_endpoints.c.program_id,
            webhook_endpoints.c.events,
            webhook_endpoints.c.created_at,
        ).where(webhook_endpoints.c.disabled_at.is_(None))
    )
    return [
        wh.Subscription(
            endpoint_id=row.id,
            merchant_id=row.merchant_id,
            program_id=row.program_id,
            events=frozenset(row.events),
            created_at=row.created_at,
        )
        for row in rows
    ]


async def enqueue_one(
    conn: AsyncConnection,
    *,
    endpoint_id: int,
    event_id: str,
    event_type: EventType,
    payload: dict[str, Any],
    at: datetime,
) -> int:
    """Queue one delivery, due now (a test message)."""
    delivery_id = await conn.scalar(
        webhook_deliveries.insert()
        .values(
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=str(event_type),
            payload=payload,
            status=str(DeliveryStatus.PENDING),
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
        .returning(webhook_deliveries.c.id)
    )
    assert delivery_id is not None
    return int(delivery_id)


def new_test_event_id() -> str:
    return f"test:{secrets.token_hex(16)}"


async def _enqueue(
    conn: AsyncConnection,
    events: Sequence[wh.Event],
    subscriptions: Sequence[wh.Subscription],
    now: datetime,
) -> int:
    """Queue each event for each endpoint that receives it, once: pairs already queued are
    left out here, and the unique key settles a race with another process."""
    wanted = {
        (subscription.endpoint_id, event.event_id): event
        for event in events
        for subscription in subscriptions
        if wh.receives(subscription, event)
    }
    if not wanted:
        return 0
    event_ids = sorted({event_id for _, event_id in wanted})
    endpoint_ids = sorted({endpoint_id for endpoint_id, _ in wanted})
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        rows = await conn.execute(
            select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id).where(
                webhook_deliveries.c.endpoint_id.in_(endpoint_ids),
                webhook_deliveries.c.event_id.in_(chunk),
            )
        )
        for row in rows:
            wanted.pop((row.endpoint_id, row.event_id), None)
    if not wanted:
        return 0
    values = [
        {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": str(event.type),
            "payload": event.payload,
            "status": str(DeliveryStatus.PENDING),
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for (endpoint_id, event_id), event in wanted.items()
    ]
    insert = pg_insert if is_postgres(conn) else sqlite_insert
    await conn.execute(
        insert(webhook_deliveries).on_conflict_do_nothing(
            index_elements=[webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id]
        ),
        values,
    )
    return len(values)


# --- cursors -------------------------------------------------------------------------------


async def _lock_cursor(
    conn: AsyncConnection, name: str, *, start: int, now: datetime
) -> int | None:
    """The cursor's position, locked for this transaction; None while another process holds
    it. A cursor seen for the first time starts at ``start``: history before the first pass is
    not announced."""
    value = await conn.scalar(
        select(webhook_cursors.c.last_id)
        .where(webhook_cursors.c.source == name)
        .with_for_update(skip_locked=True)
    )
    if value is not None:
        return int(value)
    insert = pg_insert if is_postgres(conn) else sqlite_insert
    created = await conn.scalar(
        insert(webhook_cursors)
        .values(source=name, last_id=start, updated_at=now)
        .on_conflict_do_nothing(index_elements=[webhook_cursors.c.source])
        .returning(webhook_cursors.c.source)
    )
    # Not created: the row exists, so it was skipped as locked.
    return start if created is not None else None


async def _set_cursor(conn: AsyncConnection, name: str, last_id: int, now: datetime) -> None:
    await conn.execute(
        update(webhook_cursors)
        .where(webhook_cursors.c.source == name)
        .values(last_id=last_id, updated_at=now)
    )


async def _upsert_cursor(conn: AsyncConnection, name: str, last_id: int, at: datetime) -> None:
    insert = pg_insert if is_postgres(conn) else sqlite_insert
    statement = insert(webhook_cursors).values(source=name, last_id=last_id, updated_at=at)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[webhook_cursors.c.source],
            set_={"last_id": last_id, "updated_at": at},
        )
    )


# --- sources -------------------------------------------------------------------------------


async def _journal_events(
    conn: AsyncConnection, after: int, up_to: int, merchant_ids: Sequence[int], limit: int
) -> tuple[list[wh.Event], int]:
    """Events of the journals with ids in (after, up_to] of these merchants (``limit`` rows);
    the last id read, 0 when none was left."""
    counter = accounts.alias("counter")
    counter_member = members.alias("counter_member")
    rows = (
        await conn.execute(
            select(
                journals.c.id,
                journals.c.kind,
                journals.c.delta,
                journals.c.created_at,
                journals.c.effective_at,
                journals.c.reference,
                journals.c.reverses_id,
                journals.c.program_id,
                programs.c.code,
                programs.c.merchant_id,
                accounts.c.member_id,
                members.c.deleted_at,
                counter.c.member_id.label("counter_member_id"),
                counter_member.c.deleted_at.label("counter_deleted_at"),
            )
            .join(programs, programs.c.id == journals.c.program_id)
            .join(accounts, accounts.c.id == journals.c.account_id)
            .join(members, members.c.id == accounts.c.member_id)
            .outerjoin(counter, counter.c.id == journals.c.counter_account_id)
            .outerjoin(counter_member, counter_member.c.id == counter.c.member_id)
            .where(
                journals.c.id > after,
                journals.c.id <= up_to,
                journals.c.kind.in_(wh.JOURNAL_KINDS_WITH_EVENTS),
                programs.c.merchant_id.in_(merchant_ids),
            )
            .order_by(journals.c.id)
            .limit(limit)
        )
    ).all()
    events = []
    for row in rows:
        if row.deleted_at is not None or row.counter_deleted_at is not None:
            continue  # erased: no event about them
        event = wh.journal_event(
            wh.JournalFact(
                journal_id=row.id,
                kind=row.kind,
                delta=row.delta,
                program=wh.ProgramRef(row.program_id, row.code, row.merchant_id),
                member_id=row.member_id,
                created_at=row.created_at,
                effective_at=row.effective_at,
                reference=row.reference,
                reverses_id=row.reverses_id,
                counter_member_id=row.counter_member_id,
            )
        )
        if event is not None:
            events.append(event)
    return events, (rows[-1].id if len(rows) == limit else 0)


async def _tier_events(
    conn: AsyncConnection, after: int, up_to: int, merchant_ids: Sequence[int], limit: int
) -> tuple[list[wh.Event], int]:
    rows = (
        await conn.execute(
            select(
                tier_changes.c.id,
                tier_changes.c.before,
                tier_changes.c.after,
                tier_changes.c.reason,
                tier_changes.c.at,
                accounts.c.member_id,
                accounts.c.program_id,
                programs.c.code,
                programs.c.merchant_id,
                members.c.deleted_at,
            )
            .join(accounts, accounts.c.id == tier_changes.c.account_id)
            .join(programs, programs.c.id == accounts.c.program_id)
            .join(members, members.c.id == accounts.c.member_id)
            .where(
                tier_changes.c.id > after,
                tier_changes.c.id <= up_to,
                programs.c.merchant_id.in_(merchant_ids),
            )
            .order_by(tier_changes.c.id)
            .limit(limit)
        )
    ).all()
    events = [
        wh.tier_event(
            wh.TierFact(
                change_id=row.id,
                program=wh.ProgramRef(row.program_id, row.code, row.merchant_id),
                member_id=row.member_id,
                before=row.before,
                after=row.after,
                reason=row.reason,
                at=row.at,
            )
        )
        for row in rows
        if row.deleted_at is None
    ]
    return events, (rows[-1].id if len(rows) == limit else 0)


# --- helpers -------------------------------------------------------------------------------


def _member_ids(payload: Any) -> set[int]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return set()
    found = {data.get("member_id"), data.get("to_member_id")}
    return {value for value in found if isinstance(value, int)}


async def _erased_members(conn: AsyncConnection, payloads: Iterable[Any]) -> set[int]:
    member_ids = set().union(*(_member_ids(payload) for payload in payloads))
    if not member_ids:
        return set()
    rows = await conn.execute(
        select(members.c.id).where(members.c.id.in_(member_ids), members.c.deleted_at.isnot(None))
    )
    return {row.id for row in rows}


async def _answer_excerpt(answer: httpx.Response) -> str:
    """The start of a refusing receiver's answer, for the delivery log."""
    excerpt = b""
    async for chunk in answer.aiter_bytes():
        excerpt += chunk
        if len(excerpt) >= ERROR_BODY_CHARS:
            break
    text = excerpt[:ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
    return f": {' '.join(text.split())}" if text else ""
