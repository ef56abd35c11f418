"""Who is asking: every service call is made on behalf of an authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Caller:
    #: Scopes idempotency keys.
    client_id: str
    #: Scopes all data: nothing crosses merchants.
    merchant_id: int


def utc_now() -> datetime:
    return datetime.now(UTC)
