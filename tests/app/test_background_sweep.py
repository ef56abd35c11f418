"""The app releases stale holds and expires due points by itself, on a timer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import insert

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine
from loyalty.db.tables import merchants, rule_sets
from loyalty.services.rule_documents import (
    STARTER_RULES,
    LocalizedText,
    RuleSetDocument,
    TierLevelDocument,
    TierPolicyDocument,
)

AUTH = {"Authorization": "Bearer sweeper-test"}


async def test_background_sweep_releases_stale_holds(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.execute(insert(merchants).values(id=1, name="M", created_at=datetime.now(UTC)))
    await engine.dispose()

    now = [datetime.now(UTC)]
    settings = Settings(
        database_url=sqlite_url,
        api_clients=parse_api_keys("sweeper=sweeper-test@1"),
        sweep_interval_seconds=0.05,
    )
    app = create_app(settings, clock=lambda: now[0])
    async with AsyncTestClient(app) as client:

        async def post(path: str, key: str, body: dict[str, object]) -> dict[str, object]:
            response = await client.post(
                f"/api/v1{path}", json=body, headers={**AUTH, "Idempotency-Key": key}
            )
            assert response.status_code == 201, response.text
            result: dict[str, object] = response.json()
            return result

        program = await post("/programs", "p", {"code": "p", "name": "P", "currency": "EUR"})
        pid = program["program_id"]
        member = await post(f"/programs/{pid}/members", "m", {"display_name": "Ann"})
        mid = member["member_id"]
        await post(f"/programs/{pid}/members/{mid}/earn", "e", {"points": 50})
        held = await post(
            f"/programs/{pid}/members/{mid}/holds", "h", {"points": 20, "timeout_seconds": 5}
        )
        hold = held["hold"]
        assert isinstance(hold, dict)
        # The sweep uses the database clock; push the hold's deadline into the past instead.
        engine = create_engine(sqlite_url)
        async with engine.begin() as conn:
            from sqlalchemy import update

            from loyalty.db.tables import holds

            await conn.execute(
                update(holds)
                .where(holds.c.id == hold["hold_id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        await engine.dispose()

        status = None
        for _ in range(100):  # at most ~5 s
            response = await client.get(
                f"/api/v1/programs/{pid}/holds/{hold['hold_id']}", headers=AUTH
            )
            status = response.json()["status"]
            if status == "expired":
                break
            await asyncio.sleep(0.05)
        assert status == "expired"
        balance = (
            await client.get(f"/api/v1/programs/{pid}/members/{mid}/balance", headers=AUTH)
        ).json()
        assert (balance["posted"], balance["held"], balance["available"]) == (50, 0, 50)


async def test_background_sweep_applies_period_end_tier_reviews(sqlite_url: str) -> None:
    """A member's tier drops at period end without anyone running ``loyalty tiers recalc``."""
    engine = create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.execute(insert(merchants).values(id=1, name="M", created_at=datetime.now(UTC)))
    await engine.dispose()
    now = [datetime(2025, 6, 1, 12, tzinfo=UTC)]
    settings = Settings(
        database_url=sqlite_url,
        api_clients=parse_api_keys("sweeper=sweeper-test@1"),
        sweep_interval_seconds=0.05,
    )
    app = create_app(settings, clock=lambda: now[0])
    async with AsyncTestClient(app) as client:

        async def post(path: str, key: str, body: dict[str, object]) -> dict[str, object]:
            response = await client.post(
                f"/api/v1{path}", json=body, headers={**AUTH, "Idempotency-Key": key}
            )
            assert response.status_code == 201, response.text
            result: dict[str, object] = response.json()
            return result

        program = await post("/programs", "p", {"code": "p", "name": "P", "currency": "EUR"})
        pid = program["program_id"]
        assert isinstance(pid, int)
        await _publish_tiers(sqlite_url, pid, now[0])
        member = await post(f"/programs/{pid}/members", "m", {"display_name": "Ann"})
        mid = member["member_id"]
        basket = {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 50_000}],
        }
        order = await post(
            f"/programs/{pid}/orders", "o", {"member_id": mid, "reference": "1", "basket": basket}
        )
        assert order["tier"] == "silver"  # 500 points reach silver (100) at once

        # 2025's points keep silver through 2026; 2026 without any moves the member down.
        now[0] = datetime(2027, 1, 2, tzinfo=UTC)
        tier = None
        for _ in range(100):  # at most ~5 s
            response = await client.get(f"/api/v1/programs/{pid}/members/{mid}/tier", headers=AUTH)
            tier = response.json()["current"]["code"]
            if tier == "base":
                break
            await asyncio.sleep(0.05)
        assert tier == "base"


async def _publish_tiers(url: str, program_id: int, at: datetime) -> None:
    name = LocalizedText(de="x", en="x")
    document = RuleSetDocument(
        earning_rules=STARTER_RULES.earning_rules,
        tiers=TierPolicyDocument(
            levels=[
                TierLevelDocument(code="base", name=name, threshold=0),
                TierLevelDocument(code="silver", name=name, threshold=100),
            ]
        ),
    )
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(rule_sets).values(
                program_id=program_id,
                version=2,
                status="published",
                document=msgspec.to_builtins(document),
                effective_from=at,
                created_at=at,
                created_by="test",
                published_at=at,
                published_by="test",
            )
        )
    await engine.dispose()
