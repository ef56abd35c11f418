"""The role policy, endpoint by endpoint: who is let in (the route then does its work) and who
gets 403 ``forbidden``. Anonymous callers get 401 everywhere but at the login."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from admin.api import ADMIN_API_PREFIX
from tests.admin.conftest import PASSWORD, AdminStack, StaffSession
from tests.support.problems import assert_problem

ROLES = ("owner", "program_manager", "support", "cashier")
EVERYONE = frozenset(ROLES)
BACK_OFFICE = frozenset({"owner", "program_manager", "support"})
OWNERS = frozenset({"owner"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str]
    #: Makes the request as ``session``; ``target`` is another staff user of the merchant.
    call: Callable[[StaffSession, int], httpx.Response]
    success: int


ENDPOINTS = {
    "logout": Endpoint("POST", "/logout", EVERYONE, lambda s, _: s.post("/logout"), 204),
    "me": Endpoint("GET", "/me", EVERYONE, lambda s, _: s.get("/me"), 200),
    "own password": Endpoint(
        "PUT",
        "/me/password",
        EVERYONE,
        lambda s, _: s.put(
            "/me/password",
            {"current_password": PASSWORD, "new_password": "Marillen-Knoedel-77"},
        ),
        204,
    ),
    "list staff": Endpoint("GET", "/staff", BACK_OFFICE, lambda s, _: s.get("/staff"), 200),
    "create staff": Endpoint(
        "POST",
        "/staff",
        OWNERS,
        lambda s, _: s.post(
            "/staff",
            {
                "email": "new.colleague@example.com",
                "password": "Topfen-Strudel-2025",
                "role": "support",
                "display_name": "New Colleague",
            },
        ),
        201,
    ),
    "update staff": Endpoint(
        "PATCH",
        "/staff/{staff_id}",
        OWNERS,
        lambda s, target: s.patch(f"/staff/{target}", {"display_name": "Renamed"}),
        200,
    ),
    "audit log": Endpoint("GET", "/audit-log", BACK_OFFICE, lambda s, _: s.get("/audit-log"), 200),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_role_matrix(admin: AdminStack, role: str, name: str) -> None:
    endpoint = ENDPOINTS[name]
    target = admin.add_staff("support")
    session = admin.session(role)
    response = endpoint.call(session, target.staff_id)
    if role in endpoint.allowed:
        assert response.status_code == endpoint.success, response.text
    else:
        assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_anonymous_callers_are_unauthorized(admin: AdminStack, name: str) -> None:
    endpoint = ENDPOINTS[name]
    path = ADMIN_API_PREFIX + endpoint.path.format(staff_id=1)
    response = admin.client.request(endpoint.method, path, json={})
    assert_problem(response, 401, "unauthorized")


def test_refused_before_the_body_is_looked_at(admin: AdminStack) -> None:
    """Authentication, then the role, then the body: a caller learns nothing about the body's
    rules of a route they may not use."""
    cashier = admin.session("cashier")
    support = admin.session("support")
    assert_problem(cashier.post("/staff", {"nonsense": 1}), 403, "forbidden")
    assert_problem(support.patch("/staff/1", {"role": 7}), 403, "forbidden")
    anonymous = admin.client.post(f"{ADMIN_API_PREFIX}/staff", content=b"{broken")
    assert_problem(anonymous, 401, "unauthorized")
    owner = admin.session("owner")
    assert_problem(owner.post("/staff", {"nonsense": 1}), 400, "validation_failed")
    malformed = admin.client.post(
        f"{ADMIN_API_PREFIX}/staff",
        content=b"{broken",
        headers={**owner.headers(), "Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed_json")


def _served(admin: AdminStack) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under the admin prefix, path parameters filled."""

    def fill(match: re.Match[str]) -> str:
        return "x" if match.group(2) == "str" else "1"

    return {
        (method, _PATH_PARAMETER.sub(fill, route.path))
        for route in admin.stack.app.routes
        if route.path.startswith(ADMIN_API_PREFIX)
        for method in route.methods
        if method not in {"HEAD", "OPTIONS"}
    }


_PATH_PARAMETER = re.compile(r"\{(\w+):(\w+)\}")
LOGIN = ("POST", f"{ADMIN_API_PREFIX}/login")
OWN_SESSION = {
    (endpoint.method, ADMIN_API_PREFIX + endpoint.path)
    for endpoint in ENDPOINTS.values()
    if endpoint.allowed == EVERYONE
}


def test_the_matrix_covers_the_staff_routes(admin: AdminStack) -> None:
    tested = {
        (endpoint.method, ADMIN_API_PREFIX + endpoint.path.format(staff_id=1))
        for endpoint in ENDPOINTS.values()
    }
    assert tested | {LOGIN} <= _served(admin)


def test_every_admin_route_but_login_needs_a_session(admin: AdminStack) -> None:
    """Also the routes other controllers add: the session check sits on the router."""
    for method, path in sorted(_served(admin) - {LOGIN}):
        response = admin.client.request(method, path, json={})
        assert_problem(response, 401, "unauthorized")


def test_cashiers_get_no_further_than_their_own_session(admin: AdminStack) -> None:
    """Also on the routes other controllers add: the back-office check sits on the router."""
    cashier = admin.session("cashier")
    for method, path in sorted(_served(admin) - {LOGIN} - OWN_SESSION):
        response = admin.client.request(method, path, json={}, headers=cashier.headers())
        assert_problem(response, 403, "forbidden")
