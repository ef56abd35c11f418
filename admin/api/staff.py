"""Logging in and out, one's own account, and (for owners) the merchant's staff users."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post, put
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from loyalty.app.api.schemas import INT64_MAX
from loyalty.services.context import Staff
from loyalty.services.staff import SESSION_LIFETIME, StaffDirectory, StaffView

from .auth import STAFF_MANAGERS, requires_role, session_token
from .responses import problems
from .schemas import (
    ChangePasswordRequest,
    CreateStaffRequest,
    LoginRequest,
    LoginResponse,
    UpdateStaffRequest,
)

StaffId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Staff user id")]
_SESSION_HOURS = int(SESSION_LIFETIME.total_seconds() // 3600)


class LoginController(Controller):
    """The one admin route without a session: it makes them."""

    tags = ["Admin: session"]

    @post(
        "/login",
        status_code=200,
        # A bearer token must not land in a shared cache.
        cache_control=CacheControlHeader(no_store=True),
        responses=problems(
            400,
            401,
            503,
            s401="Unknown email, wrong password or deactivated user, told apart "
            "by nothing (invalid_credentials)",
        ),
        summary="Log in with email and password",
        description=(
            f"Answers a session token valid for {_SESSION_HOURS} hours. Send it as "
            "`Authorization: Bearer <token>` to every other admin route. An unknown email, a "
            "wrong password and a deactivated user all answer the same 401 "
            "`invalid_credentials`."
        ),
    )
    async def login(
        self, staff_directory: NamedDependency[StaffDirectory], data: JSONBody[LoginRequest]
    ) -> LoginResponse:
        login = await staff_directory.login(data.email, data.password)
        return LoginResponse(token=login.token, expires_at=login.expires_at, staff=login.view)


class SessionController(Controller):
    """What every signed-in staff user may do, cashiers included."""

    tags = ["Admin: session"]

    @post(
        "/logout",
        status_code=204,
        responses=problems(401, 503),
        summary="Log out",
        description="Ends the session of the token sent; the token is refused from now on.",
    )
    async def logout(
        self, request: Request[Any, Any, Any], staff_directory: NamedDependency[StaffDirectory]
    ) -> None:
        await staff_directory.logout(session_token(request))

    @get(
        "/me",
        responses=problems(401, 503),
        summary="The signed-in staff user",
        description="Who the token belongs to: email, name, role and last login.",
    )
    async def me(
        self, staff: NamedDependency[Staff], staff_directory: NamedDependency[StaffDirectory]
    ) -> StaffView:
        return await staff_directory.get_staff(staff.merchant_id, staff.staff_id)

    @put(
        "/me/password",
        status_code=204,
        responses=problems(
            400,
            401,
            503,
            s400="Bad input, or a new password that is too short or contains the email's name "
            "part (weak_password)",
            s401="No valid session (unauthorized) or a wrong current password "
            "(invalid_credentials)",
        ),
        summary="Change one's own password",
        description=(
            "Needs the current password. Ends every other session of the user (a token that "
            "leaked stops working); the session making the change stays valid."
        ),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        staff_directory: NamedDependency[StaffDirectory],
        data: JSONBody[ChangePasswordRequest],
    ) -> None:
        await staff_directory.change_password(
            staff,
            current_password=data.current_password,
            new_password=data.new_password,
            keep_session_token=session_token(request),
        )


class StaffController(Controller):
    """The merchant's staff users: the back office reads them (the router admits only the
    back office here), owners manage them."""

    path = "/staff"
    tags = ["Admin: staff"]

    @get(
        "/",
        responses=problems(401, 403, 503),
        summary="List the merchant's staff users",
        description="Every staff user of the merchant, active or not, oldest first. "
        "Roles: owner, program_manager, support.",
    )
    async def list_staff(
        self, staff: NamedDependency[Staff], staff_directory: NamedDependency[StaffDirectory]
    ) -> list[StaffView]:
        return await staff_directory.list_staff(staff.merchant_id)

    @post(
        "/",
        guards=[requires_role(*STAFF_MANAGERS)],
        responses=problems(
            400,
            401,
            403,
            409,
            503,
            s400="Bad input (validation_failed, malformed_json) or a weak password (weak_password)",
            s409="A staff user with this email exists, at any merchant (staff_email_taken)",
        ),
        summary="Create a staff user",
        description="Owners only. The email is the login name: unique across the deployment, "
        "compared case-insensitively. The change is written to the audit log.",
    )
    async def create_staff(
        self,
        staff: NamedDependency[Staff],
        staff_directory: NamedDependency[StaffDirectory],
        data: JSONBody[CreateStaffRequest],
    ) -> StaffView:
        return await staff_directory.create_staff(
            staff,
            email=data.email,
            password=data.password,
            role=data.role,
            display_name=data.display_name,
        )

    @patch(
        "/{staff_id:int}",
        guards=[requires_role(*STAFF_MANAGERS)],
        responses=problems(
            400,
            401,
            403,
            404,
            409,
            503,
            s409="The change would leave the merchant without an active owner (last_owner)",
        ),
        summary="Change a staff user's role, name or active flag",
        description="Owners only. Fields left out (or null) stay as they are. Deactivating a "
        "user ends their sessions. Demoting or deactivating the merchant's last active owner is "
        "refused. The change is written to the audit log.",
    )
    async def update_staff(
        self,
        staff: NamedDependency[Staff],
        staff_directory: NamedDependency[StaffDirectory],
        staff_id: StaffId,
        data: JSONBody[UpdateStaffRequest],
    ) -> StaffView:
        return await staff_directory.update_staff(
            staff,
            staff_id,
            role=data.role,
            display_name=data.display_name,
            active=data.active,
        )
