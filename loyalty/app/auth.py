"""API clients authenticate with ``Authorization: Bearer <secret>``.

The matching client scopes idempotency keys (its id) and data (its merchant). Secrets are
compared in constant time. Terminal API keys stored hashed in the database come with the POS
issue; until then clients are configured by ``LOYALTY_API_KEYS``.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from loyalty.services.context import Caller

from .settings import Settings

CALLER_STATE_KEY = "loyalty_caller"
#: RFC 9110: a 401 names the scheme that would succeed.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="loyalty"'}


def bearer_token(authorization: str | None, *, challenge: dict[str, str], hint: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; without one a 401 that says
    ``hint`` and carries ``challenge``. The admin API's staff sessions use it too."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException(hint, headers=challenge)
    return token


def authenticate(settings: Settings, authorization: str | None) -> Caller:
    secret = bearer_token(
        authorization,
        challenge=CHALLENGE,
        hint="send the API key as 'Authorization: Bearer <key>'",
    )
    matched = None
    for client in settings.api_clients:
        # Compare against every client so that timing does not tell which prefix matched.
        if hmac.compare_digest(client.secret.encode(), secret.encode()):
            matched = client
    if matched is None:
        raise NotAuthorizedException("the API key is not valid", headers=CHALLENGE)
    return Caller(client_id=matched.client_id, merchant_id=matched.merchant_id)


def api_client_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.settings
    caller = authenticate(settings, connection.headers.get("authorization"))
    connection.state[CALLER_STATE_KEY] = caller


def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    caller: Caller = request.state[CALLER_STATE_KEY]
    return caller
