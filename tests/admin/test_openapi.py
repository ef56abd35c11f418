"""The admin routes in the OpenAPI document: summary, description, problem answers, security."""

from __future__ import annotations

from typing import Any

from admin.api import ADMIN_API_PREFIX
from loyalty.app.problems import PROBLEM_JSON
from tests.admin.conftest import AdminStack

PROBLEM = {"$ref": "#/components/schemas/Problem"}
#: The routes of this module's controllers and the problems each documents at least.
STAFF_ROUTES = {
    ("post", "/login"): {"400", "401", "503"},
    ("post", "/logout"): {"401", "503"},
    ("get", "/me"): {"401", "503"},
    ("put", "/me/password"): {"400", "401", "503"},
    ("get", "/staff"): {"401", "403", "503"},
    ("post", "/staff"): {"400", "401", "403", "409", "503"},
    ("patch", "/staff/{staff_id}"): {"400", "401", "403", "404", "409", "503"},
    ("get", "/audit-log"): {"400", "401", "403", "503"},
}


def _document(admin: AdminStack) -> dict[str, Any]:
    response = admin.client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_staff_routes_are_documented(admin: AdminStack) -> None:
    paths = _document(admin)["paths"]
    for (method, path), statuses in STAFF_ROUTES.items():
        operation = paths[ADMIN_API_PREFIX + path][method]
        assert operation["summary"], path
        assert operation["description"], path
        for status in statuses:
            content = operation["responses"][status]["content"]
            assert content[PROBLEM_JSON]["schema"] == PROBLEM, (path, status)


def test_every_admin_route_but_login_needs_the_staff_token(admin: AdminStack) -> None:
    document = _document(admin)
    scheme = document["components"]["securitySchemes"]["StaffToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        if not path.startswith(ADMIN_API_PREFIX):
            continue
        for method, operation in operations.items():
            if (method, path) == ("post", f"{ADMIN_API_PREFIX}/login"):
                assert "security" not in operation
            else:
                assert operation["security"] == [{"StaffToken": []}], (method, path)


def test_request_bodies_carry_examples(admin: AdminStack) -> None:
    schemas = _document(admin)["components"]["schemas"]
    for name in ("LoginRequest", "CreateStaffRequest", "ChangePasswordRequest"):
        properties = schemas[name]["properties"]
        assert all(field.get("examples") for field in properties.values()), name
    assert schemas["StaffRole"]["enum"] == ["owner", "program_manager", "support", "cashier"]
