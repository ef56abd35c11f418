"""The vendors' own protocols, mounted: ``POST /api/v1/pos/vendors/<vendor>/<endpoint>``.

One route serves every adapter of the registry (``pos_adapter.vendors.VENDORS``). For each
request it finds the merchant's vendor connection by the account the request names, checks the
vendor's key or signature over the raw bytes before reading anything, replays the stored answer
to a repeated message id, and otherwise lets the adapter carry the request out through a
``TillPort`` (the canonical POS service, acting as the connection's terminal). Answers are in
the vendor's shape, refusals too (``adapter.render_error``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from litestar import Request, Response, Router, post
from litestar.params import PathParameter

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.pos import MemberAtTill, PointOfSale, RewardOnBasket
from loyalty.services.rewards import AvailableReward
from loyalty.services.vendor_connections import VendorConnection, VendorConnections
from loyalty.services.vendor_messages import VendorMessages

from .events import Order, PosEvent, Redemption, Refund, basket_of, check_order
from .vendors import (
    ROUTE_PREFIX,
    VENDORS,
    PastMessage,
    PastRedemption,
    RedemptionOutcome,
    TillMember,
    TillReward,
    VendorAdapter,
    VendorReply,
    VendorSettings,
)

REPLAYED_HEADER = "Idempotent-Replayed"
#: Search answers: a scan that names nobody (or several) finds no account.
_NOT_FOUND = frozenset({ErrorCode.CARD_NOT_FOUND, ErrorCode.SCAN_AMBIGUOUS})

VendorName = Annotated[str, PathParameter(max_length=32, description="The vendor adapter")]
Endpoint = Annotated[str, PathParameter(max_length=64, description="The adapter's endpoint")]


def _reward_on_till(reward: AvailableReward) -> TillReward:
    return TillReward(
        code=reward.reward.code,
        name=reward.reward.definition.name.en,
        usable=reward.refusal is None,
        points=reward.points_from,
        refusal=reward.refusal,
    )


def _reward_on_basket(reward: RewardOnBasket) -> TillReward:
    return TillReward(
        code=reward.reward_code,
        name=reward.name.en,
        usable=reward.usable,
        points=reward.points,
        discount=reward.discount,
        refusal=reward.refusal,
    )


def _till_member(
    member: MemberAtTill, rewards: list[TillReward], card_number: str | None = None
) -> TillMember:
    return TillMember(
        member_id=member.member_id,
        display_name=member.display_name,
        tier=member.tier.code if member.tier is not None else None,
        balance=member.balance,
        rewards=rewards,
        card_number=card_number,
    )


class TillPort:
    """``VendorPort`` over the POS service, as the connection's terminal. Records what the
    calls did (the sale, the holds placed) for the message log."""

    def __init__(
        self, pos: PointOfSale, connection: VendorConnection, messages: VendorMessages
    ) -> None:
        self._pos = pos
        self._connection = connection
        self._till = connection.till
        self._messages = messages
        self.transaction_id: str | None = None
        self.redemptions: list[PastRedemption] = []

    @property
    def currency(self) -> str:
        return self._till.currency

    def effects(self) -> dict[str, Any]:
        if not self.redemptions:
            return {}
        return {
            "redemptions": [
                {"redemption_id": r.redemption_id, "reward_code": r.reward_code}
                for r in self.redemptions
            ]
        }

    async def identify(self, scan: str) -> TillMember:
        member = await self._pos.identify(self._till, scan)
        return _till_member(member, [_reward_on_till(r) for r in member.rewards])

    async def search(self, scan: str) -> list[TillMember]:
        """Toast keeps the account id it is given on the check: the card number, never the
        typed email or phone."""
        try:
            member, card = await self._pos.identify_with_card(self._till, scan)
            return [_till_member(member, [_reward_on_till(r) for r in member.rewards], card)]
        except DomainError as error:
            if error.code in _NOT_FOUND:
                return []
            raise

    async def preview(self, scan: str, order: Order) -> tuple[TillMember, int]:
        check_order(order)
        preview = await self._pos.preview(self._till, scan, basket_of(order, self._till.location))
        rewards = [_reward_on_basket(r) for r in preview.rewards]
        return _till_member(preview.member, rewards), preview.quote.points

    async def redeem(self, event: PosEvent, key: str, redemption: Redemption) -> RedemptionOutcome:
        basket = None
        if event.order is not None:
            check_order(event.order)
            basket = basket_of(event.order, self._till.location)
        outcome = await self._pos.redeem(
            self._till,
            key,
            transaction_id=event.transaction_id,
            scan=event.member.value,
            reward_code=redemption.reward_code,
            points=redemption.points,
            basket=basket,
            captured_offline=event.captured_offline,
        )
        held = outcome.result
        self.transaction_id = event.transaction_id
        self.redemptions.append(
            PastRedemption(redemption_id=held.redemption_id, reward_code=held.reward_code)
        )
        return RedemptionOutcome(
            reward_code=held.reward_code,
            accepted=True,
            redemption_id=held.redemption_id,
            discount=held.discount,
            points=held.points,
        )

    async def release(self, key: str, transaction_id: str, redemption_ids: list[int]) -> None:
        self.redemptions = [r for r in self.redemptions if r.redemption_id not in redemption_ids]
        await self._pos.release(
            self._till, key, transaction_id=transaction_id, redemption_ids=redemption_ids
        )

    async def complete(self, event: PosEvent) -> int:
        if event.order is None:
            raise DomainError(ErrorCode.VALIDATION_FAILED, "a sale to complete needs its order")
        check_order(event.order)
        outcome = await self._pos.complete(
            self._till,
            transaction_id=event.transaction_id,
            scan=event.member.value,
            basket=basket_of(event.order, self._till.location),
            occurred_at=event.occurred_at,
            captured_offline=event.captured_offline,
            total=event.order.total,
        )
        self.transaction_id = event.transaction_id
        return outcome.result.points_earned

    async def refund(self, refund: Refund) -> None:
        quantities: dict[str, int] = {}
        for line in refund.lines:
            quantities[line.line_id] = quantities.get(line.line_id, 0) + line.quantity
        await self._pos.refund(
            self._till,
            transaction_id=refund.original_transaction_id,
            refund_id=refund.refund_id,
            quantities=quantities,
        )
        self.transaction_id = refund.original_transaction_id

    async def void(self, transaction_id: str) -> None:
        await self._pos.void(self._till, transaction_id=transaction_id)
        self.transaction_id = transaction_id

    async def earlier(self, message_key: str) -> PastMessage | None:
        found = await self._messages.earlier(self._connection.connection_id, message_key)
        if found is None:
            return None
        return PastMessage(
            message_type=found.message_type,
            transaction_id=found.transaction_id,
            redemptions=[PastRedemption(**r) for r in found.effects.get("redemptions", [])],
        )


def _adapter(name: str, endpoint: str) -> VendorAdapter:
    adapter = VENDORS.get(name)
    if adapter is None or endpoint != adapter.endpoint:
        raise DomainError(
            ErrorCode.UNKNOWN_VENDOR,
            f"no POS vendor endpoint {name}/{endpoint}",
            known=[f"{a.name}/{a.endpoint}" for a in VENDORS.values()],
        )
    return adapter


async def _carry_out(
    request: Request[Any, Any, Any], adapter: VendorAdapter, body: bytes
) -> tuple[VendorReply, bool]:
    state = request.app.state
    connections: VendorConnections = state.vendor_connections
    messages: VendorMessages = state.vendor_messages
    pos: PointOfSale = state.pos
    headers = request.headers
    connection = await connections.find(adapter.name, adapter.tenant(headers))
    adapter.verify(body, headers, connection.secret)
    key = adapter.idempotency_key(headers)
    message_type = adapter.message_type(headers)
    settings = VendorSettings(
        currency=connection.till.currency, calling_code=connection.calling_code
    )
    parsed = adapter.parse(message_type, body, headers, settings, pos.clock())
    # The vendor's message id names one message and its retries (Toast resends the same
    # transaction, Shopify the same event): a retry is answered as the first was.
    request_hash = hashlib.sha256(f"{adapter.name}\x1f{message_type}".encode()).hexdigest()
    stored = await messages.begin(
        connection.connection_id, key, message_type=message_type, request_hash=request_hash
    )
    if stored is not None:
        return VendorReply(status_code=stored.status_code, body=stored.body), True
    port = TillPort(pos, connection, messages)
    try:
        reply = await adapter.handle(parsed, port)
    except DomainError as error:
        reply = adapter.render_error(error)
    if reply.status_code < 500:
        await messages.answer(
            connection.connection_id,
            key,
            status_code=reply.status_code,
            body=reply.body,
            transaction_id=port.transaction_id,
            effects=port.effects(),
        )
    return reply, False


@post(
    f"{ROUTE_PREFIX}/{{vendor:str}}/{{endpoint:str}}",
    status_code=200,
    tags=["Point of sale: vendors"],
    summary="A POS vendor's own protocol (Toast loyalty, Shopify webhooks)",
    description=(
        "Request and answer in the vendor's shapes (docs/POS_ADAPTERS.md). Authenticated by "
        "the vendor connection of the account the request names: Toast's static API key, "
        "Shopify's HMAC signature of the raw body. A repeated message id gets the first "
        "answer again (header Idempotent-Replayed: true)."
    ),
)
async def vendor_message(
    request: Request[Any, Any, Any], vendor: VendorName, endpoint: Endpoint
) -> Response[bytes]:
    adapter = _adapter(vendor, endpoint)
    body = await request.body()
    try:
        reply, replayed = await _carry_out(request, adapter, body)
    except DomainError as error:
        reply, replayed = adapter.render_error(error), False
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(
        content=reply.body,
        status_code=reply.status_code,
        media_type=reply.media_type,
        headers=headers,
    )


def vendor_router() -> Router:
    return Router(path="/", route_handlers=[vendor_message], security=[])
