"""Vendor connections: owners connect a Toast restaurant or a Shopify shop to one of their
terminals, replace its secret and disable it; the back office sees them with their last use.
A key the platform draws for a vendor is shown once, when issued."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from loyalty.app.api.schemas import Id
from loyalty.services.context import Staff
from loyalty.services.vendor_connections import (
    IssuedVendorSecret,
    VendorConnections,
    VendorConnectionView,
)

from .auth import STAFF_MANAGERS, requires_role
from .responses import problems

ConnectionId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Connection id")]
_PROBLEMS = problems(400, 401, 403, 404, 409, 503)
#: The secret the vendor signs with or presents; absent where the platform draws a key.
VendorSecret = Annotated[str, msgspec.Meta(min_length=16, max_length=255)]


class NewVendorConnection(msgspec.Struct, forbid_unknown_fields=True):
    #: The adapter's name: "toast" or "shopify".
    vendor: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    #: The account the vendor names in its requests: Toast's restaurant external id (the
    #: Toast-Restaurant-External-ID header), Shopify's shop domain (shop.myshopify.com).
    account: Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^\S+$")]
    #: The terminal the vendor's requests act as (its program, location and merchant).
    terminal_id: Id
    #: Shopify: the app's client secret (required). Toast: leave out to have a key drawn.
    secret: VendorSecret | None = None
    #: Country calling code for phone numbers the vendor sends in national form ("1", "49").
    calling_code: Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,2}$")] | None = None


class NewVendorSecret(msgspec.Struct, forbid_unknown_fields=True):
    #: The vendor's new secret; left out for a vendor whose key the platform draws.
    secret: VendorSecret | None = None


def _connections(request: Request[Any, Any, Any]) -> VendorConnections:
    connections: VendorConnections = request.app.state.vendor_connections
    return connections


class VendorConnectionController(Controller):
    path = "/vendor-connections"
    tags = ["Admin: vendor connections"]

    @get("/", responses=_PROBLEMS, summary="List the merchant's POS vendor connections")
    async def list_connections(
        self, request: Request[Any, Any, Any], staff: NamedDependency[Staff]
    ) -> list[VendorConnectionView]:
        return await _connections(request).list_connections(staff)

    @post(
        "/",
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Connect a vendor account (a Toast restaurant, a Shopify shop). Role: owner.",
        description=(
            "For Toast the platform draws the API key Toast is to present (shown once; enter "
            "it in Toast's partner setup). For Shopify enter the app's client secret, which "
            "signs the webhooks. Secrets are stored encrypted and never shown again."
        ),
    )
    async def create_connection(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        data: JSONBody[NewVendorConnection],
    ) -> IssuedVendorSecret:
        return await _connections(request).create(
            staff,
            vendor=data.vendor,
            account=data.account,
            terminal_id=data.terminal_id,
            secret=data.secret,
            calling_code=data.calling_code,
        )

    @post(
        "/{connection_id:int}/secret",
        status_code=200,
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Replace the secret at once (a drawn key is shown once). Role: owner.",
    )
    async def replace_secret(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        connection_id: ConnectionId,
        data: JSONBody[NewVendorSecret],
    ) -> IssuedVendorSecret:
        return await _connections(request).replace_secret(staff, connection_id, data.secret)

    @post(
        "/{connection_id:int}/disable",
        status_code=200,
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Disable a connection: the vendor's requests are refused. Role: owner.",
    )
    async def disable_connection(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        connection_id: ConnectionId,
    ) -> VendorConnectionView:
        return await _connections(request).disable(staff, connection_id)
