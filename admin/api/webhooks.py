"""Outgoing webhooks: owners and program managers add endpoints, change and disable them, rotate
their signing secrets, send test messages and replay deliveries; the whole back office reads the
endpoints and their delivery log. A signing secret is shown once, when drawn."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from loyalty.app.api.schemas import INT64_MAX, Id
from loyalty.domain.webhooks import MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH, DeliveryStatus
from loyalty.services.context import Staff
from loyalty.services.webhooks import (
    MAX_DELIVERY_PAGE,
    IssuedWebhookSecret,
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookEndpointDetail,
    WebhookEndpointView,
    Webhooks,
)

from .auth import PROGRAM_CONFIGURATORS, requires_role
from .responses import problems

EndpointId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Endpoint id")]
DeliveryId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Delivery id")]
_PROBLEMS = problems(
    400,
    401,
    403,
    404,
    409,
    503,
    s400="Bad input (validation_failed, invalid_webhook_url, unknown_webhook_event)",
    s404="Unknown endpoint, delivery or program, or one of another merchant",
    s409="The endpoint is disabled (webhook_endpoint_disabled)",
)
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION_LENGTH)]
EventTypes = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=40)]],
    msgspec.Meta(min_length=1, max_length=20, examples=[["points.earned", "tier.changed"]]),
]


class NewWebhookEndpoint(msgspec.Struct, forbid_unknown_fields=True):
    #: Where messages are POSTed: https (http only to a loopback address, in development).
    url: Url
    #: The event types to receive: points.earned, points.redeemed, points.expired,
    #: points.reversed, points.deducted, points.transferred, points.expiring_soon, tier.changed.
    events: EventTypes
    description: Description = ""
    #: Only this program's events; left out: every program of the merchant.
    program_id: Id | None = None


class WebhookEndpointChange(msgspec.Struct, forbid_unknown_fields=True):
    """What to change; what is left out stays."""

    url: Url | None = None
    events: EventTypes | None = None
    description: Description | None = None


def _webhooks(request: Request[Any, Any, Any]) -> Webhooks:
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


_MANAGE = [requires_role(*PROGRAM_CONFIGURATORS)]


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["Admin: webhooks"]

    @get("/", responses=_PROBLEMS, summary="List the merchant's webhook endpoints")
    async def list_endpoints(
        self, request: Request[Any, Any, Any], staff: NamedDependency[Staff]
    ) -> list[WebhookEndpointView]:
        return await _webhooks(request).list_endpoints(staff)

    @post(
        "/",
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Add an endpoint; its signing secret is shown once. Owner, program manager.",
        description=(
            "Messages are signed as Standard Webhooks sign them: headers `webhook-id` (the "
            "event id, stable across retries: deduplicate on it), `webhook-timestamp` and "
            '`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with '
            "the secret's key (the base64 after `whsec_`). See docs/WEBHOOKS.md."
        ),
    )
    async def create_endpoint(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        data: JSONBody[NewWebhookEndpoint],
    ) -> IssuedWebhookSecret:
        return await _webhooks(request).create(
            staff,
            url=data.url,
            description=data.description,
            events=data.events,
            program_id=data.program_id,
        )

    @get(
        "/{endpoint_id:int}",
        responses=_PROBLEMS,
        summary="An endpoint with its newest deliveries",
    )
    async def get_endpoint(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
    ) -> WebhookEndpointDetail:
        return await _webhooks(request).get(staff, endpoint_id)

    @patch(
        "/{endpoint_id:int}",
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Change the address, the event types or the description. Owner, manager.",
    )
    async def update_endpoint(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
        data: JSONBody[WebhookEndpointChange],
    ) -> WebhookEndpointView:
        return await _webhooks(request).update(
            staff, endpoint_id, url=data.url, description=data.description, events=data.events
        )

    @post(
        "/{endpoint_id:int}/secret",
        status_code=200,
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Rotate the signing secret at once (shown once). Owner, program manager.",
    )
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
    ) -> IssuedWebhookSecret:
        return await _webhooks(request).rotate_secret(staff, endpoint_id)

    @post(
        "/{endpoint_id:int}/disable",
        status_code=200,
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Disable: nothing is queued or sent until it is enabled. Owner, manager.",
    )
    async def disable_endpoint(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
    ) -> WebhookEndpointView:
        return await _webhooks(request).set_enabled(staff, endpoint_id, False)

    @post(
        "/{endpoint_id:int}/enable",
        status_code=200,
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Enable again. Owner, program manager.",
    )
    async def enable_endpoint(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
    ) -> WebhookEndpointView:
        return await _webhooks(request).set_enabled(staff, endpoint_id, True)

    @post(
        "/{endpoint_id:int}/test",
        status_code=200,
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Send a webhook.test message now; the delivery with the receiver's answer.",
    )
    async def send_test(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
    ) -> WebhookDeliveryView:
        return await _webhooks(request).send_test(staff, endpoint_id)

    @get(
        "/{endpoint_id:int}/deliveries",
        responses=_PROBLEMS,
        summary="The delivery log: deliveries with every attempt, newest first",
    )
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
        status: Annotated[
            DeliveryStatus | None, QueryParameter(description="Only deliveries in this state")
        ] = None,
        before_id: Annotated[
            int | None,
            QueryParameter(gt=0, le=INT64_MAX, description="next_before_id of the last page"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_DELIVERY_PAGE)] = 50,
    ) -> WebhookDeliveryPage:
        return await _webhooks(request).deliveries(
            staff, endpoint_id, status=status, before_id=before_id, limit=limit
        )

    @get(
        "/{endpoint_id:int}/deliveries/{delivery_id:int}",
        responses=_PROBLEMS,
        summary="One delivery with its attempts and the message sent",
    )
    async def get_delivery(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
    ) -> WebhookDeliveryView:
        return await _webhooks(request).delivery(staff, endpoint_id, delivery_id)

    @post(
        "/{endpoint_id:int}/deliveries/{delivery_id:int}/replay",
        status_code=200,
        responses=_PROBLEMS,
        guards=_MANAGE,
        summary="Replay: pending again, same event id, fresh attempts. Owner, manager.",
    )
    async def replay_delivery(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
    ) -> WebhookDeliveryView:
        return await _webhooks(request).replay(staff, endpoint_id, delivery_id)
