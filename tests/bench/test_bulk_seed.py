"""The benchmark's seeder writes what the services would have written.

One throw-away PostgreSQL database is seeded (300 members, 60 days) and grown (to 1,000
members and 10,000 entries) once for the module; the tests then hold it against the services'
own rules: ``ledger verify``, every reference, every order priced again by the domain, every
tier state replayed, every lot's expiry, and a wallet code identifying its member at the till.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.engine import make_url

from bench import bulk_seed
from bench.bulk_seed import (
    BenchProgram,
    grow_ledger,
    rotating_code_for,
    seed_program,
)
from loyalty.app.factory import create_app
from loyalty.app.settings import Settings
from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import metadata
from loyalty.domain import tiers as t
from loyalty.domain.cards import check_card_number
from loyalty.domain.earning import MemberContext, quote
from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy
from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.orders import Orders
from loyalty.services.programs import Programs
from loyalty.services.quotes import BasketDocument, BasketLineDocument, quote_view
from loyalty.services.rules_in_force import RulesInForce, find_rules_in_force
from loyalty.services.verify import verify_ledger
from tests.support import services

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

SECRET_KEY = "bench-seed-test-secret-key"
MEMBERS, DAYS, TERMINALS = 300, 60, 3
GROWN_MEMBERS, GROWN_ENTRIES = 1_000, 10_000


@dataclass(frozen=True)
class Seeded:
    url: str
    program: BenchProgram
    #: Row counts right after seeding, before growing.
    seeded: dict[str, int]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def work() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_dsn(url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return services.run_async(work)


def count(url: str, table: str) -> int:
    return int(fetch(url, f"SELECT count(*) AS n FROM {table}")[0]["n"])


@pytest.fixture(scope="module")
def seeded() -> Iterator[Seeded]:
    server = services.postgres_server_url()
    with services.fresh_postgres_database(server, migrate=False) as url:
        program = services.run_async(
            lambda: seed_program(
                url, members=MEMBERS, days=DAYS, terminals=TERMINALS, secret_key=SECRET_KEY
            )
        )
        after_seed = {table: count(url, table) for table in ("members", "entries", "orders")}
        with pytest.MonkeyPatch.context() as patch:
            # Small cohorts: several load side by side, as a million members do.
            patch.setattr(bulk_seed, "GROW_COHORT", 150)
            services.run_async(
                lambda: grow_ledger(
                    url, program, members_total=GROWN_MEMBERS, entries_total=GROWN_ENTRIES
                )
            )
        yield Seeded(url, program, after_seed)


def rules_of(seeded: Seeded) -> RulesInForce:
    async def work() -> RulesInForce:
        engine = create_engine(seeded.url)
        try:

            async def read(conn: Any) -> RulesInForce:
                found = await find_rules_in_force(
                    conn, seeded.program.program_id, datetime.now(UTC)
                )
                assert found is not None
                return found

            return await in_transaction(engine, read, read_only=True)
        finally:
            await engine.dispose()

    return services.run_async(work)


def test_the_program_has_the_asked_shape(seeded: Seeded) -> None:
    found = rules_of(seeded)
    assert found.version == 2
    assert found.rules.tiers is not None
    assert [level.code for level in found.rules.tiers.levels] == ["bronze", "silber", "gold"]
    assert len(found.rules.earning.rules) == 10
    assert len(found.rules.earning.promotions) == 2
    program_id = seeded.program.program_id
    rewards = fetch(
        seeded.url, "SELECT count(*) AS n FROM rewards WHERE program_id = $1", program_id
    )
    assert rewards[0]["n"] == 20
    keys = fetch(
        seeded.url,
        """SELECT count(*) AS n FROM terminal_keys k JOIN terminals t ON t.id = k.terminal_id
           WHERE t.program_id = $1""",
        program_id,
    )
    assert keys[0]["n"] == TERMINALS == len(seeded.program.terminal_keys)
    assert len(set(seeded.program.terminal_keys)) == TERMINALS


def test_the_counts_asked_for(seeded: Seeded) -> None:
    assert seeded.seeded["members"] == MEMBERS
    assert seeded.seeded["orders"] > MEMBERS // 4
    assert count(seeded.url, "members") == GROWN_MEMBERS
    # Every journal has two entries: an odd remainder leaves one entry out.
    missing = GROWN_ENTRIES - seeded.seeded["entries"]
    assert count(seeded.url, "entries") == GROWN_ENTRIES - missing % 2
    assert count(seeded.url, "accounts") == GROWN_MEMBERS + 4  # and the 4 system accounts


def test_members_most_active_first_with_valid_unique_cards(seeded: Seeded) -> None:
    members = seeded.program.members
    assert len(members) == MEMBERS
    cards = [member.card_number for member in members]
    assert all(check_card_number(card) == card for card in cards)
    everyone = fetch(seeded.url, "SELECT card_number FROM members")
    assert len({row["card_number"] for row in everyone}) == GROWN_MEMBERS
    operations = {
        row["member_id"]: row["version"]
        for row in fetch(seeded.url, "SELECT member_id, version FROM accounts")
    }
    activity = [operations[member.member_id] for member in members]
    assert activity == sorted(activity, reverse=True)
    assert activity[0] > activity[len(activity) // 2]


def test_ledger_verify_finds_nothing(seeded: Seeded) -> None:
    async def work() -> list[Any]:
        engine = create_engine(seeded.url)
        try:
            return await verify_ledger(engine)
        finally:
            await engine.dispose()

    assert services.run_async(work) == []
    vouchers = fetch(
        seeded.url,
        """SELECT count(DISTINCT j.id) AS n FROM journals j
           JOIN lot_draws d ON d.journal_id = j.id
           WHERE j.kind = 'redeem' AND j.account_id IN (SELECT account_id FROM orders)""",
    )
    assert vouchers[0]["n"] > 0  # the seeded history redeems, drawing on lots, too
    wrong = fetch(
        seeded.url,
        """SELECT a.id FROM accounts a
           LEFT JOIN (SELECT account_id, sum(amount) AS total FROM entries GROUP BY 1) e
             ON e.account_id = a.id
           WHERE a.kind = 'member' AND a.posted <> coalesce(e.total, 0)""",
    )
    assert wrong == []
    versions = fetch(
        seeded.url,
        """SELECT a.id FROM accounts a
           LEFT JOIN (SELECT account_id, count(*) AS n FROM journals GROUP BY 1) j
             ON j.account_id = a.id
           WHERE a.kind = 'member' AND a.version <> coalesce(j.n, 0)""",
    )
    assert versions == []


def test_every_reference_points_at_a_row(seeded: Seeded) -> None:
    """The bulk load does not check foreign keys row by row: every one is checked here."""
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if not isinstance(constraint, ForeignKeyConstraint):
                continue
            (element,) = constraint.elements
            column, target = element.parent.name, element.column
            orphans = fetch(
                seeded.url,
                f"""SELECT count(*) AS n FROM {table.name} s
                    WHERE s.{column} IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM {target.table.name} r WHERE r.{target.name} = s.{column})""",
            )
            assert orphans[0]["n"] == 0, f"{table.name}.{column}"


def test_orders_are_priced_as_the_services_price_them(seeded: Seeded) -> None:
    found = rules_of(seeded)
    assert found.rules.tiers is not None
    levels = {level.code: level for level in found.rules.tiers.levels}
    orders = fetch(
        seeded.url,
        """SELECT o.*, j.points AS journal_points, j.effective_at, j.reference AS journal_ref,
                  l.original, l.expires_at
           FROM orders o JOIN journals j ON j.id = o.journal_id
           JOIN lots l ON l.journal_id = j.id""",
    )
    assert len(orders) == seeded.seeded["orders"]
    awards: dict[int, dict[str, int]] = defaultdict(dict)
    for row in fetch(seeded.url, "SELECT order_id, promotion_code, points FROM promotion_awards"):
        awards[row["order_id"]][row["promotion_code"]] = row["points"]
    expiry = ExpiryPolicy(ExpiryKind.END_OF_MONTH_AFTER_MONTHS, 24, "Europe/Berlin")
    for order in orders:
        basket = msgspec.convert(json.loads(order["basket"]), BasketDocument)
        level = levels[order["tier"]]
        result = quote(
            basket.basket(), found.rules.earning, level, order["occurred_at"], MemberContext()
        )
        view = msgspec.to_builtins(quote_view(result, found.version, level.code))
        assert json.loads(order["quote"]) == view
        assert order["points"] == order["journal_points"] == order["original"] == result.total
        assert order["qualifying_spend"] == result.qualifying_spend
        assert awards.get(order["id"], {}) == result.promotion_points
        assert order["journal_ref"] == f"order:{order['reference']}"
        assert order["effective_at"] == order["occurred_at"]
        assert order["expires_at"] == expiry.expires_at(order["occurred_at"])
    grown = fetch(
        seeded.url,
        "SELECT effective_at, expires_at FROM lots JOIN journals j ON j.id = lots.journal_id",
    )
    assert all(row["expires_at"] == expiry.expires_at(row["effective_at"]) for row in grown)


def test_tier_states_follow_the_qualifying_activity(seeded: Seeded) -> None:
    """Replay every member's purchases through the domain's tier rules, as each order would
    have: the level each order was priced with, the state, its review and the changes."""
    policy = rules_of(seeded).rules.tiers
    assert policy is not None
    activity = defaultdict(list)
    for row in fetch(
        seeded.url,
        """SELECT q.account_id, q.occurred_at, q.spend, o.tier, a.created_at AS joined_at
           FROM qualifying_activity q JOIN orders o ON o.id = q.order_id
           JOIN accounts a ON a.id = q.account_id ORDER BY q.account_id, q.occurred_at, q.id""",
    ):
        activity[row["account_id"]].append(row)
    stored = {row["account_id"]: row for row in fetch(seeded.url, "SELECT * FROM tier_states")}
    changes = defaultdict(list)
    for row in fetch(seeded.url, "SELECT * FROM tier_changes ORDER BY id"):
        changes[row["account_id"]].append(
            (row["before"], row["after"], row["reason"], row["at"], row["qualifying_total"])
        )
    assert set(stored) == set(activity)
    reached = set()
    for account_id, purchases in activity.items():
        joined = purchases[0]["joined_at"]
        state, enrolled = t.enrolled(policy, joined, purchases[0]["occurred_at"])
        expected: list[tuple[str | None, str, str, datetime, int | None]] = [
            (enrolled.before, enrolled.after, str(enrolled.reason), enrolled.at, None)
        ]
        done: list[tuple[datetime, int]] = []
        for purchase in purchases:
            at = purchase["occurred_at"]
            assert t.effective(policy, state, at).code == purchase["tier"]
            done.append((at, purchase["spend"]))
            start, end = t.qualification_window(policy, joined, at)
            total = sum(spend for moment, spend in done if start <= moment < end)
            state, change = t.after_qualifying_event(policy, state, total, at)
            if change is not None:
                expected.append((change.before, change.after, str(change.reason), at, total))
        row = stored[account_id]
        assert (row["earned"], row["since"], row["review_at"]) == (
            state.earned,
            state.since,
            state.review_at,
        )
        assert row["review_due"] == t.review_due(policy, state)
        assert changes[account_id] == expected
        reached.add(state.earned)
    # The history's most active members (a few shop nearly daily) move up.
    assert {"bronze", "silber"} <= reached


def test_a_wallet_code_identifies_its_member_at_the_till(seeded: Seeded) -> None:
    program = seeded.program
    member = program.members[0]
    balance = fetch(
        seeded.url, "SELECT posted FROM accounts WHERE member_id = $1", member.member_id
    )[0]["posted"]
    tier = fetch(
        seeded.url,
        """SELECT s.earned FROM tier_states s JOIN accounts a ON a.id = s.account_id
           WHERE a.member_id = $1""",
        member.member_id,
    )[0]["earned"]
    settings = Settings(
        database_url=seeded.url, secret_key=SECRET_KEY, sweep_interval_seconds=0, db_pool_size=2
    )
    app = create_app(settings)
    with ExitStack() as exits:
        client = exits.enter_context(TestClient(app))
        exits.callback(client.blocking_portal.call, app.state.engine.dispose)
        headers = {"Authorization": f"Bearer {program.terminal_keys[-1]}"}
        code = rotating_code_for(program, member, datetime.now(UTC))
        response = client.post(
            "/api/v1/pos/identify", json={"member": {"value": code}}, headers=headers
        )
        assert response.status_code == 200, response.text
        scanned = response.json()
        assert scanned["member_id"] == member.member_id
        assert scanned["identified_by"] == "rotating_code"
        assert scanned["balance"]["posted"] == balance > 0
        assert scanned["tier"]["code"] == tier
        by_card = client.post(
            "/api/v1/pos/identify",
            json={"member": {"value": member.card_number}},
            headers=headers,
        )
        assert by_card.json()["member_id"] == member.member_id


def test_the_services_carry_on_where_the_seed_left_off(seeded: Seeded) -> None:
    """Runs last (it writes): a new member's purchase and a seeded member's redemption go
    through the real services on the seeded ledger, and the ledger stays consistent."""
    program = seeded.program
    member = program.members[0]
    posted = fetch(
        seeded.url, "SELECT posted FROM accounts WHERE member_id = $1", member.member_id
    )[0]["posted"]

    async def work() -> tuple[int, int, list[Any]]:
        engine = create_engine(seeded.url)
        try:
            ledger = Ledger(engine)
            caller = Caller(bulk_seed.TILL_SYSTEM, program.merchant_id)
            enrolled = await Programs(ledger.executor).enroll(
                caller, "after-seed-member", program_id=program.program_id, display_name="Neu"
            )
            basket = BasketDocument(
                currency="EUR",
                lines=[BasketLineDocument(line_id="1", sku="BROT", quantity=2, unit_price=450)],
            )
            order = await Orders(ledger).record(
                caller,
                "after-seed-order",
                program_id=program.program_id,
                member_id=enrolled.result.member_id,
                reference="AFTER-SEED-1",
                basket=basket,
            )
            redeemed = await ledger.redeem(
                caller,
                "after-seed-redeem",
                program_id=program.program_id,
                member_id=member.member_id,
                points=posted,
            )
            return order.result.points, redeemed.result.balance.posted, await verify_ledger(engine)
        finally:
            await engine.dispose()

    earned, left, found = services.run_async(work)
    assert earned > 0
    assert left == 0
    assert found == []
    scratch = fetch(seeded.url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%'")
    assert scratch == []
