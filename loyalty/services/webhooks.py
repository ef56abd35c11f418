"""Webhook endpoints as staff manage them, and their delivery log.

A merchant's endpoint receives the event types it subscribes to, of one program or of all its
programs. Its signing secret (``whsec_...``, Standard Webhooks) is drawn by the platform, stored
sealed (``SecretBox``, as vendor secrets are) and shown once: in the answer that created the
endpoint and in the answer that rotated it. Every change is audited. The log lists each
delivery with its attempts; a delivered or failed one can be replayed: it becomes pending again
under the same event id, so a receiver that had it already recognises it.

Sending is the dispatcher's work (``loyalty.services.webhook_dispatch``); a test message is
queued here and attempted at once, so that staff see the receiver's answer on the spot.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import programs, webhook_attempts, webhook_deliveries, webhook_endpoints
from loyalty.domain import webhooks as wh
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.webhooks import DeliveryStatus, EventType

from .audit import record_change
from .context import Staff, utc_now
from .secret_box import SecretBox
from .webhook_dispatch import WebhookDispatcher, enqueue_one, new_test_event_id

#: Enough for a few systems per merchant; each endpoint multiplies the delivery work.
MAX_ENDPOINTS_PER_MERCHANT = 20
RECENT_DELIVERIES = 20
DEFAULT_DELIVERY_PAGE = 50
MAX_DELIVERY_PAGE = 200
SECRET_BYTES = 32


class WebhookEndpointView(Struct, frozen=True, kw_only=True):
    endpoint_id: int
    url: str
    description: str
    #: The event types it receives.
    events: list[str]
    #: None: every program of the merchant.
    program_id: int | None
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None
    #: Deliveries waiting for their next attempt, and those that gave up (replayable).
    pending: int
    failed: int


class IssuedWebhookSecret(Struct, frozen=True, kw_only=True):
    endpoint: WebhookEndpointView
    #: The signing secret, shown this once: verify each message's ``webhook-signature`` with it.
    secret: str


class WebhookAttemptView(Struct, frozen=True, kw_only=True):
    at: datetime
    #: The receiver's HTTP status; None when it did not answer.
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryView(Struct, frozen=True, kw_only=True):
    delivery_id: int
    endpoint_id: int
    #: The receiver's deduplication key (the ``webhook-id`` header).
    event_id: str
    event_type: str
    status: str
    #: Attempts since it was queued or last replayed (the log keeps every attempt).
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    #: The message body sent.
    payload: dict[str, Any]
    #: Every attempt, oldest first.
    attempt_log: list[WebhookAttemptView]


class WebhookEndpointDetail(Struct, frozen=True, kw_only=True):
    endpoint: WebhookEndpointView
    #: The newest deliveries, newest first.
    recent_deliveries: list[WebhookDeliveryView]


class WebhookDeliveryPage(Struct, frozen=True, kw_only=True):
    deliveries: list[WebhookDeliveryView]
    #: Pass as ``before_id`` for the next (older) page; None on the last page.
    next_before_id: int | None


class Webhooks:
    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        dispatcher: WebhookDispatcher,
        *,
        production: bool,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``production``: endpoints must be public https addresses (development also allows
        http to this machine, for trying a receiver out)."""
        self._engine = engine
        self._box = box
        self._dispatcher = dispatcher
        self._production = production
        self._clock = clock

    # --- endpoints -----------------------------------------------------------------------------

    async def create(
        self,
        staff: Staff,
        *,
        url: str,
        description: str,
        events: Sequence[str],
        program_id: int | None,
    ) -> IssuedWebhookSecret:
        url = wh.check_url(url, production=self._production)
        description = wh.check_description(description)
        subscribed = wh.check_events(events)
        secret = wh.new_secret(secrets.token_bytes(SECRET_BYTES))

        async def work(conn: AsyncConnection) -> IssuedWebhookSecret:
            now = self._clock()
            if program_id is not None:
                await _own_program(conn, staff, program_id)
            count = await conn.scalar(
                select(func.count())
                .select_from(webhook_endpoints)
                .where(webhook_endpoints.c.merchant_id == staff.merchant_id)
            )
            if (count or 0) >= MAX_ENDPOINTS_PER_MERCHANT:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED,
                    f"a merchant has at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints",
                    limit=MAX_ENDPOINTS_PER_MERCHANT,
                )
            endpoint_id = await conn.scalar(
                webhook_endpoints.insert()
                .values(
                    merchant_id=staff.merchant_id,
                    program_id=program_id,
                    url=url,
                    description=description,
                    events=subscribed,
                    secret_sealed=self._box.seal(secret),
                    created_at=now,
                    updated_at=now,
                )
                .returning(webhook_endpoints.c.id)
            )
            assert endpoint_id is not None
            await record_change(
                conn,
                staff,
                action="webhook_endpoint.create",
                entity="webhook_endpoint",
                entity_id=endpoint_id,
                at=now,
                after=_audited(url, description, subscribed, program_id),
                program_id=program_id,
            )
            view = await _endpoint(conn, staff, int(endpoint_id))
            return IssuedWebhookSecret(endpoint=view, secret=secret)

        return await in_transaction(self._engine, work)

    async def list_endpoints(self, staff: Staff) -> list[WebhookEndpointView]:
        async def work(conn: AsyncConnection) -> list[WebhookEndpointView]:
            return await _endpoint_views(conn, staff)

        return await in_transaction(self._engine, work, read_only=True)

    async def get(self, staff: Staff, endpoint_id: int) -> WebhookEndpointDetail:
        async def work(conn: AsyncConnection) -> WebhookEndpointDetail:
            view = await _endpoint(conn, staff, endpoint_id)
            recent = await _deliveries(conn, endpoint_id, None, None, RECENT_DELIVERIES)
            return WebhookEndpointDetail(endpoint=view, recent_deliveries=recent)

        return await in_transaction(self._engine, work, read_only=True)

    async def update(
        self,
        staff: Staff,
        endpoint_id: int,
        *,
        url: str | None = None,
        description: str | None = None,
        events: Sequence[str] | None = None,
    ) -> WebhookEndpointView:
        """Change what is given; the rest stays. Queued deliveries go to the new address."""
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = wh.check_url(url, production=self._production)
        if description is not None:
            changes["description"] = wh.check_description(description)
        if events is not None:
            changes["events"] = wh.check_events(events)

        async def work(conn: AsyncConnection) -> WebhookEndpointView:
            now = self._clock()
            before = await _endpoint(conn, staff, endpoint_id)
            if changes:
                await conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(**changes, updated_at=now)
                )
                await record_change(
                    conn,
                    staff,
                    action="webhook_endpoint.update",
                    entity="webhook_endpoint",
                    entity_id=endpoint_id,
                    at=now,
                    before={name: getattr(before, name) for name in changes},
                    after=changes,
                    program_id=before.program_id,
                )
            return await _endpoint(conn, staff, endpoint_id)

        return await in_transaction(self._engine, work)

    async def rotate_secret(self, staff: Staff, endpoint_id: int) -> IssuedWebhookSecret:
        """A new signing secret at once (shown this once); messages sent from now on are signed
        with it only, retries of earlier messages included."""
        secret = wh.new_secret(secrets.token_bytes(SECRET_BYTES))

        async def work(conn: AsyncConnection) -> IssuedWebhookSecret:
            now = self._clock()
            before = await _endpoint(conn, staff, endpoint_id)
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(secret_sealed=self._box.seal(secret), updated_at=now)
            )
            await record_change(
                conn,
                staff,
                action="webhook_endpoint.rotate_secret",
                entity="webhook_endpoint",
                entity_id=endpoint_id,
                at=now,
                program_id=before.program_id,
            )
            view = await _endpoint(conn, staff, endpoint_id)
            return IssuedWebhookSecret(endpoint=view, secret=secret)

        return await in_transaction(self._engine, work)

    async def set_enabled(
        self, staff: Staff, endpoint_id: int, enabled: bool
    ) -> WebhookEndpointView:
        """Disable: no event is queued for it and nothing queued is sent, until it is enabled
        again (then what was queued meanwhile is sent; events of the pause are not)."""

        async def work(conn: AsyncConnection) -> WebhookEndpointView:
            now = self._clock()
            before = await _endpoint(conn, staff, endpoint_id)
            if (before.disabled_at is None) != enabled:
                await conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(disabled_at=None if enabled else now, updated_at=now)
                )
                await record_change(
                    conn,
                    staff,
                    action="webhook_endpoint.enable" if enabled else "webhook_endpoint.disable",
                    entity="webhook_endpoint",
                    entity_id=endpoint_id,
                    at=now,
                    before={"disabled_at": before.disabled_at},
                    after={"disabled_at": None if enabled else now},
                    program_id=before.program_id,
                )
            return await _endpoint(conn, staff, endpoint_id)

        return await in_transaction(self._engine, work)

    async def send_test(self, staff: Staff, endpoint_id: int) -> WebhookDeliveryView:
        """Queue a ``webhook.test`` message and attempt it now; the delivery as it stands after
        that attempt (retried by the schedule if the receiver refused it)."""

        async def queue(conn: AsyncConnection) -> int:
            now = self._clock()
            endpoint = await _endpoint(conn, staff, endpoint_id)
            if endpoint.disabled_at is not None:
                raise DomainError(
                    ErrorCode.WEBHOOK_ENDPOINT_DISABLED,
                    "the endpoint is disabled: enable it first",
                    endpoint_id=endpoint_id,
                )
            event_id = new_test_event_id()
            delivery_id = await enqueue_one(
                conn,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=EventType.TEST,
                payload=wh.webhook_test_payload(event_id, endpoint_id, now),
                at=now,
            )
            await record_change(
                conn,
                staff,
                action="webhook_endpoint.test",
                entity="webhook_endpoint",
                entity_id=endpoint_id,
                at=now,
                after={"delivery_id": delivery_id, "event_id": event_id},
                program_id=endpoint.program_id,
            )
            return delivery_id

        delivery_id = await in_transaction(self._engine, queue)
        await self._dispatcher.deliver_now([delivery_id])
        return await self.delivery(staff, endpoint_id, delivery_id)

    # --- the delivery log ----------------------------------------------------------------------

    async def deliveries(
        self,
        staff: Staff,
        endpoint_id: int,
        *,
        status: DeliveryStatus | None = None,
        before_id: int | None = None,
        limit: int = DEFAULT_DELIVERY_PAGE,
    ) -> WebhookDeliveryPage:
        """The endpoint's deliveries with their attempts, newest first, in keyset pages."""
        limit = max(1, min(limit, MAX_DELIVERY_PAGE))

        async def work(conn: AsyncConnection) -> WebhookDeliveryPage:
            await _endpoint(conn, staff, endpoint_id)
            found = await _deliveries(conn, endpoint_id, status, before_id, limit + 1)
            page = found[:limit]
            more = len(found) > limit
            return WebhookDeliveryPage(
                deliveries=page, next_before_id=page[-1].delivery_id if more else None
            )

        return await in_transaction(self._engine, work, read_only=True)

    async def delivery(
        self, staff: Staff, endpoint_id: int, delivery_id: int
    ) -> WebhookDeliveryView:
        async def work(conn: AsyncConnection) -> WebhookDeliveryView:
            return await _delivery(conn, staff, endpoint_id, delivery_id)

        return await in_transaction(self._engine, work, read_only=True)

    async def replay(self, staff: Staff, endpoint_id: int, delivery_id: int) -> WebhookDeliveryView:
        """Send a delivery again: pending at once, with a fresh round of attempts, under the
        same event id (a pending one is simply made due now)."""

        async def work(conn: AsyncConnection) -> WebhookDeliveryView:
            now = self._clock()
            before = await _delivery(conn, staff, endpoint_id, delivery_id)
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    status=str(DeliveryStatus.PENDING),
                    attempts=0,
                    next_attempt_at=now,
                    delivered_at=None,
                )
            )
            endpoint = await _endpoint(conn, staff, endpoint_id)
            await record_change(
                conn,
                staff,
                action="webhook_delivery.replay",
                entity="webhook_delivery",
                entity_id=delivery_id,
                at=now,
                before={"status": before.status, "attempts": before.attempts},
                after={"status": str(DeliveryStatus.PENDING), "event_id": before.event_id},
                program_id=endpoint.program_id,
            )
            return await _delivery(conn, staff, endpoint_id, delivery_id)

        return await in_transaction(self._engine, work)


