"""Mail through the outbox: queued in the operation's transaction, delivered by SMTP when a
server is configured (a real SMTP server on loopback here, aiosmtpd), retried when it fails,
and left in the outbox when there is none."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import mail_outbox
from loyalty.services.outbox import MAX_ATTEMPTS, Outbox, SmtpServer, enqueue
from tests.support.scenario import new_scenario

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def _queue(engine: Any, merchant_id: int, to: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        await enqueue(
            conn,
            merchant_id=merchant_id,
            to_address=to,
            subject="Ihr Anmeldecode für Sonnenpunkte: 123456",
            body_text="Ihr Anmeldecode lautet: 123456\n",
            kind="sign_in",
            at=T0,
        )

    await in_transaction(engine, work)


async def test_queued_mail_is_delivered_once_by_smtp(
    sqlite_url: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    engine = create_engine(sqlite_url)
    try:
        scenario = await new_scenario(engine, lambda: T0, members=1)
        await _queue(engine, scenario.caller.merchant_id, "jürgen@bäckerei.de")
        server = SmtpServer("127.0.0.1", port, "loyalty@example.com", security="none")
        outbox = Outbox(engine, server, clock=lambda: T0)
        assert outbox.delivers
        assert await outbox.deliver_pending() == 1
        assert await outbox.deliver_pending() == 0  # nothing left: sent once
        (envelope,) = inbox.messages
        assert envelope.rcpt_tos == ["jürgen@bäckerei.de"]
        message = message_from_bytes(envelope.original_content)
        assert message["From"] == "loyalty@example.com"
        assert "123456" in message.get_payload(decode=True).decode()
        (mail,) = await outbox.list_mail(scenario.caller.merchant_id)
        assert (mail.sent_at, mail.attempts, mail.last_error) == (T0, 1, None)
    finally:
        await engine.dispose()


async def test_a_failing_server_is_retried_then_left_for_staff(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        scenario = await new_scenario(engine, lambda: T0, members=1)
        await _queue(engine, scenario.caller.merchant_id, "ada@example.de")
        nobody = SmtpServer("127.0.0.1", _free_port(), "loyalty@example.com", security="none")
        outbox = Outbox(engine, nobody, clock=lambda: T0)
        for _ in range(MAX_ATTEMPTS + 2):
            assert await outbox.deliver_pending() == 0
        (mail,) = await outbox.list_mail(scenario.caller.merchant_id)
        assert mail.sent_at is None
        assert mail.attempts == MAX_ATTEMPTS
        assert mail.last_error is not None
        assert "ConnectionRefusedError" in mail.last_error
    finally:
        await engine.dispose()


async def test_without_smtp_mail_stays_in_the_outbox(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        scenario = await new_scenario(engine, lambda: T0, members=1)
        await _queue(engine, scenario.caller.merchant_id, "ada@example.de")
        outbox = Outbox(engine, None, clock=lambda: T0)
        assert not outbox.delivers
        assert await outbox.deliver_pending() == 0
        async with engine.connect() as conn:
            sent = await conn.scalar(select(mail_outbox.c.sent_at))
        assert sent is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtps://ann:s%40cret@mail.example.com",
            ("mail.example.com", 465, "ann", "s@cret", "ssl"),
        ),
        ("smtp://mail.example.com", ("mail.example.com", 587, None, None, "starttls")),
        ("smtp://localhost:25?tls=none", ("localhost", 25, None, None, "none")),
    ],
)
def test_smtp_urls(url: str, expected: tuple[Any, ...]) -> None:
    server = SmtpServer.from_url(url, "loyalty@example.com")
    assert (server.host, server.port, server.username, server.password, server.security) == (
        expected
    )


def test_an_smtp_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="smtp"):
        SmtpServer.from_url("http://mail.example.com", "loyalty@example.com")
