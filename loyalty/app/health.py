"""Liveness (/health: the process answers) and readiness (/ready: it can do its work)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.app.problems import PROBLEM_JSON, Problem, problem
from loyalty.domain.errors import ErrorCode

CHECK_TIMEOUT_SECONDS = 2.0


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


class HealthController(Controller):
    tags = ["Operations"]

    @get("/health", summary="Liveness: the process is up")
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        summary="Readiness: the database (and Redis, when configured) answer",
        responses={
            503: ResponseSpec(
                data_container=Problem, description="Not ready", media_type=PROBLEM_JSON
            )
        },
    )
    async def ready(self, request: Request[Any, Any, Any], state: State) -> Response[Any]:
        checks: dict[str, str] = {}
        engine: AsyncEngine = state.engine
        checks["database"] = await _check(_ping_database(engine))
        redis_client = state.get("redis")
        if redis_client is not None:
            checks["redis"] = await _check(redis_client.ping())
        if all(result == "ok" for result in checks.values()):
            return Response(Readiness(status="ready", checks=checks))
        failing = ", ".join(name for name, result in checks.items() if result != "ok")
        return problem(
            request,
            ErrorCode.SERVICE_UNAVAILABLE,
            f"not ready: {failing} unreachable",
            extra={"checks": checks},
            headers={"Retry-After": "5"},
        )


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        return f"error: {type(error).__name__}"
    return "ok"
