"""The canonical terminal API under /api/v1/pos, used by the built-in cashier page and by any
till that speaks our own protocol.

Tills authenticate with a terminal API key (``Authorization: Bearer lk_...``), which fixes the
merchant, program, location and terminal. Staff signed in to the admin API may work a till too:
their session token plus ``X-Terminal: <terminal code>``. Writes are idempotent: complete and
void by the transaction id, a refund by its refund id, a redemption by the transaction id and
the Idempotency-Key header.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, PathParameter, QueryParameter

from admin.api.auth import STAFF_STATE_KEY
from loyalty.app.api.params import READ_PROBLEMS, WRITE_PROBLEMS, IdempotencyKey, answer
from loyalty.app.api.schemas import AwareDateTime
from loyalty.app.api.strict_body import strict_body_guard
from loyalty.app.auth import bearer_token
from loyalty.app.dependencies import provide_staff_directory
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_enrollment import EnrolledAtTill, Enrollment
from loyalty.services.pos import (
    Completed,
    MemberAtTill,
    PointOfSale,
    Preview,
    Refunded,
    TillRedemption,
    TransactionList,
    TransactionView,
    Voided,
)
from loyalty.services.terminals import KEY_SCHEME, Terminal, Terminals

from .events import ExternalId, MemberScan, Order, Redemption, RefundLine, basket_of, check_order

TERMINAL_STATE_KEY = "loyalty_terminal"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="loyalty-pos"'}

TransactionId = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="The POS transaction id (unique per merchant)",
    ),
]


async def terminal_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    token = bearer_token(
        connection.headers.get("authorization"),
        challenge=CHALLENGE,
        hint="send the terminal API key as 'Authorization: Bearer lk_...'",
    )
    terminals: Terminals = connection.app.state.terminals
    try:
        if token.startswith(f"{KEY_SCHEME}_"):
            till = await terminals.authenticate(token)
        else:
            code = connection.headers.get("x-terminal")
            if not code:
                raise NotAuthorizedException(
                    "staff working a till send X-Terminal: <terminal code>", headers=CHALLENGE
                )
            staff = await provide_staff_directory(connection.app.state).authenticate(token)
            connection.state[STAFF_STATE_KEY] = staff
            till = await terminals.for_staff(staff, code)
    except DomainError as error:
        if error.code in (ErrorCode.UNAUTHORIZED, ErrorCode.INVALID_CREDENTIALS):
            raise NotAuthorizedException(error.detail, headers=CHALLENGE) from None
        raise
    connection.state[TERMINAL_STATE_KEY] = till


def provide_terminal(request: Request[Any, Any, Any]) -> Terminal:
    till: Terminal = request.state[TERMINAL_STATE_KEY]
    return till


def provide_pos(request: Request[Any, Any, Any]) -> PointOfSale:
    pos: PointOfSale = request.app.state.pos
    return pos


class TerminalInfo(msgspec.Struct, frozen=True, kw_only=True):
    terminal_code: str
    location: str
    name: str
    program_id: int
    currency: str
    merchant_name: str


class IdentifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    member: MemberScan


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    member: MemberScan
    order: Order


class RedeemRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    member: MemberScan
    redemption: Redemption
    order: Order | None = None
    captured_offline: bool = False


class CompleteRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    occurred_at: AwareDateTime
    member: MemberScan
    order: Order
    captured_offline: bool = False


class RefundRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    refund_id: ExternalId
    #: Empty: everything not yet refunded.
    lines: Annotated[list[RefundLine], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list
    )


class EnrollAtTillRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


def _quantities(lines: list[RefundLine]) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for line in lines:
        quantities[line.line_id] = quantities.get(line.line_id, 0) + line.quantity
    return quantities


class TerminalController(Controller):
    path = "/pos"
    tags = ["Point of sale"]

    @get("/terminal", responses=READ_PROBLEMS, summary="The till this key belongs to")
    async def terminal(self, till: NamedDependency[Terminal]) -> TerminalInfo:
        return TerminalInfo(
            terminal_code=till.code,
            location=till.location,
            name=till.name,
            program_id=till.program_id,
            currency=till.currency,
            merchant_name=till.merchant_name,
        )

    @post(
        "/identify",
        status_code=200,
        responses=WRITE_PROBLEMS,
        summary="Identify a member from a scan or a typed card number, phone or email",
        description=(
            "Answers the display name, tier, available balance and the rewards the member "
            "could use; no other personal data. Writes nothing."
        ),
    )
    async def identify(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        data: JSONBody[IdentifyRequest],
    ) -> MemberAtTill:
        return await pos.identify(till, data.member.value)

    @post(
        "/members",
        status_code=201,
        responses=WRITE_PROBLEMS,
        summary="Enroll a customer by email at the till; they complete the profile from a mail",
        description=(
            "Answers the new member's card number, so the sale can go on at once. An address "
            "that belongs to a member already is that member (`created`: false): they get a "
            "sign-in mail instead. No Idempotency-Key is needed: the address is the key."
        ),
    )
    async def enroll(
        self,
        request: Request[Any, Any, Any],
        till: NamedDependency[Terminal],
        data: JSONBody[EnrollAtTillRequest],
    ) -> EnrolledAtTill:
        enrollment: Enrollment = request.app.state.enrollment
        settings = request.app.state.settings
        return await enrollment.enroll_at_till(
            till.program_id,
            till.merchant_id,
            email=data.email,
            display_name=data.display_name,
            link_base=f"{settings.base_url}/api/v1/wallet/{till.program_id}/sign-in/link?token=",
        )

    @post(
        "/preview",
        status_code=200,
        responses=WRITE_PROBLEMS,
        summary="Points this basket would earn, with the explanation, and usable rewards",
    )
    async def preview(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        data: JSONBody[PreviewRequest],
    ) -> Preview:
        check_order(data.order)
        return await pos.preview(till, data.member.value, basket_of(data.order, till.location))

    @post(
        "/transactions/{transaction_id:str}/redemptions",
        responses=WRITE_PROBLEMS,
        summary="Redeem a reward on an open sale: its points are held until complete or void",
        description=(
            "Needs the Idempotency-Key header. Refused for orders captured offline "
            "(offline_redemption_refused). A rotating wallet code redeems once per member and "
            "30-second step (rotating_code_replayed); a member identified by card number, phone "
            "or email may redeem up to the program's cap per sale (second_factor_required)."
        ),
    )
    async def redeem(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        transaction_id: TransactionId,
        data: JSONBody[RedeemRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TillRedemption]:
        if not idempotency_key:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_MISSING, "the Idempotency-Key header is required"
            )
        basket = None
        if data.order is not None:
            check_order(data.order)
            basket = basket_of(data.order, till.location)
        outcome = await pos.redeem(
            till,
            idempotency_key,
            transaction_id=transaction_id,
            scan=data.member.value,
            reward_code=data.redemption.reward_code,
            points=data.redemption.points,
            basket=basket,
            captured_offline=data.captured_offline,
        )
        return answer(outcome)

    @post(
        "/transactions/{transaction_id:str}/complete",
        status_code=200,
        responses=WRITE_PROBLEMS,
        summary="Complete a sale: earn its points and capture its held redemptions, at once",
        description=(
            "Keyed by the transaction id: a retry with the same body answers the same (header "
            "Idempotent-Replayed: true) and never counts twice. An order captured offline earns "
            "as if sent at `occurred_at`."
        ),
    )
    async def complete(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        transaction_id: TransactionId,
        data: JSONBody[CompleteRequest],
    ) -> Response[Completed]:
        check_order(data.order)
        outcome = await pos.complete(
            till,
            transaction_id=transaction_id,
            scan=data.member.value,
            basket=basket_of(data.order, till.location),
            occurred_at=data.occurred_at,
            captured_offline=data.captured_offline,
            total=data.order.total,
        )
        return answer(outcome, 200)

    @post(
        "/transactions/{transaction_id:str}/refunds",
        responses=WRITE_PROBLEMS,
        summary="Refund a completed sale, whole or by lines",
        description=(
            "Keyed by `refund_id`. Earned points come back out as the order is re-priced "
            "without the refunded units; redeemed points go back by the program's policy."
        ),
    )
    async def refund(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        transaction_id: TransactionId,
        data: JSONBody[RefundRequest],
    ) -> Response[Refunded]:
        outcome = await pos.refund(
            till,
            transaction_id=transaction_id,
            refund_id=data.refund_id,
            quantities=_quantities(data.lines),
        )
        return answer(outcome)

    @post(
        "/transactions/{transaction_id:str}/void",
        status_code=200,
        responses=WRITE_PROBLEMS,
        summary="Void a sale: release its holds, or reverse it whole when completed",
    )
    async def void(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        transaction_id: TransactionId,
    ) -> Response[Voided]:
        return answer(await pos.void(till, transaction_id=transaction_id), 200)

    @get(
        "/transactions",
        responses=READ_PROBLEMS,
        summary="The sales of the till's location on a day",
    )
    async def transactions(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        day: Annotated[
            str | None,
            QueryParameter(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD; default today"),
        ] = None,
    ) -> TransactionList:
        return await pos.transactions(till, day)

    @get("/transactions/{transaction_id:str}", responses=READ_PROBLEMS, summary="One sale")
    async def transaction(
        self,
        till: NamedDependency[Terminal],
        pos: NamedDependency[PointOfSale],
        transaction_id: TransactionId,
    ) -> TransactionView:
        return await pos.transaction(till, transaction_id)


def pos_router() -> Router:
    return Router(
        path="/api/v1",
        route_handlers=[TerminalController],
        guards=[terminal_guard, strict_body_guard],
        dependencies={
            "till": Provide(provide_terminal, sync_to_thread=False),
            "pos": Provide(provide_pos, sync_to_thread=False),
        },
        security=[{"BearerToken": []}],
    )
