"""The app releases stale holds and expires due points by itself, on a timer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from litestar.testing import AsyncTestClient
from sqlalchemy import insert

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine
from loyalty.db.tables import merchants

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