# --- queries -------------------------------------------------------------------------------


def _audited(
    url: str, description: str, events: list[str], program_id: int | None
) -> dict[str, Any]:
    return {"url": url, "description": description, "events": events, "program_id": program_id}


async def _own_program(conn: AsyncConnection, staff: Staff, program_id: int) -> None:
    found = await conn.scalar(
        select(programs.c.id).where(
            programs.c.id == program_id, programs.c.merchant_id == staff.merchant_id
        )
    )
    if found is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)


_ENDPOINT_COLUMNS = (
    webhook_endpoints.c.id,
    webhook_endpoints.c.url,
    webhook_endpoints.c.description,
    webhook_endpoints.c.events,
    webhook_endpoints.c.program_id,
    webhook_endpoints.c.created_at,
    webhook_endpoints.c.updated_at,
    webhook_endpoints.c.disabled_at,
)


async def _endpoint_views(
    conn: AsyncConnection, staff: Staff, endpoint_id: int | None = None
) -> list[WebhookEndpointView]:
    query = select(*_ENDPOINT_COLUMNS).where(webhook_endpoints.c.merchant_id == staff.merchant_id)
    if endpoint_id is not None:
        query = query.where(webhook_endpoints.c.id == endpoint_id)
    rows = (await conn.execute(query.order_by(webhook_endpoints.c.id))).all()
    if not rows:
        return []
    # Counted apart from the endpoints: their JSON column cannot be grouped by on PostgreSQL.
    # Delivered ones are left out of the count, which reads only what waits or gave up.
    counts: dict[tuple[int, str], int] = {}
    for count in await conn.execute(
        select(
            webhook_deliveries.c.endpoint_id,
            webhook_deliveries.c.status,
            func.count().label("n"),
        )
        .where(
            webhook_deliveries.c.endpoint_id.in_([row.id for row in rows]),
            webhook_deliveries.c.status != str(DeliveryStatus.DELIVERED),
        )
        .group_by(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.status)
    ):
        counts[(count.endpoint_id, count.status)] = int(count.n)
    return [
        WebhookEndpointView(
            endpoint_id=row.id,
            url=row.url,
            description=row.description,
            events=list(row.events),
            program_id=row.program_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            disabled_at=row.disabled_at,
            pending=counts.get((row.id, str(DeliveryStatus.PENDING)), 0),
            failed=counts.get((row.id, str(DeliveryStatus.FAILED)), 0),
        )
        for row in rows
    ]


