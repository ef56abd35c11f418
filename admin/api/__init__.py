"""The admin API under /api/v1/admin: staff users log in and manage the merchant's programs.

Three layers, so that the checks run in the right order and a new controller is safe by default:

1. ``/login`` needs no session (it makes them);
2. every other route needs a staff session (``staff_guard``: 401);
3. of those, all but the caller's own session routes (``/logout``, ``/me``) need a back-office
   role: owner, program_manager or support (``requires_role``: 403). Append new controllers to
   that list and narrow further per controller or handler, e.g.
   ``guards=[requires_role(*PROGRAM_CONFIGURATORS)]`` on a write (see ``admin.api.auth``).

Request bodies are decoded strictly (as in the ledger API), but in a before-request hook rather
than a guard: hooks run after every guard, so a caller learns nothing about body rules before
they are authenticated and authorized. A controller that sets its own ``before_request`` would
replace the hook; none should.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router
from litestar.di import Provide

from loyalty.app.api.strict_body import strict_body_guard
from loyalty.app.dependencies import (
    provide_programs,
    provide_queries,
    provide_rule_sets,
    provide_staff_directory,
    provide_tiers,
)

from .adjustments import AdjustmentController, MerchantAdjustmentController
from .analytics import AnalyticsController
from .audit import AuditLogController
from .auth import READERS, provide_staff, requires_role, staff_guard
from .imports import ImportController
from .members import ManagedMemberController, MemberSupportController
from .outbox import OutboxController
from .programs import ManagedProgramController
from .rewards import RewardAdminController
from .rule_sets import RuleSetController
from .staff import LoginController, SessionController, StaffController
from .terminals import TerminalAdminController
from .vendor_connections import VendorConnectionController
from .webhooks import WebhookController

ADMIN_API_PREFIX = "/api/v1/admin"
#: The OpenAPI security scheme of staff session tokens (declared in loyalty.app.factory).
STAFF_TOKEN_SCHEME = "StaffToken"  # noqa: S105 (a scheme name, not a secret)


async def strict_json_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a body that only lax conversion would accept (see loyalty.app.api.strict_body)."""
    await strict_body_guard(request, request.route_handler)


def admin_router() -> Router:
    back_office = Router(
        path="/",
        route_handlers=[
            StaffController,
            AuditLogController,
            AnalyticsController,
            RewardAdminController,
            ManagedProgramController,
            RuleSetController,
            ManagedMemberController,
            MemberSupportController,
            AdjustmentController,
            MerchantAdjustmentController,
            TerminalAdminController,
            OutboxController,
            VendorConnectionController,
            WebhookController,
            ImportController,
        ],
        guards=[requires_role(*READERS)],
    )
    signed_in = Router(
        path="/",
        route_handlers=[SessionController, back_office],
        guards=[staff_guard],
        security=[{STAFF_TOKEN_SCHEME: []}],
    )
    return Router(
        path=ADMIN_API_PREFIX,
        route_handlers=[LoginController, signed_in],
        dependencies={
            "staff_directory": Provide(provide_staff_directory, sync_to_thread=False),
            "staff": Provide(provide_staff, sync_to_thread=False),
            "programs": Provide(provide_programs, sync_to_thread=False),
            "queries": Provide(provide_queries, sync_to_thread=False),
            "rule_sets": Provide(provide_rule_sets, sync_to_thread=False),
            "tiers": Provide(provide_tiers, sync_to_thread=False),
        },
        before_request=strict_json_body,
    )
