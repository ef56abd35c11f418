"""Rate limits per key on the terminal API (/api/v1/pos): the request over the limit answers 429
``rate_limited`` with Retry-After and writes nothing, other tills go on, app processes sharing
Redis share the counts, made-up keys are limited by address, and 0 turns the limit off.

Time is the app's clock (``clock.advance``), never a sleep: windows are whole minutes of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import msgspec
import pytest
import redis
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from sqlalchemy import select

from loyalty.app.factory import create_app
from loyalty.app.rate_limits import POS_RATE_LIMIT_STORE, RateLimiter, credential_of
from loyalty.app.settings import DEFAULT_POS_RATE_LIMIT, Settings
from loyalty.db.tables import members
from tests.app import conftest
from tests.app.conftest import START, MutableClock, Stack, open_stack
from tests.app.staff_session import Manager
from tests.support.problems import assert_problem

POS = "/api/v1/pos"
LIMIT = 3
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
StackFactory = Callable[..., Stack]


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, clock: MutableClock) -> Iterator[StackFactory]:
    """``limited(url, per_minute, redis_url=None, merchant_ids=None)``: a stack whose terminal
    API allows ``per_minute`` requests per key (``open_stack`` with LOYALTY_POS_RATE_LIMIT)."""
    with ExitStack() as exits:

        def factory(
            url: str,
            per_minute: int,
            *,
            redis_url: str | None = None,
            merchant_ids: tuple[int, int] | None = None,
        ) -> Stack:
            def limited_app(settings: Settings, **kwargs: Any) -> Any:
                settings = msgspec.structs.replace(settings, pos_rate_limit=per_minute)
                return create_app(settings, **kwargs)

            monkeypatch.setattr(conftest, "create_app", limited_app)
            return open_stack(exits, url, clock, redis_url=redis_url, merchant_ids=merchant_ids)

        yield factory


class Shop:
    """A program with a member and two tills, ``kasse-1`` and ``kasse-2``, each with its key."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.manager = Manager(stack)
        program = self.manager.call(
            "POST", "/programs", {"code": "kasse", "name": "Kasse", "currency": "EUR"}, 201
        )
        self.program_id = program["program_id"]
        self.keys = [self.new_terminal(f"kasse-{n}") for n in (1, 2)]
        member = stack.shop.ok(f"/programs/{self.program_id}/members", {"display_name": "Mia"})
        self.member_id: int = member["member_id"]
        self.card = str(
            stack.read_db(
                lambda conn: conn.scalar(
                    select(members.c.card_number).where(members.c.id == self.member_id)
                )
            )
        )

    def new_terminal(self, code: str) -> str:
        issued = self.manager.call(
            "POST",
            "/terminals",
            {"program_id": self.program_id, "code": code, "location": "berlin", "name": code},
            201,
        )
        key: str = issued["api_key"]
        return key


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def terminal(stack: Stack, headers: dict[str, str]) -> Any:
    return stack.client.get(f"{POS}/terminal", headers=headers)


