"""The mail outbox: what the platform mailed (or, without SMTP, would have mailed) to members.
In the embedded default this is where a sign-in code is read, so that the wallet works without
a mail server. Mail holds sign-in codes: owners only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from loyalty.services.context import Staff
from loyalty.services.outbox import Outbox, OutboxMail

from .auth import STAFF_MANAGERS, requires_role
from .responses import problems

MailId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Mail id")]
_PROBLEMS = problems(400, 401, 403, 404, 503)


def _outbox(request: Request[Any, Any, Any]) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


class OutboxController(Controller):
    path = "/outbox"
    tags = ["Admin: mail outbox"]
    guards = [requires_role(*STAFF_MANAGERS)]

    @get("/", responses=_PROBLEMS, summary="The merchant's mail, newest first. Role: owner.")
    async def list_mail(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        before_id: Annotated[int | None, QueryParameter(gt=0, le=2**63 - 1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[OutboxMail]:
        return await _outbox(request).list_mail(staff.merchant_id, limit=limit, before_id=before_id)

    @get("/{mail_id:int}", responses=_PROBLEMS, summary="One mail. Role: owner.")
    async def get_mail(
        self, request: Request[Any, Any, Any], staff: NamedDependency[Staff], mail_id: MailId
    ) -> OutboxMail:
        return await _outbox(request).get_mail(staff.merchant_id, mail_id)