async def _endpoint(conn: AsyncConnection, staff: Staff, endpoint_id: int) -> WebhookEndpointView:
    found = await _endpoint_views(conn, staff, endpoint_id)
    if not found:
        raise DomainError(
            ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND,
            "no such webhook endpoint",
            endpoint_id=endpoint_id,
        )
    return found[0]


async def _deliveries(
    conn: AsyncConnection,
    endpoint_id: int,
    status: DeliveryStatus | None,
    before_id: int | None,
    limit: int,
) -> list[WebhookDeliveryView]:
    query = select(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == str(status))
    if before_id is not None:
        query = query.where(webhook_deliveries.c.id < before_id)
    rows = (await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))).all()
    attempts = await _attempts(conn, [row.id for row in rows])
    return [_delivery_view(row, attempts.get(row.id, [])) for row in rows]


async def _attempts(
    conn: AsyncConnection, delivery_ids: list[int]
) -> dict[int, list[WebhookAttemptView]]:
    if not delivery_ids:
        return {}
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
        .order_by(webhook_attempts.c.id)
    )
    found: dict[int, list[WebhookAttemptView]] = {}
    for row in rows:
        found.setdefault(row.delivery_id, []).append(
            WebhookAttemptView(
                at=row.at,
                status_code=row.status_code,
                error=row.error,
                duration_ms=row.duration_ms,
            )
        )
    return found


def _delivery_view(row: Any, attempts: list[WebhookAttemptView]) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        delivery_id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        payload=row.payload,
        attempt_log=attempts,
    )


async def _delivery(
    conn: AsyncConnection, staff: Staff, endpoint_id: int, delivery_id: int
) -> WebhookDeliveryView:
    row = (
        await conn.execute(
            select(webhook_deliveries)
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
            .where(
                webhook_deliveries.c.id == delivery_id,
                webhook_deliveries.c.endpoint_id == endpoint_id,
                webhook_endpoints.c.merchant_id == staff.merchant_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(
            ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND,
            "no such delivery of this endpoint",
            endpoint_id=endpoint_id,
            delivery_id=delivery_id,
        )
    attempts = await _attempts(conn, [row.id])
    return _delivery_view(row, attempts.get(row.id, []))