def assert_rate_limited(response: Any, retry_after: int) -> dict[str, Any]:
    body = assert_problem(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == str(retry_after)
    assert (body["limit"], body["retry_after"]) == (LIMIT, retry_after)
    return body


def test_the_request_over_the_limit_is_refused_and_other_tills_go_on(
    sqlite_url: str, limited: StackFactory
) -> None:
    stack = limited(sqlite_url, LIMIT)
    shop = Shop(stack)
    key_a, key_b = shop.keys
    for remaining in (2, 1, 0):
        answer = terminal(stack, bearer(key_a))
        assert answer.status_code == 200, answer.text
        assert answer.headers["RateLimit-Limit"] == str(LIMIT)
        assert answer.headers["RateLimit-Remaining"] == str(remaining)
        assert answer.headers["RateLimit-Policy"] == f"{LIMIT}; w=60"
        assert answer.headers["RateLimit-Reset"] == "60"

    stack.clock.advance(seconds=15)
    refused = terminal(stack, bearer(key_a))
    body = assert_rate_limited(refused, 45)
    assert body["instance"] == f"{POS}/terminal"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == "45"
    # Every route of the terminal API counts against the same key.
    identify = stack.client.post(
        f"{POS}/identify", json={"member": {"value": shop.card}}, headers=bearer(key_a)
    )
    assert_rate_limited(identify, 45)

    # Another till's key has its own allowance, and so has the shop's ledger API.
    other = terminal(stack, bearer(key_b))
    assert other.status_code == 200, other.text
    assert other.json()["terminal_code"] == "kasse-2"
    assert other.headers["RateLimit-Remaining"] == str(LIMIT - 1)
    for _ in range(LIMIT + 1):
        stack.shop.read(f"/programs/{shop.program_id}/members/{shop.member_id}/balance")

    # The next minute of the app's clock starts afresh.
    stack.clock.advance(seconds=45)
    again = terminal(stack, bearer(key_a))
    assert again.status_code == 200, again.text
    assert again.headers["RateLimit-Remaining"] == str(LIMIT - 1)


def test_a_refused_complete_writes_nothing(sqlite_url: str, limited: StackFactory) -> None:
    stack = limited(sqlite_url, LIMIT)
    shop = Shop(stack)
    till = bearer(shop.keys[0])
    for _ in range(LIMIT):
        assert terminal(stack, till).status_code == 200
    before = stack.snapshot()

    sale = {
        "occurred_at": stack.clock.now.isoformat(),
        "member": {"value": shop.card},
        "order": {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "BROT", "quantity": 1, "unit_price": 10_000}],
        },
    }
    refused = stack.client.post(f"{POS}/transactions/T-1/complete", json=sale, headers=till)
    assert_rate_limited(refused, 60)

    assert stack.snapshot() == before
    stack.clock.advance(minutes=1)
    missing = stack.client.get(f"{POS}/transactions/T-1", headers=till)
    assert_problem(missing, 404, "transaction_not_found")
    # The till sends it again in the next minute: it is carried out once, now.
    done = stack.client.post(f"{POS}/transactions/T-1/complete", json=sale, headers=till)
    assert done.status_code == 200, done.text
    assert done.json()["points_earned"] == 100


def test_staff_at_a_till_count_per_till(sqlite_url: str, limited: StackFactory) -> None:
    stack = limited(sqlite_url, LIMIT)
    shop = Shop(stack)
    at_first = {**shop.manager.headers, "X-Terminal": "kasse-1"}
    for _ in range(LIMIT):
        assert terminal(stack, at_first).status_code == 200
    assert_rate_limited(terminal(stack, at_first), 60)
    # The same staff login at another till, and that till's own key, go on.
    at_second = terminal(stack, {**shop.manager.headers, "X-Terminal": "kasse-2"})
    assert at_second.status_code == 200, at_second.text
    assert at_second.json()["terminal_code"] == "kasse-2"
    assert terminal(stack, bearer(shop.keys[0])).status_code == 200


def test_made_up_keys_are_limited_by_address_and_working_tills_go_on(
    sqlite_url: str, limited: StackFactory
) -> None:
    stack = limited(sqlite_url, LIMIT)
    shop = Shop(stack)
    key_a = shop.keys[0]
    prefix = key_a.split("_")[1]
    assert terminal(stack, bearer(key_a)).status_code == 200

    # Each made-up key would have a fresh allowance of its own: the failures of the address
    # count instead. A wrong secret with a real till's prefix is another key, too.
    made_up = (f"lk_{prefix}_wrong-secret", "lk_0000_nope", "no-such-staff-token")
    for key in made_up:
        headers = bearer(key, **({"X-Terminal": "kasse-1"} if key.startswith("no-") else {}))
        assert_problem(terminal(stack, headers), 401, "unauthorized")
    assert_rate_limited(terminal(stack, bearer("lk_1111_guess")), 60)
    assert_rate_limited(terminal(stack, {}), 60)
    assert_rate_limited(terminal(stack, bearer("not a terminal key")), 60)

    # A till that authenticated before is still served from that address; so is its own
    # allowance untouched by the made-up keys (its second request of the minute).
    served = terminal(stack, bearer(key_a))
    assert served.status_code == 200, served.text
    assert served.headers["RateLimit-Remaining"] == str(LIMIT - 2)
    # A key never seen working waits for the next minute.
    assert_rate_limited(terminal(stack, bearer(shop.keys[1])), 60)
    stack.clock.advance(minutes=1)
    assert terminal(stack, bearer(shop.keys[1])).status_code == 200


def test_the_limit_zero_turns_it_off(sqlite_url: str, limited: StackFactory) -> None:
    stack = limited(sqlite_url, 0)
    shop = Shop(stack)
    for _ in range(20):
        answer = terminal(stack, bearer(shop.keys[0]))
        assert answer.status_code == 200, answer.text
        assert "RateLimit-Limit" not in answer.headers
    for _ in range(20):
        assert_problem(terminal(stack, bearer("lk_0000_nope")), 401, "unauthorized")


