"""Request bodies of the JSON API. Every bound here is also in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from loyalty.domain.points import MAX_POINTS_PER_OPERATION

INT64_MAX = 2**63 - 1

Points = Annotated[
    int,
    Meta(
        ge=1, le=MAX_POINTS_PER_OPERATION, description="Whole points, at least 1.", examples=[250]
    ),
]
SignedPoints = Annotated[
    int,
    Meta(
        ge=-MAX_POINTS_PER_OPERATION,
        le=MAX_POINTS_PER_OPERATION,
        description="Whole points, positive to credit, negative to debit; not zero.",
        examples=[-50],
    ),
]
Id = Annotated[int, Meta(ge=1, le=INT64_MAX)]
Reference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="The caller's own reference, e.g. the POS order number.",
        examples=["POS-4711-0815"],
    ),
]
Reason = Annotated[str, Meta(min_length=1, max_length=500, examples=["Goodwill after complaint"])]
AwareDateTime = Annotated[datetime, Meta(tz=True)]
HoldTimeout = Annotated[int, Meta(ge=5, le=604_800, description="Seconds until the hold lapses.")]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are refused: a typo must not silently drop an intended field."""


class EarnRequest(_Body):
    points: Points
    reference: Reference | None = None
    #: When the purchase happened (an offline till reporting late); default: now.
    effective_at: AwareDateTime | None = None


class RedeemRequest(_Body):
    points: Points
    reference: Reference | None = None


class HoldRequest(_Body):
    points: Points
    timeout_seconds: HoldTimeout | None = None
    reference: Reference | None = None


class CaptureRequest(_Body):
    #: How many of the held points to spend; the rest is released. Default: all.
    points: Points | None = None


class RefundRequest(_Body):
    points: Points
    reason: Reason | None = None


class ReverseRequest(_Body):
    reason: Reason | None = None


class AdjustRequest(_Body):
    points: SignedPoints
    reason: Reason
    actor: Annotated[str, Meta(min_length=1, max_length=200, examples=["support:jana"])]


class TransferRequest(_Body):
    from_member_id: Id
    to_member_id: Id
    points: Points
    reason: Reason | None = None


class CreateProgramRequest(_Body):
    code: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", examples=["bonus"])]
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Sonnenpunkte"])]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "Europe/Berlin"
    expiry_kind: Literal["never", "after_days", "end_of_month_after_months"] = "never"
    expiry_value: Annotated[int, Meta(ge=0, le=36_500)] = 0
    hold_timeout_seconds: HoldTimeout = 900


class EnrollRequest(_Body):
    """Enroll an existing member by id, or a new one by name."""

    member_id: Id | None = None
    display_name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    email: Annotated[str, Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
