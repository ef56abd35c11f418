# ruff: noqa: S608 (the SQL is formatted with this module's own integers, dates and names only)
"""The benchmark's seeder: a realistic program through the services, then volume by bulk SQL.

``seed_program`` makes a German supermarket chain's program ("Frischepunkte", EUR) the way a
merchant would, through the services: the merchant's owner, the program, a rule set with three
tiers, ten earning rules and two promotions, twenty rewards, and one terminal with an API key per
simulated till. Then it adds members and a year of their purchases set-based on the server
(``COPY`` for what Python draws, ``INSERT ... SELECT`` over ``generate_series`` for the rest):
a few members shop almost daily, most now and then. The rows are those the services would have
written had every purchase gone through ``Orders.record`` (the central till system posting each
receipt through the program API) and every voucher through ``Ledger.redeem``, with the clock at
the moment of the purchase:

* an order priced by the published rule set with the tier the member held at that moment, its
  quote, basket and member context, its qualifying activity and promotion awards;
* an earn journal dated at the purchase with its two entries, a lot expiring at the end of the
  24th month after the purchase month (so nothing has expired yet), the cached balance and the
  account version (one save per journal);
* the tier state and the journal of tier changes: enrolled at the first purchase, upgraded when
  the spend of the last twelve months reached a level;
* a 500-point voucher redeemed, with its lot draws (soonest expiry first), when the points
  earned first pass 500, and half of the times they pass another 500.

Why set-based SQL can price orders exactly: the quote of a basket under this rule set depends on
the basket, the member's tier and the local time only through "is it Saturday" and "is it before
10:00" (no caps, no per-member limits, no budgets, no segments). Every basket is one of
``TEMPLATES`` and each is priced once per tier and time class by ``loyalty.domain.earning.quote``
itself. Tiers count spend over a rolling 12 months and the history is at most 365 days, so no
review falls due: the level an order is priced with is the one the member's spend before it
supports. Lots expire in the order they were earned, so a redemption's draws (soonest expiry
first) are the overlap of its cumulative range with the lots' cumulative ranges.

Idempotency keys are not written: they record requests, not ledger state, and the load
generator sends fresh keys. ``loyalty ledger verify`` reports no difference after seeding.

``grow_ledger`` adds members with plain earns and redemptions (``Ledger.earn`` and
``Ledger.redeem`` through the program API: journals, entries, lots, lot draws, balances) until
the database holds the asked numbers of members and ledger entries.

    .venv/bin/python bench/bulk_seed.py --members 100000 --days 365
    .venv/bin/python bench/bulk_seed.py --members 100000 --days 365 \\
        --grow-members 1000000 --grow-entries 10000000

The command line creates a database on LOYALTY_TEST_POSTGRES_URL's server, seeds it with
progress bars, prints timings and row counts, and drops it unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import accounts, merchants
from loyalty.domain.basket import LineKind
from loyalty.domain.cards import new_card_number, rotating_code
from loyalty.domain.earning import MemberContext, PromotionKind, RuleKind, quote
from loyalty.domain.expiry import ExpiryKind
from loyalty.domain.rewards import RewardKind
from loyalty.domain.tiers import DowngradePolicy, TierBasis, TierPolicy, TierWindow
from loyalty.services.context import Caller, Staff
from loyalty.services.ledger import Ledger
from loyalty.services.member_cards import card_secret
from loyalty.services.programs import Programs, ProgramSettings
from loyalty.services.quotes import (
    BasketDocument,
    BasketLineDocument,
    context_document,
    quote_view,
)
from loyalty.services.rewards import Rewards
from loyalty.services.rule_documents import (
    AudienceDocument,
    EarningRuleDocument,
    HoursDocument,
    LocalizedText,
    PromotionDocument,
    RewardDefinition,
    RuleSetDocument,
    ScopeDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from loyalty.services.rule_sets import RuleSets
from loyalty.services.rules_in_force import RulesInForce, find_rules_in_force
from loyalty.services.staff import StaffDirectory, StaffRole
from loyalty.services.terminals import Terminals

#: (stage, done, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class BenchMember:
    member_id: int
    card_number: str
    card_secret_version: int


@dataclass(frozen=True)
class BenchProgram:
    #: postgresql+asyncpg URL of the seeded database.
    database_url: str
    #: The LOYALTY_SECRET_KEY the app must run with (rotating codes are derived from it).
    secret_key: str
    merchant_id: int
    program_id: int
    #: Bearer API keys, one per simulated till.
    terminal_keys: tuple[str, ...]
    #: The program's members, most active first.
    members: tuple[BenchMember, ...]


def rotating_code_for(program: BenchProgram, member: BenchMember, at: datetime) -> str:
    """The 20-digit code the member's wallet shows at ``at``."""
    secret = card_secret(program.secret_key.encode(), member.member_id, member.card_secret_version)
    return rotating_code(member.member_id, secret, at)


# --- The program ---------------------------------------------------------------------------

TIMEZONE = "Europe/Berlin"
ZONE = ZoneInfo(TIMEZONE)
MERCHANT_NAME = "Frischmarkt Nord GmbH"
PROGRAM_CODE = "frischepunkte"
#: The merchant's central till system, an API client of the program API: it posts every
#: receipt of a member (an order) and every voucher a member takes (a redemption).
TILL_SYSTEM = "kassensystem"
OWNER_EMAIL = "inhaberin@frischmarkt.example"
#: Points expire at the end of the 24th month after the month they were earned in.
EXPIRY_MONTHS = 24
#: Qualifying spend (cents) over the last 12 months for silver and gold.
SILVER_SPEND = 30_000
GOLD_SPEND = 100_000
TIER_GRACE_DAYS = 30
#: The voucher members take when their balance passes another multiple of it.
VOUCHER_POINTS = 500
#: Members take their first voucher as soon as they can, later ones this often.
VOUCHER_SHARE = 0.5
#: After the purchase, the member takes the voucher at the service desk.
VOUCHER_DELAY = timedelta(seconds=90)
#: Every 5th operation of a grown member is a redemption of 80 % of the 4 earns before it.
GROWN_REDEEM_EVERY = 5
#: Distinct baskets; each is priced once per tier and time class with the real rules.
TEMPLATES = 240
MAX_DAYS = 365
#: Shops open 07:00-20:00 local time, Monday to Saturday; breakfast bonus until 10:00.
OPENS = 7 * 3600
OPEN_SECONDS = 13 * 3600
BREAKFAST_ENDS = 10 * 3600
#: Events per member are drawn below 2**20 (the pseudo-random keys leave room for that).
MAX_EVENTS_PER_MEMBER = 1_000
#: Member i's card number body is (i * CARD_FACTOR) mod 10**14: distinct for distinct members
#: (the factor is invertible modulo 10**14), and scattered like random numbers.
CARD_FACTOR = 73_856_093_462_719
CARD_BODY_MODULUS = 10**14
#: Recent purchases of a grown member are plain earns through the program API.
GROWN_REFERENCE = "kasse:"

