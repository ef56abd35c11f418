"""Parameters shared by the API's controllers, and the one way a write answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, TypeVar

import msgspec
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, PathParameter

from loyalty.app.problems import PROBLEM_JSON, REPLAYED_HEADER, Problem
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


_PROBLEM_DESCRIPTIONS = {
    400: "Bad input (validation_failed, malformed_json, invalid_amount, ...)",
    401: "Missing or invalid API key (unauthorized)",
    404: "Unknown or other merchant's id (program_not_found, member_not_found, ...)",
    409: "Conflict with the current state (hold_already_captured, idempotency_key_in_flight, ...)",
    422: "Refused by a business rule (insufficient_points, refund_exceeds_original, ...)",
    503: "Database or Redis unreachable; retry with the same Idempotency-Key",
}


def problem_responses(descriptions: Mapping[int, str]) -> dict[int, ResponseSpec]:
    """The problem+json answers of an operation, for its ``responses``: status -> what it means
    there. The admin API builds its own tables with it."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=description,
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status, description in descriptions.items()
    }


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    return problem_responses({status: _PROBLEM_DESCRIPTIONS[status] for status in statuses})


#: The problem+json answers a write can give (docs/LEDGER.md lists every code).
WRITE_PROBLEMS = _problems(400, 401, 404, 409, 422, 503)
READ_PROBLEMS = _problems(400, 401, 404, 503)
