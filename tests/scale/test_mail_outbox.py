"""Mail goes out once, however many app processes run the outbox's delivery pass (each one's
background sweep does): two passes on two engines, as two processes have, share one PostgreSQL
database and a real SMTP server on loopback (aiosmtpd) that takes a moment per message, so that
the passes overlap. They used to send every mail they both saw, each."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import mail_outbox
from loyalty.services.outbox import Outbox, SmtpServer, enqueue
from tests.support.scenario import new_scenario

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MAILS = 6
#: How long the SMTP server takes to accept a message.
ACCEPT_SECONDS = 0.05


class SlowInbox:
    """What the SMTP server accepted; ``sending`` is set once the first message arrives."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.sending = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sending.set()
        await asyncio.sleep(ACCEPT_SECONDS)
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[SlowInbox, SmtpServer]]:
    inbox = SlowInbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpServer("127.0.0.1", port, "loyalty@example.com", security="none")
    finally:
        controller.stop()


async def queue_mails(engine: AsyncEngine) -> list[str]:
    scenario = await new_scenario(engine, lambda: T0, members=1)
    addresses = [f"member{n}@example.de" for n in range(MAILS)]

    async def work(conn: AsyncConnection) -> None:
        for address in addresses:
            await enqueue(
                conn,
                merchant_id=scenario.caller.merchant_id,
                to_address=address,
                subject="Ihr Anmeldecode",
                body_text="Ihr Anmeldecode lautet: 123456\n",
                kind="sign_in",
                at=T0,
            )

    await in_transaction(engine, work)
    return addresses


async def together(
    first: Callable[[], Awaitable[int]], second: Callable[[], Awaitable[int]], _: SlowInbox
) -> list[int]:
    return list(await asyncio.gather(first(), second()))


async def second_while_first_sends(
    first: Callable[[], Awaitable[int]], second: Callable[[], Awaitable[int]], inbox: SlowInbox
) -> list[int]:
    async def later() -> int:
        assert await asyncio.to_thread(inbox.sending.wait, 10)
        return await second()

    return list(await asyncio.gather(first(), later()))


@pytest.mark.parametrize("start", [together, second_while_first_sends])
async def test_two_processes_deliver_each_mail_once(
    postgres_clean_url: str,
    smtp: tuple[SlowInbox, SmtpServer],
    start: Callable[..., Awaitable[list[int]]],
) -> None:
    inbox, server = smtp
    engines = [create_engine(postgres_clean_url) for _ in range(2)]
    try:
        addresses = await queue_mails(engines[0])
        first, second = (Outbox(engine, server, clock=lambda: T0) for engine in engines)
        sent = await start(first.deliver_pending, second.deliver_pending, inbox)

        assert sorted(inbox.recipients) == addresses
        assert sum(sent) == MAILS
        async with engines[0].connect() as conn:
            rows = (await conn.execute(select(mail_outbox.c.sent_at, mail_outbox.c.attempts))).all()
        assert [(row.sent_at, row.attempts) for row in rows] == [(T0, 1)] * MAILS
    finally:
        for engine in engines:
            await engine.dispose()
