"""The JSON API under /api/v1: every route needs an API client (``Authorization: Bearer``)."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from loyalty.app.auth import api_client_guard, provide_caller
from loyalty.app.dependencies import (
    provide_ledger,
    provide_orders,
    provide_programs,
    provide_queries,
    provide_rewards,
    provide_tiers,
)

from .members import AccountController, MemberController
from .operations import HoldController, JournalController, TransferController
from .orders import OrderController
from .programs import ProgramController
from .rewards import RedemptionController, RewardCatalogueController
from .strict_body import strict_body_guard

API_PREFIX = "/api/v1"


def api_router() -> Router:
    return Router(
        path=API_PREFIX,
        route_handlers=[
            ProgramController,
            MemberController,
            AccountController,
            HoldController,
            JournalController,
            TransferController,
            RewardCatalogueController,
            RedemptionController,
            OrderController,
        ],
        # Authenticate first: an anonymous caller learns nothing about body rules.
        guards=[api_client_guard, strict_body_guard],
        dependencies={
            "caller": Provide(provide_caller, sync_to_thread=False),
            "ledger": Provide(provide_ledger, sync_to_thread=False),
            "programs": Provide(provide_programs, sync_to_thread=False),
            "queries": Provide(provide_queries, sync_to_thread=False),
            "rewards": Provide(provide_rewards, sync_to_thread=False),
            "orders": Provide(provide_orders, sync_to_thread=False),
            "tiers": Provide(provide_tiers, sync_to_thread=False),
        },
        security=[{"BearerToken": []}],
    )
