"""The problem+json answers the admin API documents, endpoint by endpoint."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from loyalty.app.api.params import problem_responses

_DESCRIPTIONS = {
    400: "Bad input (validation_failed, malformed_json)",
    401: "No valid staff session: missing, unknown, expired or logged out (unauthorized)",
    403: "The staff user's role may not do this (forbidden)",
    404: "Unknown id, or one of another merchant (staff_not_found)",
    409: "Conflict with the current state (staff_email_taken, last_owner)",
    422: "Refused by a business rule (rule_set_invalid, reward_out_of_stock, ...)",
    503: "The database is not reachable; retry",
}


def problems(*statuses: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """Problem responses for ``statuses``; ``s400="..."`` etc. replace a default description
    where an endpoint can say more precisely what it answers."""
    return problem_responses(
        {status: descriptions.get(f"s{status}", _DESCRIPTIONS[status]) for status in statuses}
    )
