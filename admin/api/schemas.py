"""Request and response bodies of the admin API. Unknown fields are refused both ways: a typo
must not silently drop an intended field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from loyalty.services.staff import (
    EMAIL_PATTERN,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    StaffRole,
    StaffView,
)

RoleField = Annotated[
    StaffRole,
    Meta(
        description="owner: everything incl. staff; program_manager: program configuration; "
        "support: read, assign tiers, member support; cashier: no admin API beyond /me.",
        examples=["program_manager"],
    ),
]
Email = Annotated[
    str,
    Meta(
        max_length=MAX_EMAIL_LENGTH,
        pattern=EMAIL_PATTERN,
        description="The login name; compared case-insensitively and stored lower-case.",
        examples=["jana.huber@example.com"],
    ),
]
NewPassword = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description=(
            f"At least {MIN_PASSWORD_LENGTH} characters, not containing the email's name part "
            "(refused with weak_password otherwise)."
        ),
        examples=["Kipferl-am-Morgen-2025"],
    ),
]
#: A password as it is now (no policy: it was set before, perhaps under another one).
Password = Annotated[
    str, Meta(min_length=1, max_length=MAX_PASSWORD_LENGTH, examples=["demo-owner-password"])
]
DisplayName = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_DISPLAY_NAME_LENGTH, examples=["Jana Huber"]),
]


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class LoginRequest(_Body):
    email: Annotated[
        str, Meta(min_length=1, max_length=MAX_EMAIL_LENGTH, examples=["owner@example.com"])
    ]
    password: Password


class LoginResponse(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Shown only this once.
    token: Annotated[str, Meta(description="Send as 'Authorization: Bearer <token>'.")]
    expires_at: datetime
    staff: StaffView


class ChangePasswordRequest(_Body):
    current_password: Password
    new_password: NewPassword


class CreateStaffRequest(_Body):
    email: Email
    password: NewPassword
    role: RoleField
    display_name: DisplayName


class UpdateStaffRequest(_Body):
    """Only the fields sent (and not null) change."""

    role: RoleField | None = None
    display_name: DisplayName | None = None
    #: False deactivates the user and ends their sessions; true lets them log in again.
    active: Annotated[bool, Meta(examples=[False])] | None = None