def test_two_apps_sharing_redis_share_the_count(
    sqlite_url: str, redis_url: str, limited: StackFactory
) -> None:
    first = limited(sqlite_url, LIMIT, redis_url=redis_url)
    shop = Shop(first)
    second = limited(
        sqlite_url,
        LIMIT,
        redis_url=redis_url,
        merchant_ids=(first.shop.merchant_id, first.rival.merchant_id),
    )
    key_a, key_b = shop.keys
    assert terminal(first, bearer(key_a)).status_code == 200
    assert terminal(second, bearer(key_a)).status_code == 200
    last = terminal(first, bearer(key_a))
    assert last.status_code == 200
    assert last.headers["RateLimit-Remaining"] == "0"
    assert_rate_limited(terminal(second, bearer(key_a)), 60)
    assert_rate_limited(terminal(first, bearer(key_a)), 60)
    assert terminal(second, bearer(key_b)).status_code == 200

    # The counts are in the registry's store "pos_rate_limits"; no key holds a secret.
    client = redis.Redis.from_url(redis_url)
    try:
        stored = [key.decode() for key in client.scan_iter(f"{POS_RATE_LIMIT_STORE}:*")]
    finally:
        client.close()
    assert stored
    prefix_a = key_a.split("_")[1]
    assert any(key.startswith(f"{POS_RATE_LIMIT_STORE}:key:{prefix_a}:") for key in stored)
    for key in stored:
        assert key_a.split("_", 2)[2] not in key
        assert key_b.split("_", 2)[2] not in key

    # A new minute for both.
    first.clock.advance(minutes=1)
    assert terminal(second, bearer(key_a)).status_code == 200


async def test_counts_are_atomic_in_redis_and_in_memory(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        for store in (RedisStore(client, namespace=POS_RATE_LIMIT_STORE), MemoryStore()):
            limiter = RateLimiter(store, per_minute=LIMIT, clock=lambda: START)
            tallies = await asyncio.gather(
                *(limiter.counter.tally("key:x:1", "failed:a:1", None, 60) for _ in range(50))
            )
            assert sorted(tally.count for tally in tallies) == list(range(1, 51))
    finally:
        await client.aclose()


def test_the_counted_names_carry_no_secret() -> None:
    key = "lk_0a1b2c3d4e5f_" + "s3cr3t" * 7
    name = credential_of(f"Bearer {key}", None)
    assert name is not None
    assert name.startswith("key:0a1b2c3d4e5f:")
    assert "s3cr3t" not in name
    # Another secret with the same prefix is another name: nobody uses up a till's allowance
    # by knowing its prefix.
    assert credential_of("Bearer lk_0a1b2c3d4e5f_guess", None) != name
    assert credential_of(f"bearer  {key} ", "ignored") == name
    staff_1 = credential_of("Bearer staff-session-token", "kasse-1")
    staff_2 = credential_of("Bearer staff-session-token", "kasse-2")
    assert staff_1 is not None
    assert staff_2 is not None
    assert staff_1 != staff_2
    assert "staff-session-token" not in staff_1
    # Without a usable credential: counted by address only.
    for authorization in (None, "", "Basic abc", "Bearer lk_nosecret", "Bearer "):
        assert credential_of(authorization, None) is None
    assert credential_of("Bearer staff-session-token", None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_POS_RATE_LIMIT), ("", DEFAULT_POS_RATE_LIMIT), ("0", 0), (" 25 ", 25)],
)
def test_the_limit_comes_from_the_environment(value: str | None, expected: int) -> None:
    environ = {} if value is None else {"LOYALTY_POS_RATE_LIMIT": value}
    assert Settings.from_env(environ).pos_rate_limit == expected


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", "٣"])
def test_a_bad_limit_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValueError, match="LOYALTY_POS_RATE_LIMIT"):
        Settings.from_env({"LOYALTY_POS_RATE_LIMIT": value})


def test_the_default_allows_a_busy_till() -> None:
    assert DEFAULT_POS_RATE_LIMIT == 600
    assert Settings().pos_rate_limit == DEFAULT_POS_RATE_LIMIT


def test_tills_keep_selling_when_the_store_is_away(sqlite_url: str, limited: StackFactory) -> None:
    """Redis down: requests go uncounted (a warning is logged once a minute), not refused."""
    stack = limited(sqlite_url, LIMIT, redis_url=UNREACHABLE_REDIS)
    shop = Shop(stack)
    for _ in range(LIMIT + 2):
        answer = terminal(stack, bearer(shop.keys[0]))
        assert answer.status_code == 200, answer.text
        assert "RateLimit-Limit" not in answer.headers
