"""The merchant's audit log: who changed what, when, with the state before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.app.api.schemas import INT64_MAX
from loyalty.services.audit import (
    DEFAULT_AUDIT_PAGE_SIZE,
    MAX_AUDIT_PAGE_SIZE,
    AuditPage,
    audit_entries,
)
from loyalty.services.context import Staff

from .responses import problems


class AuditLogController(Controller):
    """Read by the whole back office (the router admits no one else here)."""

    path = "/audit-log"
    tags = ["Admin: audit log"]

    @get(
        "/",
        responses=problems(400, 401, 403, 503),
        summary="The audit log, newest first (keyset pages)",
        description=(
            "Every recorded change of the merchant: staff users and program configuration, "
            "with actor, action, entity and the entity before and after. Filter by program, "
            "entity (and which one), action, the staff user who acted and time (`from` "
            "inclusive, `to` exclusive; ISO 8601 with a time zone, e.g. `2025-03-01T00:00:00Z`); "
            "every filter given must match. Page with `before_id` = the last page's "
            "`next_before_id`, keeping the filters. Roles: owner, program_manager, support."
        ),
    )
    async def audit_log(
        self,
        staff: NamedDependency[Staff],
        db_engine: NamedDependency[AsyncEngine],
        program_id: Annotated[
            int | None,
            QueryParameter(gt=0, le=INT64_MAX, description="Only changes of this program"),
        ] = None,
        entity: Annotated[
            str | None,
            QueryParameter(
                min_length=1, max_length=64, description="Only changes of this kind, e.g. staff"
            ),
        ] = None,
        entity_id: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=64,
                description="Only changes of this entity, as the entries name it (entity_id), "
                "e.g. a staff user's id or a terminal's code; best with `entity`",
            ),
        ] = None,
        action: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=64,
                description="Only this action, e.g. update or terminal.rotate_key",
            ),
        ] = None,
        staff_id: Annotated[
            int | None,
            QueryParameter(
                gt=0, le=INT64_MAX, description="Only changes this staff user made (the actor)"
            ),
        ] = None,
        since: Annotated[
            datetime | None,
            QueryParameter(
                name="from",
                description="Only changes at or after this time (with a time zone)",
            ),
        ] = None,
        until: Annotated[
            datetime | None,
            QueryParameter(
                name="to", description="Only changes before this time (with a time zone)"
            ),
        ] = None,
        before_id: Annotated[
            int | None,
            QueryParameter(
                gt=0, le=INT64_MAX, description="next_before_id of the last page: older entries"
            ),
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=MAX_AUDIT_PAGE_SIZE, description="Entries per page")
        ] = DEFAULT_AUDIT_PAGE_SIZE,
    ) -> AuditPage:
        return await audit_entries(
            db_engine,
            staff.merchant_id,
            program_id=program_id,
            entity=entity,
            entity_id=entity_id,
            action=action,
            staff_id=staff_id,
            since=since,
            until=until,
            before_id=before_id,
            limit=limit,
        )
