"""Mail to members, through an outbox table.

An operation that sends mail (a sign-in code, a welcome) queues it with ``enqueue`` in its own
transaction: the mail exists exactly when the operation committed, and a slow or absent mail
server never holds up a request. With SMTP configured, ``Outbox.deliver_pending`` (run by the
app's background sweep, in every app process) sends what is queued and retries failures a few
times; a process marks a mail sent before sending it, so that no other one sends it too. Without
SMTP (the embedded default) mail stays in the outbox, where staff read it on the admin outbox
page: the wallet's sign-in works end to end on a bare machine.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

from msgspec import Struct
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import mail_outbox
from loyalty.domain.errors import DomainError, ErrorCode

from .context import utc_now

#: A mail that failed this often is left for staff to look at.
MAX_ATTEMPTS = 8
SMTP_TIMEOUT_SECONDS = 20


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    #: "ssl" (implicit TLS, port 465), "starttls" (587) or "none" (a relay on localhost).
    security: str = "starttls"

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpServer:
        """``smtps://user:pass@host:465``, ``smtp://user:pass@host:587`` (STARTTLS) or
        ``smtp://host:25?tls=none``."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError(f"LOYALTY_SMTP_URL must be smtp:// or smtps://, not {url!r}")
        security = "ssl" if parts.scheme == "smtps" else "starttls"
        if "tls=none" in parts.query:
            security = "none"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if security == "ssl" else 587),
            sender=sender,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            security=security,
        )


class OutboxMail(Struct, frozen=True, kw_only=True):
    mail_id: int
    to_address: str
    subject: str
    body_text: str
    kind: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


async def enqueue(
    conn: AsyncConnection,
    *,
    merchant_id: int,
    to_address: str,
    subject: str,
    body_text: str,
    kind: str,
    at: datetime,
) -> int:
    """Queue a mail in the caller's transaction."""
    mail_id = await conn.scalar(
        mail_outbox.insert()
        .values(
            merchant_id=merchant_id,
            to_address=to_address,
            subject=subject,
            body_text=body_text,
            kind=kind,
            created_at=at,
        )
        .returning(mail_outbox.c.id)
    )
    assert mail_id is not None
    return int(mail_id)


def _view(row: Any) -> OutboxMail:
    return OutboxMail(
        mail_id=row.id,
        to_address=row.to_address,
        subject=row.subject,
        body_text=row.body_text,
        kind=row.kind,
        created_at=row.created_at,
        sent_at=row.sent_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )


class Outbox:
    def __init__(
        self,
        engine: AsyncEngine,
        smtp: SmtpServer | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._smtp = smtp
        self._clock = clock

    @property
    def delivers(self) -> bool:
        """Whether mail leaves the platform (SMTP configured) or stays in the outbox."""
        return self._smtp is not None

    async def list_mail(
        self, merchant_id: int, *, limit: int = 50, before_id: int | None = None
    ) -> list[OutboxMail]:
        """The merchant's mail, newest first."""

        async def work(conn: AsyncConnection) -> list[OutboxMail]:
            query = select(mail_outbox).where(mail_outbox.c.merchant_id == merchant_id)
            if before_id is not None:
                query = query.where(mail_outbox.c.id < before_id)
            rows = await conn.execute(query.order_by(mail_outbox.c.id.desc()).limit(limit))
            return [_view(row) for row in rows]

        return await in_transaction(self._engine, work, read_only=True)

    async def get_mail(self, merchant_id: int, mail_id: int) -> OutboxMail:
        async def work(conn: AsyncConnection) -> OutboxMail:
            row = (
                await conn.execute(
                    select(mail_outbox).where(
                        mail_outbox.c.id == mail_id, mail_outbox.c.merchant_id == merchant_id
                    )
                )
            ).first()
            if row is None:
                raise DomainError(ErrorCode.NOT_FOUND, "no such mail", mail_id=mail_id)
            return _view(row)

        return await in_transaction(self._engine, work, read_only=True)

    async def deliver_pending(self, limit: int = 50) -> int:
        """Send queued mail through SMTP; the number sent. Nothing without SMTP."""
        smtp = self._smtp
        if smtp is None:
            return 0

        async def pending(conn: AsyncConnection) -> list[Any]:
            rows = await conn.execute(
                select(mail_outbox)
                .where(mail_outbox.c.sent_at.is_(None), mail_outbox.c.attempts < MAX_ATTEMPTS)
                .order_by(mail_outbox.c.id)
                .limit(limit)
            )
            return list(rows)

        sent = 0
        for row in await in_transaction(self._engine, pending, read_only=True):
            now = self._clock()
            if not await self._claim(row.id, row.attempts, now):
                continue
            error: str | None = None
            try:
                await asyncio.to_thread(_send, smtp, _message(smtp.sender, row, now))
            except (OSError, smtplib.SMTPException) as failure:
                error = f"{type(failure).__name__}: {failure}"[:1000]
                await self._failed(row.id, error)
            sent += error is None
        return sent

    async def _claim(self, mail_id: int, attempts: int, now: datetime) -> bool:
        """Mark the mail sent, counting the attempt, before sending it; False when another app
        process took it first. Every process runs this pass, and a mail another one is sending
        must not look unsent to it (they used to send the same mail each). A failed send
        makes the mail unsent again; a process that dies while sending leaves it marked sent:
        mail goes out at most once (a member who lacks a code asks for another)."""

        async def work(conn: AsyncConnection) -> bool:
            taken = await conn.execute(
                update(mail_outbox)
                .where(
                    mail_outbox.c.id == mail_id,
                    mail_outbox.c.sent_at.is_(None),
                    mail_outbox.c.attempts == attempts,
                )
                .values(sent_at=now, attempts=attempts + 1, last_error=None)
            )
            return taken.rowcount == 1

        return await in_transaction(self._engine, work)

    async def _failed(self, mail_id: int, error: str) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(mail_outbox)
                .where(mail_outbox.c.id == mail_id)
                .values(sent_at=None, last_error=error)
            )

        await in_transaction(self._engine, work)


def _message(sender: str, row: Any, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(row.body_text)
    return message


def _send(smtp: SmtpServer, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.username is not None:
            client.login(smtp.username, smtp.password or "")
        client.send_message(message)
