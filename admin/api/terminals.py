"""Terminals and their API keys: owners create them, issue, rotate and revoke keys; the back
office sees them with each key's last use. Keys are shown once, when issued."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from loyalty.app.api.schemas import Id
from loyalty.services.context import Staff
from loyalty.services.terminals import (
    DEFAULT_ROTATION_GRACE,
    IssuedKey,
    TerminalCode,
    TerminalKeyView,
    Terminals,
    TerminalView,
)

from .auth import STAFF_MANAGERS, requires_role
from .responses import problems

TerminalId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Terminal id")]
KeyId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Key id")]
_PROBLEMS = problems(400, 401, 403, 404, 409, 503)


class NewTerminal(msgspec.Struct, forbid_unknown_fields=True):
    program_id: Id
    code: TerminalCode
    #: The location code baskets carry (earning rules may be limited to locations).
    location: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Rotation(msgspec.Struct, forbid_unknown_fields=True):
    #: How long the older keys keep working (0: revoke them now).
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86_400)] = int(
        DEFAULT_ROTATION_GRACE.total_seconds()
    )


def _terminals(request: Request[Any, Any, Any]) -> Terminals:
    terminals: Terminals = request.app.state.terminals
    return terminals


class TerminalAdminController(Controller):
    path = "/terminals"
    tags = ["Admin: terminals"]

    @get("/", responses=_PROBLEMS, summary="List terminals with their keys and last use")
    async def list_terminals(
        self, request: Request[Any, Any, Any], staff: NamedDependency[Staff]
    ) -> list[TerminalView]:
        return await _terminals(request).list_terminals(staff)

    @post(
        "/",
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Create a terminal and its first API key (shown once). Role: owner.",
    )
    async def create_terminal(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        data: JSONBody[NewTerminal],
    ) -> IssuedKey:
        return await _terminals(request).create_terminal(
            staff,
            program_id=data.program_id,
            code=data.code,
            location=data.location,
            name=data.name,
        )

    @post(
        "/{terminal_id:int}/keys",
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Rotate: a new key (shown once); older keys work for the grace period. Owner.",
    )
    async def rotate_key(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        terminal_id: TerminalId,
        data: JSONBody[Rotation],
    ) -> IssuedKey:
        return await _terminals(request).rotate_key(
            staff, terminal_id, timedelta(seconds=data.grace_seconds)
        )

    @post(
        "/{terminal_id:int}/keys/{key_id:int}/revoke",
        status_code=200,
        responses=_PROBLEMS,
        guards=[requires_role(*STAFF_MANAGERS)],
        summary="Revoke a key at once. Role: owner.",
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        terminal_id: TerminalId,
        key_id: KeyId,
    ) -> TerminalKeyView:
        return await _terminals(request).revoke_key(staff, terminal_id, key_id)