STORES = (
    "hamburg-altona",
    "hamburg-eppendorf",
    "berlin-mitte",
    "berlin-prenzlauer-berg",
    "muenchen-schwabing",
    "koeln-ehrenfeld",
    "leipzig-zentrum",
    "hannover-list",
)
#: (SKU, category, price in cents)
CATALOGUE = (
    ("BROETCHEN-6", "backwaren", 210),
    ("BROT-VOLLKORN", "backwaren", 349),
    ("CROISSANT", "backwaren", 99),
    ("BREZEL", "backwaren", 79),
    ("BANANEN-1KG", "obst-gemuese", 169),
    ("AEPFEL-2KG", "obst-gemuese", 399),
    ("TOMATEN-500G", "obst-gemuese", 229),
    ("EISBERGSALAT", "obst-gemuese", 119),
    ("BIO-MILCH-1L", "bio", 159),
    ("BIO-EIER-10", "bio", 429),
    ("BIO-KAROTTEN-1KG", "bio", 199),
    ("BIO-HAFERFLOCKEN", "bio", 149),
    ("HOF-KAESE", "regional", 379),
    ("HEIDEHONIG", "regional", 649),
    ("ALTLAENDER-APFELSAFT", "regional", 249),
    ("MILCH-1L", "molkerei", 109),
    ("JOGHURT-500G", "molkerei", 129),
    ("BUTTER-250G", "molkerei", 229),
    ("GOUDA-400G", "molkerei", 279),
    ("HAEHNCHENBRUST", "fleisch", 699),
    ("HACKFLEISCH-500G", "fleisch", 499),
    ("SALAMI", "fleisch", 219),
    ("MINERALWASSER-6X1-5L", "getraenke", 354),
    ("PILS-KASTEN", "getraenke", 1599),
    ("ORANGENSAFT-1L", "getraenke", 179),
    ("KAFFEE-BOHNEN-1KG", "getraenke", 1299),
    ("ZAHNPASTA", "drogerie", 145),
    ("SHAMPOO", "drogerie", 295),
    ("WASCHMITTEL", "drogerie", 799),
    ("TOILETTENPAPIER-8", "drogerie", 349),
    ("SPAGHETTI-500G", "vorrat", 99),
    ("REIS-1KG", "vorrat", 179),
    ("RAPSOEL-1L", "vorrat", 299),
    ("WEIZENMEHL-1KG", "vorrat", 79),
    ("VOLLMILCHSCHOKOLADE", "suesswaren", 129),
    ("FRUCHTGUMMI", "suesswaren", 119),
    ("BUTTERKEKSE", "suesswaren", 149),
    ("PIZZA-SALAMI", "tiefkuehl", 299),
    ("RAHMSPINAT", "tiefkuehl", 149),
)
GIFT_CARD = ("GESCHENKKARTE-25", 2500)
FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Jonas", "Mia", "Leon", "Emma", "Finn", "Hannah", "Paul",
    "Lea", "Elias", "Marie", "Noah", "Clara", "Felix", "Laura", "Jakob", "Lena", "Moritz",
    "Sarah", "Tobias", "Julia", "David", "Nina", "Maximilian", "Johanna", "Ben", "Charlotte",
    "Niklas", "Katharina", "Jan", "Ida", "Tim", "Frieda", "Ole", "Greta", "Karl", "Helene",
    "Mehmet", "Ayşe", "Jörg", "Jürgen", "Sören", "Björn",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
    "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier",
    "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Yılmaz", "Kaya", "Nowak",
)  # fmt: skip
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ş": "s", "ı": "i", "é": "e"})


def _text(de: str, en: str) -> LocalizedText:
    return LocalizedText(de=de, en=en)


