"""Staff sessions and roles for the admin API.

A staff user logs in (``POST /api/v1/admin/login``) and sends the token they get as
``Authorization: Bearer <token>``. The admin pages sign in through ``/admin/session`` instead,
which puts the same kind of token in the HttpOnly cookie ``loyalty_staff``; the API accepts that
cookie too, so that the pages' scripts act through the same guards. A cookie travels with
requests other sites make the browser send, so a write authenticated by the cookie alone must
come from this site (``Origin``, else ``Sec-Fetch-Site``): CSRF is refused with 403.

``staff_guard`` turns the token into a :class:`Staff` (401 when the token is missing, unknown,
expired or logged out, or the user was deactivated); ``requires_role`` then admits only the
roles of a policy below (403 otherwise).

Role policy (the admin API's only one; later controllers pick from the tuples below):

- owner: everything, including managing staff users;
- program_manager: program configuration (rules, tiers, rewards), and reading everything;
- support: reading everything, assigning tiers, member support;
- cashier: nothing of the admin API beyond their own session (login, logout, ``/me``, their
  own password); cashiers work at the till, through the POS API.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from loyalty.app.auth import bearer_token
from loyalty.app.dependencies import provide_staff_directory
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.staff import StaffRole

STAFF_STATE_KEY = "loyalty_staff"
SESSION_TOKEN_STATE_KEY = "loyalty_staff_session_token"  # noqa: S105 (a state key, not a secret)
#: RFC 9110: a 401 names the scheme that would succeed.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="loyalty-admin"'}
#: The admin pages' session cookie (HttpOnly, SameSite=Strict; set by admin.web.sessions).
STAFF_COOKIE: Final = "loyalty_staff"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

#: Managing staff users.
STAFF_MANAGERS = (StaffRole.OWNER,)
#: Changing a program's configuration: earning rules, tiers, rewards.
PROGRAM_CONFIGURATORS = (StaffRole.OWNER, StaffRole.PROGRAM_MANAGER)
#: Helping members: assigning tiers, goodwill adjustments.
MEMBER_SUPPORTERS = (StaffRole.OWNER, StaffRole.SUPPORT)
#: Reading anything in the admin API (including the audit log): the whole back office.
READERS = (StaffRole.OWNER, StaffRole.PROGRAM_MANAGER, StaffRole.SUPPORT)


def refuse_cross_site_write(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """A write that a cookie authenticates must come from a page of this site."""
    if connection.scope.get("method", "GET") in _SAFE_METHODS:
        return
    origin = connection.headers.get("origin")
    if origin is not None:
        if urlsplit(origin).netloc != connection.headers.get("host"):
            raise PermissionDeniedException("requests from other sites are refused")
        return
    if connection.headers.get("sec-fetch-site") not in {None, "same-origin", "none"}:
        raise PermissionDeniedException("requests from other sites are refused")


def request_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The staff session token of a request: the bearer token, else the pages' cookie (whose
    writes must then come from this site)."""
    cookie = connection.cookies.get(STAFF_COOKIE)
    if connection.headers.get("authorization") is None and cookie:
        refuse_cross_site_write(connection)
        return cookie
    return bearer_token(
        connection.headers.get("authorization"),
        challenge=CHALLENGE,
        hint="log in (POST /api/v1/admin/login) and send 'Authorization: Bearer <token>'",
    )


async def staff_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = request_token(connection)
    directory = provide_staff_directory(connection.app.state)
    try:
        staff = await directory.authenticate(token)
    except DomainError as error:
        if error.code is not ErrorCode.UNAUTHORIZED:
            raise
        # Litestar's own 401 carries the challenge header; the problems module maps it.
        raise NotAuthorizedException(error.detail, headers=CHALLENGE) from None
    connection.state[STAFF_STATE_KEY] = staff
    connection.state[SESSION_TOKEN_STATE_KEY] = token


def provide_staff(request: ASGIConnection[Any, Any, Any, Any]) -> Staff:
    """The staff user ``staff_guard`` let in (a dependency, and the role guards' source)."""
    staff: Staff | None = request.state.get(STAFF_STATE_KEY)
    if staff is None:
        # A route that checks roles without staff_guard before it is a wiring mistake; refuse.
        raise NotAuthorizedException("no staff session", headers=CHALLENGE)
    return staff


def requires_role(*roles: StaffRole) -> Guard:
    """A guard admitting only staff users with one of ``roles`` (after ``staff_guard``)."""
    allowed = frozenset(roles)
    names = ", ".join(roles)

    async def role_guard(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        staff = provide_staff(connection)
        if staff.role not in allowed:
            raise PermissionDeniedException(
                f"the role {staff.role} may not do this; it needs one of: {names}"
            )

    role_guard.__name__ = f"requires_role({names})"
    return role_guard


def session_token(request: Request[Any, Any, Any]) -> str:
    """The bearer token ``staff_guard`` accepted for this request."""
    token: str = request.state[SESSION_TOKEN_STATE_KEY]
    return token
