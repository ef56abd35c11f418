"""Two app processes on one PostgreSQL database and one Redis, as a chain runs them behind a
load balancer (docs/SCALING.md).

Each process is ``loyalty serve`` (uvicorn with the app factory) on a loopback port of its own.
The shop (merchant, owner, program, reward, till) and the members with points are made through
the services; everything after that goes over HTTP, split between the processes. What it shows:

- concurrent redeems through both processes never overdraw: exactly as many succeed as the
  balance covers, the rest are refused with ``insufficient_points``, and the ledger verifies;
- one Idempotency-Key sent to both processes at once posts once;
- a wallet listening on one process hears of a sale completed through the other (Redis
  pub/sub carries the balance between them), also after Redis dropped their connections;
- a process told to stop lets go of its open wallet streams within ``loyalty serve``'s
  graceful-shutdown time, and the wallet listens on another process with the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from loyalty.app.cli import GRACEFUL_SHUTDOWN_SECONDS
from loyalty.db.engine import create_engine
from loyalty.db.tables import merchants
from loyalty.domain.rewards import RewardKind
from loyalty.services.context import Caller, Staff
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.rewards import Rewards
from loyalty.services.rule_documents import LocalizedText, RewardDefinition
from loyalty.services.staff import StaffDirectory
from loyalty.services.terminals import Terminals
from loyalty.services.verify import verify_ledger
from tests.support import services

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.integration]

#: Fixed, so that both processes derive the same secrets (rotating codes, sessions, vault).
SECRET_KEY = "scale-out-test-secret-key-8c1f0e27"
#: The shop's back office, a client of the ledger API (LOYALTY_API_KEYS).
BACK_OFFICE = "back-office"
BACK_OFFICE_SECRET = "scale-out-back-office-secret"
OWNER_EMAIL = "owner@scale.example"
STARTUP_TIMEOUT_SECONDS = 40
STOP_TIMEOUT_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30
#: The ``loyalty`` command, run by this interpreter.
LOYALTY = (sys.executable, "-c", "from loyalty.app.cli import main; main()")
#: How soon a balance must reach a wallet on the other process.
LIVE_TIMEOUT_SECONDS = 5
#: The reward the tills redeem, and what the ledger API redeems per request.
COFFEE = "kaffee"
COFFEE_POINTS = 100


@dataclass(frozen=True)
class Shop:
    database_url: str
    merchant_id: int
    program_id: int
    till_key: str
    owner_password: str


@dataclass(frozen=True)
class AppProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass(frozen=True)
class Cluster:
    shop: Shop
    apps: tuple[AppProcess, AppProcess]
    env: dict[str, str]
    logs: Path

    @contextlib.contextmanager
    def another_process(self) -> Iterator[AppProcess]:
        """One more app process on the same database and Redis, stopped when the block ends."""
        app = start_app(self.env, self.logs / f"app-{secrets.token_hex(3)}.log")
        try:
            wait_until_ready((app,))
            yield app
        finally:
            stop_app(app)

    def ledger_client(self, index: int) -> httpx.AsyncClient:
        """The back office's ledger API client on one process."""
        return _client(
            self.apps[index], f"/api/v1/programs/{self.shop.program_id}", BACK_OFFICE_SECRET
        )

    def till_client(self, index: int) -> httpx.AsyncClient:
        """The till's terminal API client on one process."""
        return _client(self.apps[index], "/api/v1/pos", self.shop.till_key)


