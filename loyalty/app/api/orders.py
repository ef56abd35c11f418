"""Baskets, orders and returns for tills and the wallet; a member's tier status.

Quoting writes nothing; recording an order earns by the rules in force at its time; a return
re-prices the order without the returned units and claws back the difference.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from loyalty.services.context import Caller
from loyalty.services.orders import OrderResult, Orders, OrderView, ReturnResult
from loyalty.services.quotes import EXAMPLE_BASKET, BasketDocument, QuoteView
from loyalty.services.rule_documents import Label
from loyalty.services.tiers import Tiers, TierStatusView

from .params import READ_PROBLEMS, WRITE_PROBLEMS, IdempotencyKey, MemberId, ProgramId, answer
from .schemas import AwareDateTime, Id, Reference

OrderReference = Annotated[
    str,
    PathParameter(
        min_length=1, max_length=200, description="The till's order reference", examples=None
    ),
]


class QuoteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    basket: Annotated[BasketDocument, msgspec.Meta(examples=[EXAMPLE_BASKET])]
    #: When the order would happen (default: now): promotions depend on the time.
    at: AwareDateTime | None = None


class OrderRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    member_id: Id
    #: The till's order number: one order per reference and program.
    reference: Reference
    basket: Annotated[BasketDocument, msgspec.Meta(examples=[EXAMPLE_BASKET])]
    #: When the order was completed (an offline till reporting late); default: now.
    occurred_at: AwareDateTime | None = None


class ReturnedLine(msgspec.Struct, forbid_unknown_fields=True):
    line_id: Label
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class ReturnRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    lines: Annotated[list[ReturnedLine], msgspec.Meta(min_length=1, max_length=500)]
    #: The till's return (credit note) number.
    reference: Reference | None = None


class OrderController(Controller):
    path = "/programs/{program_id:int}"
    tags = ["Orders"]

    @post(
        "/members/{member_id:int}/quote",
        # A quote can be refused like a write (no_rules_in_force, invalid_basket).
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Quote a basket: the points it would earn, with one explained line per rule",
        description="Writes nothing. Priced by the rules in force at `at` and the member's tier.",
    )
    async def quote(
        self,
        caller: NamedDependency[Caller],
        orders: NamedDependency[Orders],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[QuoteRequest],
    ) -> QuoteView:
        return await orders.quote(
            caller,
            program_id=program_id,
            member_id=member_id,
            basket=data.basket,
            at=data.at,
        )

    @post(
        "/orders",
        responses=WRITE_PROBLEMS,
        summary="Record a completed order and earn its points",
        description=(
            "Priced by the rule-set version in force at `occurred_at` and the member's tier; "
            "the tier is evaluated afterwards (an upgrade applies from the next order). "
            "One order per reference: a second one gets 409 order_reference_taken."
        ),
    )
    async def record_order(
        self,
        caller: NamedDependency[Caller],
        orders: NamedDependency[Orders],
        program_id: ProgramId,
        data: JSONBody[OrderRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderResult]:
        outcome = await orders.record(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=data.member_id,
            reference=data.reference,
            basket=data.basket,
            occurred_at=data.occurred_at,
        )
        return answer(outcome)

    @get("/orders/{reference:str}", responses=READ_PROBLEMS, summary="Get a recorded order")
    async def get_order(
        self,
        caller: NamedDependency[Caller],
        orders: NamedDependency[Orders],
        program_id: ProgramId,
        reference: OrderReference,
    ) -> OrderView:
        return await orders.order(caller, program_id, reference)

    @post(
        "/orders/{reference:str}/returns",
        responses=WRITE_PROBLEMS,
        summary="Return units of an order: claw back the points they earned",
        description=(
            "The order is re-priced as if the returned units had never been bought (same rules, "
            "tier and member context); the difference is clawed back as far as the member still "
            "has the points, and qualifying totals drop by exactly that difference."
        ),
    )
    async def return_items(
        self,
        caller: NamedDependency[Caller],
        orders: NamedDependency[Orders],
        program_id: ProgramId,
        reference: OrderReference,
        data: JSONBody[ReturnRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ReturnResult]:
        quantities: dict[str, int] = {}
        for line in data.lines:
            quantities[line.line_id] = quantities.get(line.line_id, 0) + line.quantity
        outcome = await orders.return_items(
            caller,
            idempotency_key or "",
            program_id=program_id,
            reference=reference,
            quantities=quantities,
            return_reference=data.reference,
        )
        return answer(outcome)

    @get(
        "/members/{member_id:int}/tier",
        responses=READ_PROBLEMS,
        summary="A member's tier: benefits, points to the next tier, points to keep it and by when",
    )
    async def tier_status(
        self,
        caller: NamedDependency[Caller],
        tiers: NamedDependency[Tiers],
        program_id: ProgramId,
        member_id: MemberId,
    ) -> TierStatusView:
        return await tiers.status(caller, program_id, member_id)
