"""The open wallet hears of a sale at once: the balance the till booked arrives on the member's
channel, which the wallet's /events stream relays (the stream itself is driven by a real
server and browser in tests/e2e/test_wallet_live.py; the test client cannot hold an endless
response open)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

from litestar.channels import ChannelsPlugin

from loyalty.services.pos import PointOfSale
from loyalty.services.quotes import BasketDocument, BasketLineDocument
from loyalty.services.terminals import Terminals
from tests.app.conftest import Stack
from wallet.live import channel_of

from .test_sign_in_api import ADA, WALLET, code_in, enroll, issue_till, mails, program, sign_in


def test_a_sale_at_the_till_reaches_the_members_channel(any_stack: Stack) -> None:
    stack = any_stack
    manager, pid = program(stack)
    issued = issue_till(manager, pid)
    enroll(stack, pid)
    member = sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0])).json()["member_id"]
    till_headers = {"Authorization": f"Bearer {issued['api_key']}"}
    card = stack.client.post(
        "/api/v1/pos/members", json={"email": ADA["email"]}, headers=till_headers
    ).json()["card_number"]
    channels = stack.app.plugins.get(ChannelsPlugin)
    pos: PointOfSale = stack.app.state.pos
    terminals: Terminals = stack.app.state.terminals
    now: datetime = stack.clock.now

    async def sale_while_listening() -> list[bytes]:
        till = await terminals.authenticate(issued["api_key"])
        heard: list[bytes] = []
        async with channels.start_subscription([channel_of(pid, member)]) as subscriber:
            basket = BasketDocument(
                currency="EUR",
                lines=[BasketLineDocument(line_id="1", sku="BROT", quantity=1, unit_price=4200)],
            )
            await pos.complete(
                till,
                transaction_id="T-1",
                scan=card,
                basket=basket,
                occurred_at=now,
                captured_offline=False,
                total=None,
            )
            async with asyncio.timeout(5):
                async for message in subscriber.iter_events():
                    heard.append(message)
                    break
        return heard

    (message,) = stack.run(sale_while_listening)
    assert json.loads(message) == {"posted": 42, "held": 0, "available": 42}


def test_a_refused_sale_announces_nothing(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    member = sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0])).json()["member_id"]
    channels = stack.app.plugins.get(ChannelsPlugin)

    async def redeem_too_much() -> list[bytes]:
        heard: list[bytes] = []
        async with channels.start_subscription([channel_of(pid, member)]) as subscriber:
            refused = await asyncio.to_thread(
                stack.shop.post, f"/programs/{pid}/members/{member}/redeem", {"points": 10}
            )
            assert refused.status_code == 422
            try:
                async with asyncio.timeout(0.3):
                    async for message in subscriber.iter_events():
                        heard.append(message)
            except TimeoutError:
                pass
        return heard

    assert stack.run(redeem_too_much) == []


def test_the_stream_needs_the_members_session(stack: Stack) -> None:
    _, pid = program(stack)
    assert stack.client.get(f"{WALLET}/{pid}/events").status_code == 401


def test_a_sale_through_one_app_process_reaches_a_wallet_on_another(
    sqlite_url: str, redis_url: str, stack_factory: Callable[..., Stack]
) -> None:
    """Two app instances sharing the database and Redis, as several processes do in production:
    the till talks to one, the member's wallet listens on the other."""
    till_side = stack_factory(sqlite_url, redis_url=redis_url)
    wallet_side = stack_factory(sqlite_url, redis_url=redis_url)
    manager, pid = program(till_side)
    issued = issue_till(manager, pid)
    till = {"Authorization": f"Bearer {issued['api_key']}"}
    made = till_side.client.post("/api/v1/pos/members", json={"email": ADA["email"]}, headers=till)
    member, card = made.json()["member_id"], made.json()["card_number"]
    channels = wallet_side.app.plugins.get(ChannelsPlugin)
    sale = {
        "occurred_at": till_side.clock.now.isoformat(),
        "member": {"value": card},
        "order": {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "BROT", "quantity": 1, "unit_price": 4200}],
        },
    }

    async def listen_while_selling() -> bytes:
        async with channels.start_subscription([channel_of(pid, member)]) as subscriber:
            done = await asyncio.to_thread(
                till_side.client.post,
                "/api/v1/pos/transactions/T-1/complete",
                json=sale,
                headers=till,
            )
            assert done.status_code == 200, done.text
            async with asyncio.timeout(5):
                async for message in subscriber.iter_events():
                    return message
        raise AssertionError("no message")

    assert json.loads(wallet_side.run(listen_while_selling)) == {
        "posted": 42,
        "held": 0,
        "available": 42,
    }
