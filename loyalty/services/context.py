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


@dataclass(frozen=True, slots=True)
class Staff:
    """A logged-in staff user of a merchant (the program-manager API's caller)."""

    staff_id: int
    merchant_id: int
    role: str
    email: str
    display_name: str

    @property
    def label(self) -> str:
        """How the audit log names the staff user: "Name <email>" (text, so it survives
        renames)."""
        return f"{self.display_name} <{self.email}>"

    @property
    def caller(self) -> Caller:
        """Staff writes share the ledger's idempotency machinery, keyed per staff user."""
        return Caller(client_id=f"staff:{self.staff_id}", merchant_id=self.merchant_id)
