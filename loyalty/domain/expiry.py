"""When earned points expire, from the program's policy. Pure: the earning time is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from .calendar import local_midnight, require_aware


class ExpiryKind(StrEnum):
    NEVER = "never"
    AFTER_DAYS = "after_days"
    #: Square's style: valid to the end of the month N months after earning, in the program's zone.
    END_OF_MONTH_AFTER_MONTHS = "end_of_month_after_months"


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    kind: ExpiryKind = ExpiryKind.NEVER
    value: int = 0
    timezone: str = "Europe/Berlin"

    def __post_init__(self) -> None:
        if self.kind is not ExpiryKind.NEVER and self.value <= 0:
            raise ValueError("an expiring policy needs a positive value")

    def expires_at(self, earned_at: datetime) -> datetime | None:
        """The first instant at which points earned at ``earned_at`` are no longer spendable."""
        require_aware(earned_at=earned_at)
        if self.kind is ExpiryKind.NEVER:
            return None
        if self.kind is ExpiryKind.AFTER_DAYS:
            return earned_at + timedelta(days=self.value)
        zone = ZoneInfo(self.timezone)
        local = earned_at.astimezone(zone)
        # The month after (earning month + N) starts the instant the points lapse.
        year, month0 = divmod(local.year * 12 + (local.month - 1) + self.value + 1, 12)
        return local_midnight(zone, date(year, month0 + 1, 1)).astimezone(earned_at.tzinfo)
