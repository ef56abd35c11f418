"""Request bodies are decoded strictly, before Litestar's own (lax) conversion.

Litestar converts handler arguments with msgspec's lax mode, made for query strings and forms:
it would accept ``{"points": "10"}`` or ``"1e3"`` as a number. For JSON bodies that is a bug in
the making (a till sending a string must be told, not guessed at), so this guard decodes the raw
body once with the handler's body type in strict mode. It also tells malformed JSON
(``malformed_json``) from well-formed JSON of the wrong shape (``validation_failed``) by the
exception msgspec raises, not by reading error texts.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.connection import ASGIConnection, Request
from litestar.handlers.base import BaseRouteHandler

from loyalty.domain.errors import DomainError, ErrorCode

#: One decoder per body type (types live as long as the process; handlers may not).
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _decoder_for(handler: BaseRouteHandler) -> msgspec.json.Decoder[Any] | None:
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    decoder = _decoders.get(data.annotation)
    if decoder is None:
        decoder = _decoders[data.annotation] = msgspec.json.Decoder(data.annotation)
    return decoder


async def strict_body_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    decoder = _decoder_for(handler)
    if decoder is None or not isinstance(connection, Request):
        return
    body = await connection.body()
    try:
        decoder.decode(body)
    except msgspec.DecodeError as error:
        # msgspec raises ValidationError (a DecodeError subclass) for wrong shapes, and may meet
        # a wrong shape before a syntax error further on: broken JSON must win.
        if isinstance(error, msgspec.ValidationError) and _well_formed(body):
            message = str(error)
            match = _PATH.search(message)
            key = match.group(1) if match else ""
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"Validation failed for {connection.method} {connection.url.path}",
                errors=[{"message": _PATH.sub("", message), "key": key, "source": "body"}],
            ) from None
        detail = (
            "the request body is empty; send a JSON object" if not body else "JSON is malformed"
        )
        raise DomainError(ErrorCode.MALFORMED_JSON, detail) from None


def _well_formed(body: bytes) -> bool:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    return True