def _client(
    app: AppProcess, path: str, secret: str | None, cookies: httpx.Cookies | None = None
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(
        base_url=f"{app.base_url}{path}",
        headers=headers,
        cookies=cookies,
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


# --- The shop and its members, made through the services -------------------------------------


async def open_shop(database_url: str) -> Shop:
    """A merchant with an owner, a program (one point per euro), a coffee reward for
    COFFEE_POINTS and one till."""
    engine = create_engine(database_url)
    try:
        # No service makes merchants (seed-demo and the benches insert them the same way).
        async with engine.begin() as conn:
            merchant_id = await conn.scalar(
                merchants.insert()
                .values(name="Scale-out bakery", created_at=datetime.now(UTC))
                .returning(merchants.c.id)
            )
        assert merchant_id is not None
        owner_password = secrets.token_urlsafe(18)
        owner = await StaffDirectory(engine).provision_staff(
            merchant_id,
            email=OWNER_EMAIL,
            password=owner_password,
            role="owner",
            display_name="Owner",
        )
        staff = Staff(owner.staff_id, merchant_id, "owner", owner.email, owner.display_name)
        ledger = Ledger(engine)
        program = await Programs(ledger.executor).create_program(
            staff.caller, "program", code="baeckerei", name="Bäckerei", currency="EUR"
        )
        program_id = program.result.program_id
        await Rewards(ledger).create_reward(
            staff,
            program_id,
            RewardDefinition(
                code=COFFEE,
                kind=RewardKind.AMOUNT_OFF,
                name=LocalizedText(de="Kaffee gratis", en="Free coffee"),
                points_cost=COFFEE_POINTS,
                amount_off=250,
            ),
        )
        till = await Terminals(engine).create_terminal(
            staff, program_id=program_id, code="kasse-1", location="mitte", name="Kasse 1"
        )
        return Shop(database_url, merchant_id, program_id, till.api_key, owner_password)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Member:
    member_id: int
    email: str


async def enrol_with_points(shop: Shop, points: int) -> Member:
    """A new member of the program with ``points`` earned, as the back office enrols one."""
    caller = Caller(BACK_OFFICE, shop.merchant_id)
    email = f"member.{secrets.token_hex(4)}@scale.example"
    engine = create_engine(shop.database_url)
    try:
        ledger = Ledger(engine)
        enrolled = await Programs(ledger.executor).enroll(
            caller,
            f"enrol-{email}",
            program_id=shop.program_id,
            display_name="Scale Member",
            email=email,
        )
        member_id = enrolled.result.member_id
        await ledger.earn(
            caller,
            f"welcome-{email}",
            program_id=shop.program_id,
            member_id=member_id,
            points=points,
        )
        return Member(member_id, email)
    finally:
        await engine.dispose()


async def ledger_discrepancies(database_url: str) -> list[str]:
    """What ``loyalty ledger verify`` would print."""
    engine = create_engine(database_url)
    try:
        return [str(found) for found in await verify_ledger(engine)]
    finally:
        await engine.dispose()


# --- Two app processes -----------------------------------------------------------------------


def start_app(env: dict[str, str], log: Path) -> AppProcess:
    """``loyalty serve`` (uvicorn with the app factory, as production runs it) on a free
    loopback port (should another program take it meanwhile, the start fails with the log)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*LOYALTY, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return AppProcess(f"http://127.0.0.1:{port}", process, log)


def wait_until_ready(apps: tuple[AppProcess, ...]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    waiting = list(apps)
    with httpx.Client(timeout=1.0) as client:
        while waiting:
            app = waiting[0]
            if app.process.poll() is not None:
                pytest.fail(f"an app process exited at start:\n{app.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{app.base_url}/ready").status_code == 200:
                    waiting.pop(0)
                    continue
            if time.monotonic() > deadline:
                pytest.fail(
                    f"an app process was not ready within {STARTUP_TIMEOUT_SECONDS} s:\n"
                    f"{app.log_text()}"
                )
            time.sleep(0.1)


def stop_app(app: AppProcess) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait()


@pytest.fixture(scope="module")
def cluster(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two app processes on a throw-away PostgreSQL database (dropped afterwards) and the test
    Redis (flushed first: no sign-in counts of earlier tests)."""
    services.flush_redis(redis_server_url)
    logs = tmp_path_factory.mktemp("scale-out")
    with services.fresh_postgres_database(services.postgres_server_url()) as database_url:
        shop = services.run_async(lambda: open_shop(database_url))
        env = {name: value for name, value in os.environ.items() if not name.startswith("LOYALTY_")}
        env.update(
            LOYALTY_DATABASE_URL=database_url,
            LOYALTY_REDIS_URL=redis_server_url,
            LOYALTY_SECRET_KEY=SECRET_KEY,
            LOYALTY_API_KEYS=f"{BACK_OFFICE}={BACK_OFFICE_SECRET}@{shop.merchant_id}",
            LOYALTY_SWEEP_INTERVAL_SECONDS="0",
            # One till key drives every concurrent request here.
            LOYALTY_POS_RATE_LIMIT="0",
            # Three processes at most, 10 connections each (pool and overflow): well inside
            # max_connections, on a server other tests use too.
            LOYALTY_DB_POOL_SIZE="5",
            PYTHONUNBUFFERED="1",
        )
        apps: list[AppProcess] = []
        try:
            for number in (1, 2):
                apps.append(start_app(env, logs / f"app-{number}.log"))
            wait_until_ready(tuple(apps))
            yield Cluster(shop, (apps[0], apps[1]), env, logs)
        finally:
            for app in apps:
                stop_app(app)


# --- Helpers for the answers -----------------------------------------------------------------


def problem_code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code = response.json().get("code")
        return str(code) if code is not None else None
    return None


def replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("idempotent-replayed") == "true")


async def balance_of(cluster: Cluster, member: Member, index: int = 0) -> dict[str, Any]:
    async with cluster.ledger_client(index) as client:
        answer = await client.get(f"/members/{member.member_id}/balance")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


# --- Redeems never overdraw -------------------------------------------------------------------


async def test_concurrent_redeems_through_both_processes_never_overdraw(cluster: Cluster) -> None:
    """32 redeems of 100 points at once on a member with 1,050: ledger API redeems and till
    redemptions (holds on open sales), each kind half through each process, each with its own
    key. Ten fit; the other 22 are refused with insufficient_points."""
    start = 1050
    member = await enrol_with_points(cluster.shop, start)
    requests = 32
    async with contextlib.AsyncExitStack() as stack:
        ledger = [await stack.enter_async_context(cluster.ledger_client(i)) for i in (0, 1)]
        tills = [await stack.enter_async_context(cluster.till_client(i)) for i in (0, 1)]
        run = secrets.token_hex(4)

        async def redeem(index: int) -> tuple[str, httpx.Response]:
            process = index % 2
            key = {"Idempotency-Key": f"redeem-{run}-{index}"}
            if index // 2 % 2 == 0:
                answer = await ledger[process].post(
                    f"/members/{member.member_id}/redeem",
                    json={"points": COFFEE_POINTS},
                    headers=key,
                )
                return "ledger", answer
            answer = await tills[process].post(
                f"/transactions/S-{run}-{index}/redemptions",
                json={"member": {"value": member.email}, "redemption": {"reward_code": COFFEE}},
                headers=key,
            )
            return "till", answer

        answers = await asyncio.gather(*(redeem(index) for index in range(requests)))

    unexpected = [
        (kind, answer.status_code, answer.text)
        for kind, answer in answers
        if answer.status_code != 201
        and (answer.status_code, problem_code(answer)) != (422, "insufficient_points")
    ]
    assert unexpected == []
    redeemed = [kind for kind, answer in answers if answer.status_code == 201]
    assert len(redeemed) == start // COFFEE_POINTS
    assert not any(replayed(answer) for _, answer in answers)

    balance = await balance_of(cluster, member, 1)
    spent = redeemed.count("ledger") * COFFEE_POINTS
    held = redeemed.count("till") * COFFEE_POINTS
    assert (balance["posted"], balance["held"]) == (start - spent, held)
    assert balance["available"] == start - len(redeemed) * COFFEE_POINTS == 50
    assert await ledger_discrepancies(cluster.shop.database_url) == []


async def test_one_idempotency_key_sent_to_both_processes_at_once_posts_once(
    cluster: Cluster,
) -> None:
    """Each key goes out four times at once, twice to each process: one request posts, the
    others answer its stored result (replayed) or idempotency_key_in_flight (409), and a retry
    of those replays the one journal."""
    start = 1000
    member = await enrol_with_points(cluster.shop, start)
    keys = [f"once-{secrets.token_hex(4)}-{n}" for n in range(5)]
    async with cluster.ledger_client(0) as first, cluster.ledger_client(1) as second:

        async def redeem(client: httpx.AsyncClient, key: str) -> httpx.Response:
            return await client.post(
                f"/members/{member.member_id}/redeem",
                json={"points": COFFEE_POINTS, "reference": key},
                headers={"Idempotency-Key": key},
            )

        for key in keys:
            answers = await asyncio.gather(
                *(redeem(client, key) for client in (first, second, first, second))
            )
            posted = [a for a in answers if a.status_code == 201 and not replayed(a)]
            assert len(posted) == 1, [(a.status_code, a.text) for a in answers]
            journal_id = posted[0].json()["journal_id"]
            for answer in answers:
                if answer is posted[0]:
                    continue
                if answer.status_code == 409:
                    assert problem_code(answer) == "idempotency_key_in_flight"
                    answer = await redeem(second, key)
                assert (answer.status_code, replayed(answer)) == (201, True), answer.text
                assert answer.json()["journal_id"] == journal_id

        history = await second.get(f"/members/{member.member_id}/history", params={"limit": 50})
    assert history.status_code == 200, history.text
    redeems = [item for item in history.json()["items"] if item["kind"] == "redeem"]
    assert sorted(item["reference"] for item in redeems) == sorted(keys)
    balance = await balance_of(cluster, member)
    assert balance["posted"] == start - len(keys) * COFFEE_POINTS
    assert await ledger_discrepancies(cluster.shop.database_url) == []


# --- A wallet on one process hears of a sale through the other ------------------------------


async def next_event(lines: AsyncIterator[str], name: str) -> str:
    """The data of the next server-sent event called ``name`` (comments and others skipped)."""
    event, data = "message", list[str]()
    async for line in lines:
        if line == "":
            if data and event == name:
                return "\n".join(data)
            event, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    raise AssertionError("the stream ended")


async def wait_for_comment(lines: AsyncIterator[str], comment: str) -> None:
    async for line in lines:
        if line.startswith(":") and line[1:].strip() == comment:
            return
    raise AssertionError("the stream ended")


async def sign_in_to_wallet(cluster: Cluster, wallet: httpx.AsyncClient, email: str) -> int:
    """Join on the wallet (process 1), read the code from the outbox as the owner sees it
    (process 2), sign in with it (process 1): the wallet client then holds the session."""
    pid = cluster.shop.program_id
    joined = await wallet.post(
        f"/api/v1/wallet/{pid}/enrollment",
        json={"display_name": "Mia Schulz", "email": email, "terms_accepted": True},
    )
    assert joined.status_code == 202, joined.text
    async with _client(cluster.apps[1], "/api/v1/admin", None) as admin:
        login = await admin.post(
            "/login", json={"email": OWNER_EMAIL, "password": cluster.shop.owner_password}
        )
        assert login.status_code == 200, login.text
        admin.headers["Authorization"] = f"Bearer {login.json()['token']}"
        outbox = await admin.get("/outbox")
        assert outbox.status_code == 200, outbox.text
    (mail,) = [mail for mail in outbox.json() if mail["to_address"] == email]
    code = re.search(r"\b(\d{6})\b", mail["body_text"])
    assert code is not None, mail["body_text"]
    signed_in = await wallet.post(
        f"/api/v1/wallet/{pid}/sign-in", json={"email": email, "code": code.group(1)}
    )
    assert signed_in.status_code == 200, signed_in.text
    return int(signed_in.json()["member_id"])


async def balance_heard_after_a_sale(
    wallet: httpx.AsyncClient, till: httpx.AsyncClient, pid: int, email: str, unit_price: int
) -> tuple[int, dict[str, int]]:
    """Open the member's live balance stream on the wallet's process, complete a sale for them
    at the till's, and return the points the sale earned and the balance the stream heard."""
    async with wallet.stream("GET", f"/api/v1/wallet/{pid}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        async with asyncio.timeout(LIVE_TIMEOUT_SECONDS):
            # Sent once the process has subscribed to the member's channel.
            await wait_for_comment(lines, "listening")

        sale = {
            "occurred_at": datetime.now(UTC).isoformat(),
            "member": {"value": email},
            "order": {
                "currency": "EUR",
                "lines": [
                    {"line_id": "1", "sku": "TORTE", "quantity": 1, "unit_price": unit_price}
                ],
            },
        }
        done = await till.post(f"/transactions/W-{secrets.token_hex(4)}/complete", json=sale)
        assert done.status_code == 200, done.text
        earned = int(done.json()["points_earned"])
        try:
            async with asyncio.timeout(LIVE_TIMEOUT_SECONDS):
                heard: dict[str, int] = json.loads(await next_event(lines, "balance"))
        except TimeoutError:
            pytest.fail(
                f"no balance reached the wallet within {LIVE_TIMEOUT_SECONDS} s of the sale "
                "through the other process"
            )
    return earned, heard


async def test_a_wallet_on_one_process_sees_a_sale_completed_through_the_other(
    cluster: Cluster,
) -> None:
    email = f"mia.{secrets.token_hex(4)}@scale.example"
    pid = cluster.shop.program_id
    async with _client(cluster.apps[0], "", None) as wallet, cluster.till_client(1) as till:
        await sign_in_to_wallet(cluster, wallet, email)
        earned, heard = await balance_heard_after_a_sale(wallet, till, pid, email, 4200)
    assert earned == 42
    assert heard == {"posted": 42, "held": 0, "available": 42}


def drop_redis_connections(redis_url: str) -> int:
    """What a Redis restart or failover does to the app processes: every connection to the
    test's Redis database is closed (this one's own excepted). The number closed."""
    client = redis.Redis.from_url(redis_url)
    try:
        own = client.client_id()
        database = client.connection_pool.connection_kwargs.get("db", 0)
        others = [
            found["id"]
            for found in client.client_list()
            if int(found["db"]) == int(database) and int(found["id"]) != own
        ]
        for client_id in others:
            client.client_kill_filter(_id=client_id)
        return len(others)
    finally:
        client.close()


async def test_wallets_keep_hearing_after_redis_drops_the_processes_connections(
    cluster: Cluster, redis_server_url: str
) -> None:
    """Both processes lose their Redis connections (the subscription of the wallet's process,
    the pooled one the till's process publishes on): the next sale still reaches the wallet."""
    email = f"ole.{secrets.token_hex(4)}@scale.example"
    pid = cluster.shop.program_id
    async with _client(cluster.apps[0], "", None) as wallet, cluster.till_client(1) as till:
        await sign_in_to_wallet(cluster, wallet, email)
        assert (await balance_heard_after_a_sale(wallet, till, pid, email, 1000))[1]["posted"] == 10

        assert drop_redis_connections(redis_server_url) >= 2
        _, heard = await balance_heard_after_a_sale(wallet, till, pid, email, 2000)
    assert heard == {"posted": 30, "held": 0, "available": 30}


async def test_a_stopping_process_lets_go_of_its_wallets_which_reconnect_to_another(
    cluster: Cluster,
) -> None:
    """A rolling deploy behind a load balancer: a process told to stop cuts the live balance
    streams it serves (they never end by themselves) within ``loyalty serve``'s graceful
    shutdown time and exits; the wallet's session, kept in the database, opens the stream on
    another process."""
    pid = cluster.shop.program_id
    events = f"/api/v1/wallet/{pid}/events"
    with cluster.another_process() as leaving:
        async with _client(cluster.apps[0], "", None) as wallet:
            await sign_in_to_wallet(cluster, wallet, f"lea.{secrets.token_hex(4)}@scale.example")
            bound = GRACEFUL_SHUTDOWN_SECONDS + LIVE_TIMEOUT_SECONDS
            async with (
                _client(leaving, "", None, wallet.cookies) as on_leaving,
                on_leaving.stream("GET", events) as stream,
            ):
                lines = stream.aiter_lines()
                async with asyncio.timeout(LIVE_TIMEOUT_SECONDS):
                    await wait_for_comment(lines, "listening")
                leaving.process.terminate()
                async with asyncio.timeout(bound):
                    # Cut mid-stream: the chunked body ends without its last chunk.
                    with contextlib.suppress(httpx.RemoteProtocolError):
                        async for _ in lines:
                            pass
            assert await asyncio.to_thread(leaving.process.wait, bound) is not None

            async with wallet.stream("GET", events) as stream:
                assert stream.status_code == 200
                async with asyncio.timeout(LIVE_TIMEOUT_SECONDS):
                    await wait_for_comment(stream.aiter_lines(), "listening")
