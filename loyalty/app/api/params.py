"""Parameters shared by the API's controllers, and the one way a write answers."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Response
from litestar.params import HeaderParameter, PathParameter

from loyalty.app.problems import REPLAYED_HEADER
from loyalty.services.idempotency import MAX_KEY_LENGTH, Replayable

from .schemas import INT64_MAX

T = TypeVar("T", bound=msgspec.Struct)

ProgramId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Program id")]
MemberId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Member id")]
HoldId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Hold id")]
JournalId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Operation (journal) id")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description=(
            f"Required on every write; at most {MAX_KEY_LENGTH} printable ASCII characters. "
            "The same key with the same request replays the stored answer (header "
            "Idempotent-Replayed: true); with a different request it is refused (422); "
            "while the first request runs, 409."
        ),
    ),
]


def answer(outcome: Replayable[T], status_code: int = 201) -> Response[T]:
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    return Response(content=outcome.result, status_code=status_code, headers=headers)