def program_rules(program_start: datetime) -> RuleSetDocument:
    """Ten earning rules, two promotions and three tiers on the spend of the last 12 months."""
    spend = RuleKind.SPEND
    return RuleSetDocument(
        earning_rules=[
            EarningRuleDocument(
                code="punkte-pro-euro",
                kind=spend,
                name=_text("1 Punkt je 1 € Einkauf", "1 point per 1 € spent"),
                points=1,
                per_amount=100,
            ),
            EarningRuleDocument(
                code="besuch",
                kind=RuleKind.VISIT,
                name=_text("Besuchsbonus ab 5 €", "Visit bonus from 5 €"),
                points=2,
                min_spend=500,
            ),
            EarningRuleDocument(
                code="wocheneinkauf",
                kind=RuleKind.MIN_SPEND_BONUS,
                name=_text("Wocheneinkauf ab 40 €", "Weekly shop from 40 €"),
                points=20,
                min_spend=4000,
            ),
            EarningRuleDocument(
                code="kaffee-aktion",
                kind=RuleKind.ITEM,
                name=_text("10 Punkte je Kaffee", "10 points per coffee"),
                points=10,
                scope=ScopeDocument(skus=["KAFFEE-BOHNEN-1KG"]),
            ),
            EarningRuleDocument(
                code="bio-extra",
                kind=RuleKind.ITEM,
                name=_text("2 Extrapunkte je Bio-Artikel", "2 extra points per organic item"),
                points=2,
                scope=ScopeDocument(categories=["bio"]),
            ),
            EarningRuleDocument(
                code="drogerie-extra",
                kind=spend,
                name=_text("Drogerie: 1 Extrapunkt je 2 €", "Drugstore: 1 extra point per 2 €"),
                points=1,
                per_amount=200,
                scope=ScopeDocument(categories=["drogerie"]),
                max_points_per_order=20,
            ),
            EarningRuleDocument(
                code="leipzig-eroeffnung",
                kind=spend,
                name=_text("Neueröffnung Leipzig: 1 Extrapunkt je 2 €", "Leipzig opening"),
                points=1,
                per_amount=200,
                audience=AudienceDocument(locations=["leipzig-zentrum"]),
            ),
            EarningRuleDocument(
                code="bio-doppelt",
                kind=RuleKind.MULTIPLIER,
                name=_text("Bio zählt doppelt", "Organic counts double"),
                multiplier=Decimal(2),
                scope=ScopeDocument(categories=["bio"]),
            ),
            EarningRuleDocument(
                code="regional-plus",
                kind=RuleKind.MULTIPLIER,
                name=_text("Aus der Region: 1,5-fach", "Regional: 1.5 times"),
                multiplier=Decimal("1.5"),
                scope=ScopeDocument(categories=["regional"]),
            ),
            EarningRuleDocument(
                code="gold-frische",
                kind=RuleKind.MULTIPLIER,
                name=_text("Gold: Obst und Gemüse doppelt", "Gold: fruit and veg double"),
                multiplier=Decimal(2),
                scope=ScopeDocument(categories=["obst-gemuese"]),
                audience=AudienceDocument(tiers=["gold"]),
            ),
        ],
        promotions=[
            PromotionDocument(
                code="samstag-doppelt",
                kind=PromotionKind.MULTIPLIER,
                name=_text("Samstags doppelte Punkte", "Double points on Saturdays"),
                starts_at=program_start,
                ends_at=program_start + timedelta(days=3 * 365),
                multiplier=Decimal(2),
                weekdays=[6],
            ),
            PromotionDocument(
                code="fruehstueck",
                kind=PromotionKind.BONUS,
                name=_text("Frühstücksbonus bis 10 Uhr", "Breakfast bonus until 10 am"),
                starts_at=program_start,
                ends_at=program_start + timedelta(days=3 * 365),
                bonus_points=10,
                hours=HoursDocument(start=wall_time(7), end=wall_time(BREAKFAST_ENDS // 3600)),
                scope=ScopeDocument(categories=["backwaren"]),
            ),
        ],
        tiers=TierPolicyDocument(
            levels=[
                TierLevelDocument(code="bronze", name=_text("Bronze", "Bronze"), threshold=0),
                TierLevelDocument(
                    code="silber",
                    name=_text("Silber", "Silver"),
                    threshold=SILVER_SPEND,
                    multiplier=Decimal("1.25"),
                    perks=_text("Kostenlose Lieferung", "Free delivery"),
                ),
                TierLevelDocument(
                    code="gold",
                    name=_text("Gold", "Gold"),
                    threshold=GOLD_SPEND,
                    multiplier=Decimal("1.5"),
                    perks=_text("Kaffee gratis an jedem Einkauf", "A free coffee every visit"),
                ),
            ],
            basis=TierBasis.SPEND,
            window=TierWindow.ROLLING_12_MONTHS,
            downgrade=DowngradePolicy.ONE_STEP,
            grace_days=TIER_GRACE_DAYS,
        ),
    )


def _reward(code: str, de: str, en: str, kind: RewardKind, **terms: Any) -> RewardDefinition:
    return RewardDefinition(code=code, kind=kind, name=_text(de, en), **terms)


REWARDS = (
    _reward("fuenf-euro", "5 € Einkaufsgutschein", "5 € voucher", RewardKind.AMOUNT_OFF,
            points_cost=VOUCHER_POINTS, amount_off=500),
    _reward("zehn-euro", "10 € Einkaufsgutschein", "10 € voucher", RewardKind.AMOUNT_OFF,
            points_cost=950, amount_off=1000),
    _reward("zwanzig-euro", "20 € Einkaufsgutschein", "20 € voucher", RewardKind.AMOUNT_OFF,
            points_cost=1800, amount_off=2000),
    _reward("punkte-als-geld", "Mit Punkten bezahlen", "Pay with points",
            RewardKind.POINTS_AS_MONEY, points_per_step=100, money_per_step=100, min_points=100),
    _reward("kaffee-gratis", "Kaffee gratis", "Free coffee", RewardKind.FREE_ITEM,
            points_cost=1200, sku="KAFFEE-BOHNEN-1KG"),
    _reward("broetchen-gratis", "6 Brötchen gratis", "6 rolls free", RewardKind.FREE_ITEM,
            points_cost=200, sku="BROETCHEN-6"),
    _reward("croissant-gratis", "Croissant gratis", "Free croissant", RewardKind.FREE_ITEM,
            points_cost=100, sku="CROISSANT"),
    _reward("bio-eier-gratis", "Bio-Eier gratis", "Free organic eggs", RewardKind.FREE_ITEM,
            points_cost=400, sku="BIO-EIER-10"),
    _reward("honig-gratis", "Heidehonig gratis", "Free heather honey", RewardKind.FREE_ITEM,
            points_cost=600, sku="HEIDEHONIG"),
    _reward("schokolade-gratis", "Schokolade gratis", "Free chocolate", RewardKind.FREE_ITEM,
            points_cost=120, sku="VOLLMILCHSCHOKOLADE"),
    _reward("waschmittel-gratis", "Waschmittel gratis", "Free detergent", RewardKind.FREE_ITEM,
            points_cost=750, sku="WASCHMITTEL"),
    _reward("pils-gratis", "Ein Kasten Pils", "A crate of beer", RewardKind.FREE_ITEM,
            points_cost=1500, sku="PILS-KASTEN"),
    _reward("zehn-prozent", "10 % auf den Einkauf", "10 % off", RewardKind.PERCENT_OFF,
            points_cost=800, percent_off=10, max_discount=1500),
    _reward("zwanzig-prozent-gold", "20 % für Gold", "20 % off for gold",
            RewardKind.PERCENT_OFF, points_cost=1500, percent_off=20, max_discount=3000,
            tiers=["gold"]),
    _reward("fuenfzehn-prozent-silber", "15 % ab Silber", "15 % off from silver",
            RewardKind.PERCENT_OFF, points_cost=1200, percent_off=15, max_discount=2000,
            tiers=["silber", "gold"]),
    _reward("zwei-euro", "2 € Rabatt", "2 € off", RewardKind.AMOUNT_OFF,
            points_cost=200, amount_off=200),
    _reward("drei-euro", "3 € Rabatt", "3 € off", RewardKind.AMOUNT_OFF,
            points_cost=300, amount_off=300),
    _reward("fuenfzig-euro", "50 € Einkaufsgutschein", "50 € voucher", RewardKind.AMOUNT_OFF,
            points_cost=4500, amount_off=5000),
    _reward("kochkurs", "Kochkurs-Gutschein", "Cooking class voucher", RewardKind.AMOUNT_OFF,
            points_cost=3000, amount_off=3500, stock=200, per_member_limit=1),
    _reward("jubilaeum", "Jubiläums-Gutschein", "Anniversary voucher", RewardKind.AMOUNT_OFF,
            points_cost=250, amount_off=300, per_member_limit=2),
)  # fmt: skip


@dataclass(frozen=True)
class _Accounts:
    """What the bulk path writes into: the program and its system accounts."""

    merchant_id: int
    program_id: int
    issued_account: int
    redeemed_account: int


@dataclass(frozen=True)
class _Program(_Accounts):
    rules: RulesInForce
    terminal_keys: tuple[str, ...]


async def _create_program(
    database_url: str, program_start: datetime, terminals: int, report: Progress
) -> _Program:
    """Merchant, owner, program, rules, rewards and tills through the services, with the
    services' clock at ``program_start``."""
    steps = 5 + terminals
    report("program", 0, steps)

    def clock() -> datetime:
        return program_start

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            merchant_id = int(
                await conn.scalar(
                    merchants.insert()
                    .values(name=MERCHANT_NAME, created_at=program_start)
                    .returning(merchants.c.id)
                )
                or 0
            )
        ledger = Ledger(engine, clock=clock)
        created = await Programs(ledger.executor).create_program(
            Caller(TILL_SYSTEM, merchant_id),
            "frischepunkte-program",
            code=PROGRAM_CODE,
            name="Frischepunkte",
            currency="EUR",
            timezone=TIMEZONE,
            expiry_kind=ExpiryKind.END_OF_MONTH_AFTER_MONTHS,
            expiry_value=EXPIRY_MONTHS,
            settings=ProgramSettings(
                name_de="Frischepunkte",
                name_en="Fresh points",
                description_de="Punkte sammeln in allen Frischmarkt-Filialen.",
                description_en="Collect points in every Frischmarkt store.",
            ),
        )
        program_id = created.result.program_id
        report("program", 1, steps)
        owner_view = await StaffDirectory(engine, clock=clock).provision_staff(
            merchant_id,
            email=OWNER_EMAIL,
            password=secrets.token_urlsafe(24),  # never used: tills sign in with their keys
            role=StaffRole.OWNER,
            display_name="Inga Inhaberin",
        )
        owner = Staff(
            owner_view.staff_id,
            merchant_id,
            owner_view.role,
            owner_view.email,
            owner_view.display_name,
        )
        report("program", 2, steps)
        rule_sets = RuleSets(engine, clock=clock)
        draft = await rule_sets.create_draft(owner, program_id)
        await rule_sets.replace_draft(
            owner, program_id, draft.version, program_rules(program_start)
        )
        await rule_sets.publish(owner, program_id, draft.version)
        report("program", 3, steps)
        rewards = Rewards(ledger)
        for definition in REWARDS:
            await rewards.create_reward(owner, program_id, definition)
        report("program", 4, steps)
        tills = Terminals(engine, clock=clock)
        keys = []
        for number in range(1, terminals + 1):
            issued = await tills.create_terminal(
                owner,
                program_id=program_id,
                code=f"kasse-{number:03d}",
                location=STORES[(number - 1) % len(STORES)],
                name=f"Kasse {number}",
            )
            keys.append(issued.api_key)
            report("program", 4 + number, steps)

        async def read(conn: AsyncConnection) -> tuple[RulesInForce | None, dict[str, int]]:
            found = await find_rules_in_force(conn, program_id, program_start)
            rows = await conn.execute(
                select(accounts.c.kind, accounts.c.id).where(
                    accounts.c.program_id == program_id, accounts.c.member_id.is_(None)
                )
            )
            return found, {row.kind: row.id for row in rows}

        found, system = await in_transaction(engine, read, read_only=True)
        assert found is not None
        assert found.version == draft.version
        report("program", steps, steps)
        return _Program(
            merchant_id=merchant_id,
            program_id=program_id,
            issued_account=system["issued"],
            redeemed_account=system["redeemed"],
            rules=found,
            terminal_keys=tuple(keys),
        )
    finally:
        await engine.dispose()


# --- Baskets, priced once per tier and time class -------------------------------------------

#: A member's order context under these rules (no caps, limits, budgets or segments).
CONTEXT_JSON = json.dumps(msgspec.to_builtins(context_document(MemberContext())))


def basket_templates(rng: random.Random) -> list[BasketDocument]:
    """``TEMPLATES`` supermarket baskets: one to twelve products, now and then a reduced one or
    a gift card (which earns nothing), bought in one of the stores. Each has at least 2 € of
    merchandise, so that every purchase earns points."""
    baskets = []
    for _ in range(TEMPLATES):
        lines: list[BasketLineDocument] = []
        wanted = rng.choice((1, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 10, 12))
        products = rng.sample(CATALOGUE, len(CATALOGUE))
        while (
            len(lines) < wanted
            or sum(line.quantity * line.unit_price - line.line_discount for line in lines) < 200
        ):
            sku, category, cents = products[len(lines)]
            quantity = rng.choice((1, 1, 1, 1, 2, 2, 3))
            reduced = rng.random() < 0.08
            lines.append(
                BasketLineDocument(
                    line_id=str(len(lines) + 1),
                    sku=sku,
                    category=category,
                    quantity=quantity,
                    unit_price=cents,
                    line_discount=quantity * cents * 3 // 10 if reduced else 0,
                )
            )
        if rng.random() < 0.03:
            lines.append(
                BasketLineDocument(
                    line_id=str(len(lines) + 1),
                    sku=GIFT_CARD[0],
                    quantity=1,
                    unit_price=GIFT_CARD[1],
                    kind=LineKind.GIFT_CARD,
                )
            )
        baskets.append(BasketDocument(currency="EUR", lines=lines, location=rng.choice(STORES)))
    return baskets


def time_class_moments(first_day: date) -> dict[tuple[bool, bool], datetime]:
    """A moment of the history for each (Saturday, before 10:00) class, local shop hours."""
    saturday = first_day + timedelta(days=(6 - first_day.isoweekday()) % 7)
    tuesday = first_day + timedelta(days=(2 - first_day.isoweekday()) % 7)
    moments = {}
    for is_saturday, day in ((True, saturday), (False, tuesday)):
        for is_morning, hour in ((True, 8), (False, 15)):
            local = datetime(day.year, day.month, day.day, hour, 30, tzinfo=ZONE)
            moments[is_saturday, is_morning] = local.astimezone(UTC)
    return moments


@dataclass(frozen=True)
class _Priced:
    #: (template, basket JSON, qualifying spend)
    templates: list[tuple[int, str, int]]
    #: (template, tier rank, Saturday, morning, points, quote JSON)
    quotes: list[tuple[int, int, bool, bool, int, str]]
    #: (template, tier rank, Saturday, morning, promotion code, points)
    awards: list[tuple[int, int, bool, bool, str, int]]


def price_templates(
    baskets: Sequence[BasketDocument],
    found: RulesInForce,
    moments: dict[tuple[bool, bool], datetime],
) -> _Priced:
    """Every basket priced as ``Orders.record`` prices it, per tier and time class."""
    policy = found.rules.tiers
    assert policy is not None
    templates, quotes, awards = [], [], []
    for template, document in enumerate(baskets):
        basket = document.basket()
        spends = set()
        for rank, level in enumerate(policy.levels):
            for (saturday, morning), at in moments.items():
                result = quote(basket, found.rules.earning, level, at, MemberContext())
                if result.total <= 0:
                    raise ValueError(f"basket {template} earns nothing: every order must earn")
                view = quote_view(result, found.version, level.code)
                quotes.append(
                    (
                        template,
                        rank,
                        saturday,
                        morning,
                        result.total,
                        json.dumps(msgspec.to_builtins(view)),
                    )
                )
                awards += [
                    (template, rank, saturday, morning, code, points)
                    for code, points in sorted(result.promotion_points.items())
                ]
                spends.add(result.qualifying_spend)
        (spend,) = spends
        templates.append((template, json.dumps(msgspec.to_builtins(document)), spend))
    return _Priced(templates, quotes, awards)


# --- Members ---------------------------------------------------------------------------------

PEOPLE_COLUMNS = (
    "ordinal",
    "card_number",
    "display_name",
    "email",
    "locale",
    "events",
    "first_day",
    "joined_fallback",
)


def card_number_of(ordinal: int) -> str:
    body = f"{ordinal * CARD_FACTOR % CARD_BODY_MODULUS:014d}"
    return new_card_number(lambda _digits: body)


#: Purchases per year follow a Pareto distribution (most members shop now and then, a few
#: almost daily), at most ``MAX_PURCHASES_PER_YEAR``; some members never shop after joining.
PARETO_SHAPE = 1.3
PARETO_SCALE = 2.0
MAX_PURCHASES_PER_YEAR = 300.0
NEVER_SHOPS = 1 / 12
#: Regulars (at least every other week) mostly joined in the launch month.
REGULAR_PER_YEAR = 26


def _activities(rng: random.Random, count: int) -> list[float]:
    """Purchases per year of ``count`` members: the distribution's quantiles at evenly spaced
    levels, in random order, so that a small plan has its few very active members too."""
    levels = [(index + 0.5) / count for index in range(count)]
    rng.shuffle(levels)
    rates = []
    for level in levels:
        if level < NEVER_SHOPS:
            rates.append(0.0)
            continue
        tail = 1.0 - (level - NEVER_SHOPS) / (1.0 - NEVER_SHOPS)
        rates.append(min(MAX_PURCHASES_PER_YEAR, PARETO_SCALE / tail ** (1 / PARETO_SHAPE)))
    return rates


def _first_day(rng: random.Random, days: int, per_year: float) -> int:
    """The day a member joins: two in five in the launch month (four in five regulars), the
    rest over the year."""
    launch = 0.8 if per_year >= REGULAR_PER_YEAR else 0.4
    if rng.random() < launch:
        return int(rng.random() * min(30, days))
    return int(rng.random() * days)


def plan_people(
    first_ordinal: int,
    count: int,
    days: int,
    history_start: date,
    rng: random.Random,
    *,
    events_total: int | None = None,
    report: Callable[[int], None] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows for ``bench_people``: who the new members are and how many purchases (or ledger
    operations) each makes over the days after joining. With ``events_total`` the counts are
    scaled to add up to exactly that many."""
    rates = _activities(rng, count)
    first_days = [_first_day(rng, days, rate) for rate in rates]
    weights = [rate * (days - first) / 365 for rate, first in zip(rates, first_days, strict=True)]
    if events_total is None:
        events = [min(MAX_EVENTS_PER_MEMBER, round(weight)) for weight in weights]
    else:
        events = _apportion(weights, events_total)
    rows = []
    for index in range(count):
        ordinal = first_ordinal + index
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        address = f"{first}.{last}".lower().translate(_ASCII)
        joined = datetime.combine(
            history_start + timedelta(days=first_days[index]), wall_time(), ZONE
        ) + timedelta(seconds=OPENS + rng.randrange(OPEN_SECONDS))
        rows.append(
            (
                ordinal,
                card_number_of(ordinal),
                f"{first} {last}",
                f"{address}.{ordinal}@example.org",
                "en" if rng.random() < 0.1 else "de",
                events[index],
                first_days[index],
                joined.astimezone(UTC),
            )
        )
        if report is not None and index % 20_000 == 0:
            report(index)
    return rows


def _apportion(weights: Sequence[float], total: int) -> list[int]:
    """Whole numbers in proportion to ``weights`` (each at most ``MAX_EVENTS_PER_MEMBER``)
    adding up to ``total`` (largest remainders first)."""
    if total > MAX_EVENTS_PER_MEMBER * len(weights):
        raise ValueError(f"{total} events do not fit {len(weights)} members")
    if not weights:
        return []
    if not any(weights):
        weights = [1.0] * len(weights)
    scale = total / sum(weights)
    shares = [min(float(MAX_EVENTS_PER_MEMBER), weight * scale) for weight in weights]
    counts = [int(share) for share in shares]
    short = total - sum(counts)
    by_remainder = sorted(
        range(len(weights)), key=lambda index: shares[index] - counts[index], reverse=True
    )
    while short > 0:
        for index in by_remainder:
            if short == 0:
                break
            if counts[index] < MAX_EVENTS_PER_MEMBER:
                counts[index] += 1
                short -= 1
    return counts


# --- Set-based SQL ---------------------------------------------------------------------------
# Every statement below is formatted with integers, dates and names this module makes (never
# with outside text). The plan numbers rows from 1 in the order the services would have
# written them (by time); the inserts add the id before a block reserved from the table's
# sequence once the plan knows how many it needs.

#: Tables whose ids the bulk path hands out.
ID_TABLES = (
    "members",
    "accounts",
    "journals",
    "entries",
    "lots",
    "lot_draws",
    "orders",
    "qualifying_activity",
    "promotion_awards",
    "tier_changes",
)
#: Tables whose row counts the command line prints.
COUNTED_TABLES = (*ID_TABLES, "tier_states", "rewards", "terminals", "terminal_keys")

_PLAN_TABLES = """
CREATE UNLOGGED TABLE bench_people (
    ordinal bigint PRIMARY KEY, card_number text NOT NULL, display_name text NOT NULL,
    email text NOT NULL, locale text NOT NULL, events int NOT NULL, first_day int NOT NULL,
    joined_fallback timestamptz NOT NULL);
CREATE UNLOGGED TABLE bench_templates (template int PRIMARY KEY, basket json NOT NULL,
    spend bigint NOT NULL);
CREATE UNLOGGED TABLE bench_quotes (template int, tier int, saturday bool, morning bool,
    points bigint NOT NULL, quote json NOT NULL, PRIMARY KEY (template, tier, saturday, morning));
CREATE UNLOGGED TABLE bench_awards (template int, tier int, saturday bool, morning bool,
    code text NOT NULL, points bigint NOT NULL);
"""


def _uniform(key: str, salt: int) -> str:
    """SQL for a pseudo-random number in [0, 1) fixed by ``key`` (ordinal, event) and ``salt``:
    the same plan gives the same history on every run."""
    return f"((hashint8extended({key}, {salt}) & 9007199254740991)::float8 / 9007199254740992)"


def _events_sql(history_start: date, days: int) -> str:
    """Each person's events at local shop hours, Monday to Saturday, from the day they joined:
    (ordinal, k, pick, occurred_at, saturday, morning); ``pick`` is a further random number."""
    key = "p.ordinal * 1048576 + g.k"
    start = f"DATE '{history_start.isoformat()}'"
    return f"""
SELECT ordinal, k, pick,
       (shop_day + make_interval(secs => second_of_day)) AT TIME ZONE '{TIMEZONE}' AS occurred_at,
       extract(isodow FROM shop_day) = 6 AS saturday,
       second_of_day < {BREAKFAST_ENDS} AS morning
FROM (
    SELECT ordinal, k, pick, second_of_day,
           CASE WHEN extract(isodow FROM drawn) <> 7 THEN drawn
                WHEN drawn > {start} THEN drawn - 1
                WHEN drawn + 1 < {start} + {days} THEN drawn + 1
                ELSE drawn END AS shop_day
    FROM (
        SELECT p.ordinal, g.k,
               {start} + p.first_day + floor({_uniform(key, 1)} * ({days} - p.first_day))::int
                   AS drawn,
               {OPENS} + floor({_uniform(key, 2)} * {OPEN_SECONDS})::int AS second_of_day,
               {_uniform(key, 3)} AS pick
        FROM bench_people p CROSS JOIN LATERAL generate_series(1, p.events) AS g(k)
    ) drawn
) shifted
"""


def _ids_sql(events: str, time_column: str) -> str:
    """Members (and their accounts) numbered by when each joined: two minutes before their
    first event, or on their planned day."""
    return f"""
CREATE UNLOGGED TABLE bench_ids AS
SELECT p.ordinal, row_number() OVER (ORDER BY j.joined_at, p.ordinal) AS number, j.joined_at
FROM bench_people p
LEFT JOIN (SELECT ordinal, min({time_column}) AS first_at FROM {events} GROUP BY ordinal) f
    USING (ordinal)
CROSS JOIN LATERAL (
    SELECT coalesce(f.first_at - interval '2 minutes', p.joined_fallback) AS joined_at) j
"""


def _rank_sql(column: str, thresholds: Sequence[int]) -> str:
    """The index of the highest level whose threshold ``column`` reaches."""
    cases = " ".join(
        f"WHEN {column} >= {threshold} THEN {rank}"
        for rank, threshold in reversed(list(enumerate(thresholds)))
        if rank > 0
    )
    return f"(CASE {cases} ELSE 0 END)"


def _history_sql(history_start: date, days: int, policy: TierPolicy) -> list[str]:
    """Purchases and vouchers of the new people: bench_orders, bench_ids, bench_priced (tier,
    points, vouchers per order), bench_tier_changes and bench_ops (the ledger operations
    numbered by time)."""
    thresholds = [level.threshold for level in policy.levels]
    codes = "ARRAY[" + ", ".join(f"'{level.code}'" for level in policy.levels) + "]"
    spend_before = (
        "coalesce(sum(t.spend) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
        "::bigint"
    )
    return [
        f"""
CREATE UNLOGGED TABLE bench_orders AS
SELECT ordinal, k, floor(pick * {TEMPLATES})::int AS template, occurred_at, saturday, morning
FROM ({_events_sql(history_start, days)}) e
""",
        _ids_sql("bench_orders", "occurred_at"),
        f"""
CREATE UNLOGGED TABLE bench_priced AS
WITH spent AS (
    SELECT o.ordinal, o.k, o.template, o.occurred_at, o.saturday, o.morning, t.spend,
           row_number() OVER w AS seq, {spend_before} AS spend_before
    FROM bench_orders o JOIN bench_templates t USING (template)
    WINDOW w AS (PARTITION BY o.ordinal ORDER BY o.occurred_at, o.k)
), tiered AS (
    SELECT s.*, {_rank_sql("s.spend_before", thresholds)} AS tier,
           {_rank_sql("s.spend_before + s.spend", thresholds)} AS tier_after
    FROM spent s
), priced AS (
    SELECT t.*, q.points,
           sum(q.points) OVER (PARTITION BY t.ordinal ORDER BY t.seq)::bigint AS cum_points
    FROM tiered t JOIN bench_quotes q
      ON q.template = t.template AND q.tier = t.tier AND q.saturday = t.saturday
     AND q.morning = t.morning
), vouchers AS (
    SELECT p.*,
           p.cum_points / {VOUCHER_POINTS} > (p.cum_points - p.points) / {VOUCHER_POINTS}
           AND (p.cum_points - p.points < {VOUCHER_POINTS}
                OR {_uniform("p.ordinal * 1048576 + p.k", 4)} < {VOUCHER_SHARE}) AS redeem
    FROM priced p
)
SELECT v.*, sum(v.redeem::int) OVER (PARTITION BY v.ordinal ORDER BY v.seq) AS redeem_no
FROM vouchers v
""",
        f"""
CREATE UNLOGGED TABLE bench_tier_changes AS
SELECT i.number, p.seq, 0 AS step, NULL::text AS before, ({codes})[1] AS after,
       'enrolled' AS reason, p.occurred_at AS at, NULL::bigint AS total
FROM bench_priced p JOIN bench_ids i USING (ordinal) WHERE p.seq = 1
UNION ALL
SELECT i.number, p.seq, 1, ({codes})[p.tier + 1], ({codes})[p.tier_after + 1], 'upgrade',
       p.occurred_at, p.spend_before + p.spend
FROM bench_priced p JOIN bench_ids i USING (ordinal) WHERE p.tier_after > p.tier
""",
        f"""
CREATE UNLOGGED TABLE bench_ops AS
SELECT e.*, i.number AS account,
       row_number() OVER (ORDER BY e.at, e.ordinal, e.k, e.redeem) AS journal
FROM (
    SELECT ordinal, k, occurred_at AS at, false AS redeem, points,
           cum_points AS cum_earned, 0::bigint AS cum_redeemed
    FROM bench_priced
    UNION ALL
    SELECT ordinal, k, occurred_at + interval '{VOUCHER_DELAY.total_seconds():.0f} seconds',
           true, {VOUCHER_POINTS}, cum_points, {VOUCHER_POINTS} * redeem_no
    FROM bench_priced WHERE redeem
) e JOIN bench_ids i USING (ordinal)
""",
    ]


def _growth_sql(history_start: date, days: int) -> list[str]:
    """Plain earns and, every ``GROWN_REDEEM_EVERY``-th operation, a redemption of 80 % of the
    earns before it: bench_events, bench_ids, bench_ops."""
    every = GROWN_REDEEM_EVERY
    return [
        f"""
CREATE UNLOGGED TABLE bench_events AS
SELECT ordinal, k, occurred_at AS at, 5 + floor(pick * pick * 146)::bigint AS amount
FROM ({_events_sql(history_start, days)}) e
""",
        _ids_sql("bench_events", "at"),
        f"""
CREATE UNLOGGED TABLE bench_ops AS
WITH ordered AS (
    SELECT e.*, row_number() OVER (PARTITION BY e.ordinal ORDER BY e.at, e.k) AS seq
    FROM bench_events e
), valued AS (
    SELECT ordinal, k, at, seq % {every} = 0 AS redeem,
           CASE WHEN seq % {every} = 0
                THEN floor(0.8 * sum(amount) OVER (PARTITION BY ordinal ORDER BY seq
                                                   ROWS BETWEEN {every - 1} PRECEDING
                                                   AND 1 PRECEDING))::bigint
                ELSE amount END AS points,
           seq
    FROM ordered
)
SELECT v.ordinal, v.k, v.at, v.redeem, v.points,
       (sum(CASE WHEN v.redeem THEN 0 ELSE v.points END) OVER w)::bigint AS cum_earned,
       (sum(CASE WHEN v.redeem THEN v.points ELSE 0 END) OVER w)::bigint AS cum_redeemed,
       i.number AS account,
       row_number() OVER (ORDER BY v.at, v.ordinal, v.seq) AS journal
FROM valued v JOIN bench_ids i USING (ordinal)
WINDOW w AS (PARTITION BY v.ordinal ORDER BY v.seq)
""",
    ]


def _lots_sql() -> list[tuple[str, str]]:
    """From bench_ops: the lots (earns) and what each redemption draws from them, the overlap
    of its cumulative range with theirs."""
    return [
        (
            "lots",
            """
CREATE UNLOGGED TABLE bench_lots AS
SELECT ordinal, k, account, journal, at, points, cum_earned,
       row_number() OVER (ORDER BY journal) AS rank
FROM bench_ops WHERE NOT redeem
""",
        ),
        (
            "draws",
            """
CREATE UNLOGGED TABLE bench_draws AS
SELECT r.journal, l.rank AS lot_rank,
       least(l.cum_earned, r.cum_redeemed)
       - greatest(l.cum_earned - l.points, r.cum_redeemed - r.points) AS points
FROM bench_ops r JOIN bench_lots l ON l.ordinal = r.ordinal
WHERE r.redeem AND l.cum_earned - l.points < r.cum_redeemed
  AND l.cum_earned > r.cum_redeemed - r.points
""",
        ),
    ]


def _ledger_sql(
    program: _Accounts, ids: dict[str, int], earn_reference: str
) -> list[tuple[str, str]]:
    """Members, accounts, journals, entries, lots and lot draws as the ledger writes them. The
    plan numbers them from 1; ``ids`` holds the id before each table's reserved block."""
    member, account, journal = ids["members"], ids["accounts"], ids["journals"]
    expires = (
        f"(date_trunc('month', o.at AT TIME ZONE '{TIMEZONE}') "
        f"+ interval '{EXPIRY_MONTHS + 1} months') AT TIME ZONE '{TIMEZONE}'"
    )
    return [
        (
            "members",
            f"""
INSERT INTO members (id, merchant_id, display_name, email, created_at, card_number,
                     card_secret_version, locale)
SELECT {member} + i.number, {program.merchant_id}, p.display_name, p.email, i.joined_at,
       p.card_number, 0, p.locale
FROM bench_ids i JOIN bench_people p USING (ordinal)
ORDER BY 1
""",
        ),
        (
            "accounts",
            f"""
INSERT INTO accounts (id, program_id, member_id, kind, posted, held, version, created_at)
SELECT {account} + i.number, {program.program_id}, {member} + i.number, 'member',
       coalesce(b.posted, 0), 0, coalesce(b.operations, 0), i.joined_at
FROM bench_ids i
LEFT JOIN (SELECT ordinal, sum(CASE WHEN redeem THEN -points ELSE points END) AS posted,
                  count(*) AS operations
           FROM bench_ops GROUP BY ordinal) b USING (ordinal)
ORDER BY 1
""",
        ),
        (
            "journals",
            f"""
INSERT INTO journals (id, program_id, kind, account_id, points, delta, held_delta,
                      effective_at, created_at, client_id, reference)
SELECT {journal} + journal, {program.program_id},
       CASE WHEN redeem THEN 'redeem' ELSE 'earn' END, {account} + account, points,
       CASE WHEN redeem THEN -points ELSE points END, 0, at, at, '{TILL_SYSTEM}',
       CASE WHEN redeem THEN 'gutschein:' ELSE '{earn_reference}' END || ({journal} + journal)
FROM bench_ops
ORDER BY 1
""",
        ),
        (
            "entries",
            f"""
INSERT INTO entries (id, journal_id, account_id, amount)
SELECT {ids["entries"]} + 2 * o.journal - 1 + s.second, {journal} + o.journal,
       CASE WHEN s.second = 0 THEN {account} + o.account
            WHEN o.redeem THEN {program.redeemed_account}
            ELSE {program.issued_account} END,
       CASE WHEN o.redeem = (s.second = 0) THEN -o.points ELSE o.points END
FROM bench_ops o CROSS JOIN (VALUES (0), (1)) AS s(second)
ORDER BY 1
""",
        ),
        (
            "lots",
            f"""
INSERT INTO lots (id, account_id, journal_id, original, remaining, held, expires_at,
                  created_at)
SELECT {ids["lots"]} + o.rank, {account} + o.account, {journal} + o.journal, o.points,
       o.points - coalesce(d.drawn, 0), 0, {expires}, o.at
FROM bench_lots o
LEFT JOIN (SELECT lot_rank, sum(points) AS drawn FROM bench_draws GROUP BY lot_rank) d
    ON d.lot_rank = o.rank
ORDER BY 1
""",
        ),
        (
            "lot draws",
            f"""
INSERT INTO lot_draws (id, journal_id, lot_id, points)
SELECT {ids["lot_draws"]} + row_number() OVER (ORDER BY journal, lot_rank),
       {journal} + journal, {ids["lots"]} + lot_rank, points
FROM bench_draws
ORDER BY 1
""",
        ),
    ]


def _orders_sql(
    program: _Program, ids: dict[str, int], codes: Sequence[str]
) -> list[tuple[str, str]]:
    """From bench_priced and bench_lots: orders, qualifying activity, promotion awards, tier
    states and tier changes, as ``Orders.record`` writes them (``ids`` as for
    ``_ledger_sql``)."""
    rules = program.rules
    account, journal, order = ids["accounts"], ids["journals"], ids["orders"]
    code_array = "ARRAY[" + ", ".join(f"'{code}'" for code in codes) + "]"
    return [
        (
            "orders",
            f"""
INSERT INTO orders (id, program_id, account_id, reference, occurred_at, rule_set_id, tier,
                    basket, context, quote, points, qualifying_spend, journal_id, created_at)
SELECT {order} + l.rank, {program.program_id}, {account} + l.account,
       'BON-' || ({journal} + l.journal), p.occurred_at, {rules.rule_set_id},
       ({code_array})[p.tier + 1], t.basket, '{CONTEXT_JSON}'::json, q.quote, p.points,
       p.spend, {journal} + l.journal, p.occurred_at
FROM bench_priced p
JOIN bench_lots l USING (ordinal, k)
JOIN bench_templates t USING (template)
JOIN bench_quotes q ON q.template = p.template AND q.tier = p.tier
 AND q.saturday = p.saturday AND q.morning = p.morning
ORDER BY 1
""",
        ),
        (
            "qualifying activity",
            f"""
INSERT INTO qualifying_activity (id, account_id, occurred_at, points, spend, order_id)
SELECT {ids["qualifying_activity"]} + l.rank, {account} + l.account, p.occurred_at,
       p.points, p.spend, {order} + l.rank
FROM bench_priced p JOIN bench_lots l USING (ordinal, k)
ORDER BY 1
""",
        ),
        (
            "promotion awards",
            f"""
INSERT INTO promotion_awards (id, program_id, promotion_code, account_id, order_id, points)
SELECT {ids["promotion_awards"]} + row_number() OVER (ORDER BY l.rank, a.code),
       {program.program_id}, a.code, {account} + l.account, {order} + l.rank, a.points
FROM bench_priced p
JOIN bench_lots l USING (ordinal, k)
JOIN bench_awards a ON a.template = p.template AND a.tier = p.tier
 AND a.saturday = p.saturday AND a.morning = p.morning
ORDER BY 1
""",
        ),
        (
            "tier states",
            f"""
INSERT INTO tier_states (account_id, program_id, earned, since, review_at, review_due,
                         updated_at)
SELECT {account} + s.number, {program.program_id}, ({code_array})[s.rank + 1], s.since,
       s.since + interval '1 year',
       ((s.since + interval '1 year') AT TIME ZONE '{TIMEZONE}'
        + interval '{TIER_GRACE_DAYS} days') AT TIME ZONE '{TIMEZONE}',
       s.since
FROM (
    SELECT i.number, max(p.tier_after) AS rank,
           coalesce(max(p.occurred_at) FILTER (WHERE p.tier_after > p.tier),
                    min(p.occurred_at)) AS since
    FROM bench_priced p JOIN bench_ids i USING (ordinal)
    GROUP BY i.number
) s
ORDER BY 1
""",
        ),
        (
            "tier changes",
            f"""
INSERT INTO tier_changes (id, account_id, before, after, reason, at, qualifying_total,
                          rule_set_id)
SELECT {ids["tier_changes"]} + row_number() OVER (ORDER BY c.at, c.number, c.seq, c.step),
       {account} + c.number, c.before, c.after, c.reason, c.at, c.total, {rules.rule_set_id}
FROM bench_tier_changes c
ORDER BY 1
""",
        ),
    ]


def _counts_sql(with_orders: bool) -> dict[str, str]:
    """How many ids of each table the plan needs."""
    counts = {
        "members": "SELECT count(*) FROM bench_ids",
        "accounts": "SELECT count(*) FROM bench_ids",
        "journals": "SELECT count(*) FROM bench_ops",
        "entries": "SELECT 2 * count(*) FROM bench_ops",
        "lots": "SELECT count(*) FROM bench_lots",
        "lot_draws": "SELECT count(*) FROM bench_draws",
    }
    if with_orders:
        counts |= {
            "orders": "SELECT count(*) FROM bench_lots",
            "qualifying_activity": "SELECT count(*) FROM bench_lots",
            "promotion_awards": """
                SELECT count(*) FROM bench_priced p JOIN bench_awards a
                  ON a.template = p.template AND a.tier = p.tier
                 AND a.saturday = p.saturday AND a.morning = p.morning""",
            "tier_changes": "SELECT count(*) FROM bench_tier_changes",
        }
    return counts


# --- Running it ------------------------------------------------------------------------------

#: Members grown per transaction (bounds the plan tables; ids are time-ordered within it).
GROW_COHORT = 100_000
#: Cohorts loading at once, one server process each (the machine has two cores).
GROW_CONNECTIONS = 2
_BULK_SETTINGS = {
    # A crash loses the bulk load either way; no commit needs to wait for the disk.
    "synchronous_commit": "off",
    "jit": "off",
    "work_mem": "256MB",
    "maintenance_work_mem": "256MB",
    "TimeZone": "UTC",
}


#: CPU seconds the server spent on the bulk connections of ``seed_program`` and ``grow_ledger``
#: (keys "seed", "grow"), when PostgreSQL runs on this machine: on a shared machine the wall
#: time alone says little. The command line prints them.
SERVER_CPU_SECONDS: dict[str, float] = {}


def _server_cpu(conn: asyncpg.Connection) -> float | None:
    """CPU seconds of the connection's server process so far (None: not on this machine)."""
    try:
        stat = Path(f"/proc/{conn.get_server_pid()}/stat").read_text()
    except OSError:
        return None
    # utime and stime are fields 14 and 15; the name in parentheses may hold spaces.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _record_server_cpu(conn: asyncpg.Connection, key: str) -> None:
    """Add what the connection's server process spent to ``SERVER_CPU_SECONDS[key]``."""
    seconds = _server_cpu(conn)
    if seconds is not None:
        SERVER_CPU_SECONDS[key] = SERVER_CPU_SECONDS.get(key, 0.0) + seconds


def _quiet(stage: str, done: int, total: int) -> None:
    """No progress report."""


def _asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(_asyncpg_dsn(database_url), server_settings=_BULK_SETTINGS)


async def _reserve_ids(conn: asyncpg.Connection, counts: dict[str, str]) -> dict[str, int]:
    """For each table, count what the plan needs (``counts``: table -> counting query) and
    move the table's id sequence past a block of that many ids at once: the id before the
    block. Whoever else inserts meanwhile (the running app, say) gets ids after it. Run it
    outside the bulk transaction."""
    before = {}
    for table, query in counts.items():
        needed = int(await conn.fetchval(query))
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
        if needed == 0:
            before[table] = 0
            continue
        # ALTER SEQUENCE holds up everyone's nextval until this transaction ends, so that
        # nobody (another cohort's reservation included) moves the sequence in between.
        async with conn.transaction():
            await conn.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY {needed}")
            if not await conn.fetchval(f"SELECT is_called FROM {sequence}"):
                # A sequence never used hands out its start first, whatever the increment.
                await conn.fetchval("SELECT nextval($1)", sequence)
            last = int(await conn.fetchval("SELECT nextval($1)", sequence))
            await conn.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 1")
        before[table] = last - needed
    return before


async def _run(
    conn: asyncpg.Connection,
    steps: Sequence[tuple[str, str]],
    step_done: Callable[[], None] | None = None,
) -> None:
    for _, sql in steps:
        await conn.execute(sql)
        if sql.lstrip().startswith("CREATE UNLOGGED TABLE"):
            # Fresh tables have no statistics; the next statements join them.
            await conn.execute(f"ANALYZE {sql.split()[3]}")
        if step_done is not None:
            step_done()


async def _first_ordinal(conn: asyncpg.Connection) -> int:
    """Where the new people's numbers start (their card numbers derive from them): past every
    member there is, so no two members the bulk path makes share a number."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM members")) + 1


async def _vacuum(conn: asyncpg.Connection, database_url: str, report: Progress, key: str) -> None:
    """Vacuum and analyze what grew, as autovacuum soon would (in the middle of a benchmark,
    otherwise): statistics for the planner, the visibility map for index-only scans. Two
    server processes share the tables, largest first."""
    grown = [
        row["name"]
        for row in await conn.fetch(
            "SELECT name FROM unnest($1::text[]) AS name "
            "ORDER BY pg_total_relation_size(name::regclass) DESC",
            [*ID_TABLES, "tier_states"],
        )
    ]
    total = len(grown)
    done = 0
    report(f"vacuum {key}", done, total)
    second = await _connect(database_url)

    async def work(worker: asyncpg.Connection) -> None:
        nonlocal done
        while grown:
            table = grown.pop(0)
            await worker.execute(f"VACUUM (ANALYZE) {table}")
            done += 1
            report(f"vacuum {key}", done, total)

    try:
        await asyncio.gather(work(conn), work(second))
    finally:
        _record_server_cpu(second, key)
        await second.close()


async def _scratch(conn: asyncpg.Connection, schema: str) -> None:
    """Plans go to unlogged tables in a schema of their own (``schema``, then ``public``, on
    the search path), so that a second server process can read them."""
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path = {schema}, public")


async def _bulk_transaction(conn: asyncpg.Connection) -> None:
    """Inside a bulk transaction, foreign keys are not checked row by row (a lock on every
    referenced row made the load several times slower): every id written comes from the same
    statements that write the rows it refers to, and the tests check every reference of a
    seeded database. Only a superuser may switch the checks off; for anyone else they stay."""
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the transaction usable
            await conn.execute("SET LOCAL session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        pass


async def _load_people(conn: asyncpg.Connection, people: list[tuple[Any, ...]]) -> None:
    """Create the plan's tables and copy the new people in."""
    await conn.execute(_PLAN_TABLES)
    await conn.copy_records_to_table("bench_people", records=people, columns=PEOPLE_COLUMNS)
    await conn.execute("ANALYZE bench_people")


def _scratch_name(purpose: str) -> str:
    return f"bench_{purpose}_{secrets.token_hex(4)}"


async def seed_program(
    database_url: str,
    *,
    members: int = 100_000,
    days: int = 365,
    terminals: int = 64,
    secret_key: str,
    progress: Progress | None = None,
) -> BenchProgram:
    """Migrate the (PostgreSQL) database, make the program through the services and add
    ``members`` members with ``days`` days of history up to today through the bulk path."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must lie in 1..{MAX_DAYS}: tiers count the last 12 months")
    if members < 0 or terminals < 1:
        raise ValueError("members must not be negative and at least one terminal is needed")
    report = progress or _quiet
    SERVER_CPU_SECONDS["seed"] = 0.0
    await upgrade_async(database_url)
    today = datetime.now(UTC).astimezone(ZONE).date()
    history_start = today - timedelta(days=days)
    program_start = datetime.combine(
        history_start - timedelta(days=1), wall_time(9), ZONE
    ).astimezone(UTC)
    program = await _create_program(database_url, program_start, terminals, report)
    policy = program.rules.rules.tiers
    assert policy is not None
    assert policy.basis is TierBasis.SPEND
    assert policy.window is TierWindow.ROLLING_12_MONTHS
    rng = random.Random(20_250_701)
    priced = price_templates(
        basket_templates(rng), program.rules, time_class_moments(history_start)
    )
    conn = await _connect(database_url)
    helper: asyncpg.Connection | None = None
    schema = _scratch_name("seed")
    try:
        report("members", 0, members)
        people = plan_people(
            await _first_ordinal(conn),
            members,
            days,
            history_start,
            rng,
            report=lambda done: report("members", done, members),
        )
        report("members", members, members)
        plan = [*(("plan", sql) for sql in _history_sql(history_start, days, policy)), *_lots_sql()]
        codes = [level.code for level in policy.levels]
        unnumbered = dict.fromkeys(ID_TABLES, 0)
        # The plan, reserving the ids, then the inserts.
        steps = (
            len(plan)
            + 1
            + len(_ledger_sql(program, unnumbered, ""))
            + len(_orders_sql(program, unnumbered, codes))
        )
        done = 0

        def step_done() -> None:
            nonlocal done
            done += 1
            report("history", done, steps)

        await _scratch(conn, schema)
        async with conn.transaction():
            await _load_people(conn, people)
            del people
            await conn.copy_records_to_table("bench_templates", records=priced.templates)
            await conn.copy_records_to_table("bench_quotes", records=priced.quotes)
            await conn.copy_records_to_table("bench_awards", records=priced.awards)
            await _run(conn, plan, step_done)
        ids = await _reserve_ids(conn, _counts_sql(with_orders=True))
        step_done()
        ledger = _ledger_sql(program, ids, "order:BON-")
        orders = _orders_sql(program, ids, codes)
        # The ledger's rows and the orders' rows load side by side, one server process each.
        helper = await _connect(database_url)
        await helper.execute(f"SET search_path = {schema}, public")

        async def load(worker: asyncpg.Connection, steps: list[tuple[str, str]]) -> None:
            async with worker.transaction():
                await _bulk_transaction(worker)
                await _run(worker, steps, step_done)

        async with asyncio.TaskGroup() as group:
            group.create_task(load(conn, ledger))
            group.create_task(load(helper, orders))
        await _vacuum(conn, database_url, report, "seed")
        rows = await conn.fetch(
            """SELECT m.id, m.card_number, m.card_secret_version
               FROM members m JOIN accounts a ON a.member_id = m.id AND a.program_id = $1
               ORDER BY a.version DESC, m.id""",
            program.program_id,
        )
    finally:
        if helper is not None:
            _record_server_cpu(helper, "seed")
            await helper.close()
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        _record_server_cpu(conn, "seed")
        await conn.close()
    return BenchProgram(
        database_url=database_url,
        secret_key=secret_key,
        merchant_id=program.merchant_id,
        program_id=program.program_id,
        terminal_keys=program.terminal_keys,
        members=tuple(
            BenchMember(row["id"], row["card_number"], row["card_secret_version"]) for row in rows
        ),
    )


async def grow_ledger(
    database_url: str,
    program: BenchProgram,
    *,
    members_total: int = 1_000_000,
    entries_total: int = 10_000_000,
    progress: Progress | None = None,
) -> None:
    """Add members to ``program`` with earns and redemptions (no orders) over the program's
    history until the database holds ``members_total`` members and ``entries_total`` ledger
    entries (one fewer when the entries still missing are odd: every journal has two)."""
    report = progress or _quiet
    SERVER_CPU_SECONDS["grow"] = 0.0
    conn = await _connect(database_url)
    try:
        held_members = int(await conn.fetchval("SELECT count(*) FROM members"))
        held_entries = int(await conn.fetchval("SELECT count(*) FROM entries"))
        new_members = members_total - held_members
        journals = (entries_total - held_entries) // 2
        if new_members < 0 or journals < 0:
            raise ValueError(
                f"the database holds {held_members} members and {held_entries} entries already"
            )
        if journals > new_members * MAX_EVENTS_PER_MEMBER:
            raise ValueError(f"{journals} journals do not fit {new_members} new members")
        started = await conn.fetchval(
            "SELECT created_at FROM programs WHERE id = $1", program.program_id
        )
        system = {
            row["kind"]: row["id"]
            for row in await conn.fetch(
                "SELECT kind, id FROM accounts WHERE program_id = $1 AND member_id IS NULL",
                program.program_id,
            )
        }
        target = _Accounts(
            program.merchant_id, program.program_id, system["issued"], system["redeemed"]
        )
        history_start = started.astimezone(ZONE).date() + timedelta(days=1)
        today = datetime.now(UTC).astimezone(ZONE).date()
        days = max(1, min(MAX_DAYS, (today - history_start).days))
        rng = random.Random(20_250_702)
        first_ordinal = await _first_ordinal(conn)
        cohorts = []
        for start in range(0, new_members, GROW_COHORT):
            size = min(GROW_COHORT, new_members - start)
            share = journals * (start + size) // new_members - journals * start // new_members
            cohorts.append((first_ordinal + start, size, share))
        ready: asyncio.Queue[tuple[list[tuple[Any, ...]], int] | None] = asyncio.Queue(maxsize=1)
        done = 0
        report("grow", done, journals)

        async def plan() -> None:
            """Plan the cohorts in order, on a thread: the server works meanwhile."""
            for ordinal, size, share in cohorts:
                people = await asyncio.to_thread(
                    plan_people, ordinal, size, days, history_start, rng, events_total=share
                )
                await ready.put((people, share))
                del people
            for _ in range(GROW_CONNECTIONS):
                await ready.put(None)

        async def load(worker: asyncpg.Connection) -> None:
            nonlocal done
            schema = _scratch_name("grow")
            await _scratch(worker, schema)
            try:
                while (cohort := await ready.get()) is not None:
                    people, share = cohort
                    del cohort
                    async with worker.transaction():
                        await _load_people(worker, people)
                        del people
                        await _run(
                            worker,
                            [
                                *(("plan", sql) for sql in _growth_sql(history_start, days)),
                                *_lots_sql(),
                            ],
                        )
                    ids = await _reserve_ids(worker, _counts_sql(with_orders=False))
                    async with worker.transaction():
                        await _bulk_transaction(worker)
                        await _run(worker, _ledger_sql(target, ids, GROWN_REFERENCE))
                        await worker.execute(f"DROP SCHEMA {schema} CASCADE")
                        await worker.execute(f"CREATE SCHEMA {schema}")
                    done += share
                    report("grow", done, journals)
            finally:
                await worker.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        # Cohorts load side by side, each on its own server process.
        workers = [conn] + [await _connect(database_url) for _ in range(GROW_CONNECTIONS - 1)]
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(plan())
                for worker in workers:
                    group.create_task(load(worker))
        finally:
            for worker in workers[1:]:
                _record_server_cpu(worker, "grow")
                await worker.close()
        await _vacuum(conn, database_url, report, "grow")
        _record_server_cpu(conn, "grow")
    finally:
        await conn.close()


# --- Command line ----------------------------------------------------------------------------

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class _Bars:
    """Rich progress bars, one per stage."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.display = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = self.display.add_task(stage, total=total)
        self.display.update(task, completed=done, total=total)


async def _counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        counts = {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in COUNTED_TABLES
        }
        counts["database bytes"] = int(
            await conn.fetchval("SELECT pg_database_size(current_database())")
        )
        return counts
    finally:
        await conn.close()


async def _verify(database_url: str) -> int:
    from loyalty.services.verify import verify_ledger

    engine = create_engine(database_url)
    try:
        found = await verify_ledger(engine)
    finally:
        await engine.dispose()
    for discrepancy in found[:20]:
        print(f"  {discrepancy}")
    return len(found)


async def _main(args: argparse.Namespace) -> None:
    server = make_url(os.environ.get("LOYALTY_TEST_POSTGRES_URL") or DEFAULT_SERVER)
    name = f"loyalty_bench_seed_{secrets.token_hex(4)}"
    admin_dsn = _asyncpg_dsn(server.render_as_string(hide_password=False))
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = server.set(database=name).render_as_string(hide_password=False)
    secret_key = args.secret_key or secrets.token_urlsafe(32)
    timings: list[tuple[str, float]] = []
    load_before = os.getloadavg()
    bars = _Bars()
    try:
        with bars.display:
            started = time.perf_counter()
            program = await seed_program(
                url,
                members=args.members,
                days=args.days,
                terminals=args.terminals,
                secret_key=secret_key,
                progress=bars,
            )
            timings.append(
                (f"seed {args.members} members, {args.days} days", time.perf_counter() - started)
            )
            if args.grow_members:
                started = time.perf_counter()
                await grow_ledger(
                    url,
                    program,
                    members_total=args.grow_members,
                    entries_total=args.grow_entries,
                    progress=bars,
                )
                timings.append(
                    (
                        f"grow to {args.grow_members} members, {args.grow_entries} entries",
                        time.perf_counter() - started,
                    )
                )
        if args.verify:
            started = time.perf_counter()
            found = await _verify(url)
            timings.append((f"ledger verify ({found} differences)", time.perf_counter() - started))
        load = os.getloadavg()
        print(
            f"\nPostgreSQL database {name}; {os.cpu_count()} cores, 1-minute load average "
            f"{load_before[0]:.1f} before and {load[0]:.1f} after (above the core count: other "
            "work shared the cores)"
        )
        for label, seconds in timings:
            print(f"  {label:<52} {seconds:8.1f} s")
        for key, seconds in SERVER_CPU_SECONDS.items():
            print(f"  {'server CPU of the ' + key + ' connections':<52} {seconds:8.1f} s")
        print(f"  {'CPU of this process':<52} {time.process_time():8.1f} s")
        for table, count in (await _counts(url)).items():
            print(f"  {table:<52} {count:>14,}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"  {'peak resident memory of this process':<52} {peak / 1024:11.0f} MB")
        print(f"  {'program / terminals':<52} {program.program_id} / {len(program.terminal_keys)}")
        if args.keep:
            print(f"\nkept: LOYALTY_DATABASE_URL={url}\n      LOYALTY_SECRET_KEY={secret_key}")
    finally:
        if not args.keep:
            admin = await asyncpg.connect(admin_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--terminals", type=int, default=64)
    parser.add_argument("--grow-members", type=int, default=0, help="members in total")
    parser.add_argument("--grow-entries", type=int, default=0, help="ledger entries in total")
    parser.add_argument("--secret-key", help="LOYALTY_SECRET_KEY (default: a random one)")
    parser.add_argument("--verify", action="store_true", help="run `ledger verify` afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the database (else dropped)")
    args = parser.parse_args()
    if bool(args.grow_members) != bool(args.grow_entries):
        parser.error("--grow-members and --grow-entries go together")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
