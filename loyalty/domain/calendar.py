"""Calendar arithmetic shared by expiry, earning periods and tier windows: local midnights in a
program's time zone, time-zone names, and the rule that every moment carries its offset."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DomainError, ErrorCode


def known_zone(name: str, refusal: ErrorCode) -> ZoneInfo:
    """The time zone called ``name``; a ``refusal`` error naming it when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DomainError(refusal, f"unknown time zone {name!r}", timezone=name) from exc


def require_aware(**moments: datetime) -> None:
    """ValueError "<name> must be timezone-aware" for the first naive one of ``moments``."""
    for name, moment in moments.items():
        if moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")


def local_midnight(zone: ZoneInfo, day: date) -> datetime:
    """The UTC instant ``day`` began in ``zone``. Where the zone skips midnight, the instant of
    the jump (fold=0); where midnight happens twice, the first one."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
