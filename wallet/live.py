"""Live balance: a purchase completed at any till shows in the member's open wallet at once.

Every commit that changes member balances is announced by the ledger
(``loyalty.db.balance_changes``); ``publish_balances`` puts each new balance on the member's
channel (``balance:<program>:<member>``) through Litestar's channels: Redis pub/sub when
LOYALTY_REDIS_URL is set, so that a wallet connected to one app process hears of a sale booked
through another, and in-process memory otherwise. The wallet listens with server-sent events
(``events``): an ``EventSource`` on the page, reconnected by the browser by itself, with a
comment every 25 seconds so that proxies keep the connection open.

Redis may go away (a restart, a failover, a dropped connection): ``RedisBalanceChannels``
keeps listening and publishing once it is back. A balance published while it is away is lost;
the wallet shows the balance of the member's next change, or of a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import msgspec
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.response import ServerSentEvent, ServerSentEventMessage
from redis.exceptions import RedisError

from loyalty.db.balance_changes import BalanceChange

KEEPALIVE_SECONDS = 25.0
#: How long the listener waits before it reconnects to a Redis that went away.
RECONNECT_SECONDS = 1.0
log = logging.getLogger("wallet.live")


class RedisBalanceChannels(RedisChannelsPubSubBackend):
    """Litestar's Redis pub/sub backend, kept working through Redis outages. The channels
    plugin runs one task that reads what Redis delivers and one that publishes, and neither
    survives an error: one dropped connection left every wallet of the process deaf until the
    process restarted."""

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        while True:
            try:
                async for event in super().stream_events():
                    yield event
            except (RedisError, OSError) as error:
                # The next read reconnects, and redis-py subscribes the channels again.
                log.warning("live balances: Redis went away (%s); listening again", error)
                await asyncio.sleep(RECONNECT_SECONDS)

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        try:
            await super().publish(data, channels)
        except (RedisError, OSError) as error:
            log.warning("live balances: a balance was not published (%s)", error)


class LiveBalance(msgspec.Struct, frozen=True):
    posted: int
    held: int
    available: int


def channel_of(program_id: int, member_id: int) -> str:
    return f"balance:{program_id}:{member_id}"


def publish_balances(channels: ChannelsPlugin, changes: list[BalanceChange]) -> None:
    for change in changes:
        channels.publish(
            msgspec.json.encode(LiveBalance(change.posted, change.held, change.available)),
            channel_of(change.program_id, change.member_id),
        )


async def _stream(
    channels: ChannelsPlugin, channel: str, ready: asyncio.Event | None
) -> AsyncGenerator[ServerSentEventMessage, None]:
    async with channels.start_subscription([channel]) as subscriber:
        if ready is not None:
            ready.set()
        # A first message at once: the page knows it is listening (and proxies flush).
        yield ServerSentEventMessage(comment="listening")
        events = subscriber.iter_events()
        pending: asyncio.Task[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
                if not done:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                data = pending.result()
                pending = None
                yield ServerSentEventMessage(data=data.decode(), event="balance")
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            await events.aclose()


def events(
    channels: ChannelsPlugin,
    program_id: int,
    member_id: int,
    ready: asyncio.Event | None = None,
) -> ServerSentEvent:
    """The member's balance as server-sent events (event ``balance``, JSON data)."""
    return ServerSentEvent(
        _stream(channels, channel_of(program_id, member_id), ready),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        retry_duration=2000,
    )
