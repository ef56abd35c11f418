"""Logging in and out: tokens, their lifetime, and refusals that tell an attacker nothing."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from admin.api import ADMIN_API_PREFIX
from loyalty.services.staff import SESSION_LIFETIME
from tests.admin.conftest import PASSWORD, AdminStack, StaffSession
from tests.app.conftest import SHOP_SECRET
from tests.support.problems import assert_problem

# --- login ---------------------------------------------------------------------------------


def test_login_answers_a_token_valid_for_12_hours(any_admin: AdminStack) -> None:
    user = any_admin.add_staff("program_manager", email="jana.huber@example.com")
    response = any_admin.login_response("jana.huber@example.com")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "no-store" in response.headers["cache-control"]
    body = response.json()
    assert datetime.fromisoformat(body["expires_at"]) == any_admin.clock.now + timedelta(hours=12)
    assert body["staff"] == {
        "staff_id": user.staff_id,
        "email": "jana.huber@example.com",
        "display_name": user.display_name,
        "role": "program_manager",
        "active": True,
        "created_at": body["staff"]["created_at"],
        "updated_at": None,
        "last_login_at": any_admin.clock.now.isoformat().replace("+00:00", "Z"),
    }
    # 32 random bytes, URL-safe; the database keeps only the SHA-256 of it.
    token = body["token"]
    assert len(token) == 43
    (session,) = any_admin.session_rows(user.staff_id)
    assert session["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(session)
    assert session["expires_at"] == any_admin.clock.now + SESSION_LIFETIME
    assert any_admin.staff_row(user.staff_id)["last_login_at"] == any_admin.clock.now


def test_login_email_is_case_insensitive(admin: AdminStack) -> None:
    admin.add_staff("support", email="Sepp.Maier@Example.com")
    response = admin.login_response("  SEPP.maier@example.COM ")
    assert response.status_code == 200, response.text
    assert response.json()["staff"]["email"] == "sepp.maier@example.com"


def test_each_login_is_a_session_of_its_own(admin: AdminStack) -> None:
    user = admin.add_staff("support")
    first = admin.login(user.email)
    second = admin.login(user.email)
    assert first.token != second.token
    first.post("/logout")
    assert second.get("/me").status_code == 200


@pytest.mark.parametrize("case", ["wrong password", "unknown email", "inactive user"])
def test_login_refusals_are_indistinguishable(admin: AdminStack, case: str) -> None:
    owner = admin.session("owner")
    user = admin.add_staff("support", email="moni@example.com")
    email, password = "moni@example.com", PASSWORD
    if case == "wrong password":
        password = "Sonnenblumen-Brot-43"
    elif case == "unknown email":
        email = "nobody@example.com"
    else:
        assert owner.patch(f"/staff/{user.staff_id}", {"active": False}).status_code == 200
    before = admin.session_rows(user.staff_id)

    body = assert_problem(admin.login_response(email, password), 401, "invalid_credentials")
    assert body["detail"] == "the email or password is not correct"
    assert set(body) == {"type", "title", "status", "detail", "code", "instance"}
    assert admin.session_rows(user.staff_id) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "a@example.com"}, {"email": "a@example.com", "password": 12}, []],
)
def test_login_with_a_malformed_body_is_a_bad_request(admin: AdminStack, body: object) -> None:
    response = admin.client.post(f"{ADMIN_API_PREFIX}/login", json=body)
    assert_problem(response, 400, "validation_failed")


def test_login_refuses_unknown_fields(admin: AdminStack) -> None:
    user = admin.add_staff("owner")
    response = admin.client.post(
        f"{ADMIN_API_PREFIX}/login",
        json={"email": user.email, "password": PASSWORD, "remember_me": True},
    )
    assert_problem(response, 400, "validation_failed")


# --- the token -----------------------------------------------------------------------------


def test_me_answers_who_the_token_belongs_to(admin: AdminStack) -> None:
    session = admin.session("cashier")
    me = session.read("/me")
    assert me["staff_id"] == session.staff_id
    assert me["role"] == "cashier"
    assert "password_hash" not in me


def test_a_token_expires_after_12_hours(any_admin: AdminStack) -> None:
    session = any_admin.session("support")
    any_admin.clock.advance(hours=11, minutes=59, seconds=59)
    assert session.get("/me").status_code == 200
    any_admin.clock.advance(seconds=1)
    body = assert_problem(session.get("/me"), 401, "unauthorized")
    assert "log in again" in body["detail"]


def test_logout_revokes_the_token(any_admin: AdminStack) -> None:
    session = any_admin.session("owner")
    response = session.post("/logout")
    assert response.status_code == 204, response.text
    assert_problem(session.get("/me"), 401, "unauthorized")
    assert_problem(session.post("/logout"), 401, "unauthorized")
    (row,) = any_admin.session_rows(session.staff_id)
    assert row["revoked_at"] == any_admin.clock.now


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic b3duZXI6cHc=",
        "Bearer not-a-session",
        "Bearer " + "x" * 300,
    ],
)
def test_requests_without_a_valid_session_are_unauthorized(
    admin: AdminStack, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = admin.client.get(f"{ADMIN_API_PREFIX}/me", headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="loyalty-admin"'


def test_an_api_key_is_no_staff_session(admin: AdminStack) -> None:
    response = admin.client.get(
        f"{ADMIN_API_PREFIX}/me", headers={"Authorization": f"Bearer {SHOP_SECRET}"}
    )
    assert_problem(response, 401, "unauthorized")


def test_a_staff_token_is_no_api_key(admin: AdminStack) -> None:
    session = admin.session("owner")
    response = admin.client.get("/api/v1/programs", headers=session.headers())
    assert_problem(response, 401, "unauthorized")


def test_deactivation_ends_the_sessions_at_once(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    support = any_admin.session("support")
    assert owner.patch(f"/staff/{support.staff_id}", {"active": False}).status_code == 200
    assert_problem(support.get("/me"), 401, "unauthorized")
    # Reactivated, the user logs in anew: the old token stays dead.
    assert owner.patch(f"/staff/{support.staff_id}", {"active": True}).status_code == 200
    assert_problem(support.get("/me"), 401, "unauthorized")
    assert any_admin.login(support.email).get("/me").status_code == 200


def test_a_role_change_applies_to_running_sessions(admin: AdminStack) -> None:
    owner = admin.session("owner")
    manager = admin.session("program_manager")
    assert manager.get("/staff").status_code == 200
    assert owner.patch(f"/staff/{manager.staff_id}", {"role": "cashier"}).status_code == 200
    assert_problem(manager.get("/staff"), 403, "forbidden")
    assert manager.read("/me")["role"] == "cashier"


# --- own password ----------------------------------------------------------------------------

NEW_PASSWORD = "Marillen-Knoedel-77"


def _change(session: StaffSession, current: str, new: str) -> int:
    response = session.put("/me/password", {"current_password": current, "new_password": new})
    return response.status_code


def test_change_password(any_admin: AdminStack) -> None:
    session = any_admin.session("cashier")
    other = any_admin.login(session.email)
    assert _change(session, PASSWORD, NEW_PASSWORD) == 204

    # The session that changed it stays; every other one ends.
    assert session.get("/me").status_code == 200
    assert_problem(other.get("/me"), 401, "unauthorized")
    assert_problem(any_admin.login_response(session.email, PASSWORD), 401, "invalid_credentials")
    assert any_admin.login_response(session.email, NEW_PASSWORD).status_code == 200
    assert any_admin.staff_row(session.staff_id)["password_hash"].startswith("$argon2id$")


def test_change_password_needs_the_current_one(admin: AdminStack) -> None:
    session = admin.session("support")
    response = session.put(
        "/me/password", {"current_password": "not-my-password", "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 401, "invalid_credentials")
    assert admin.login_response(session.email, PASSWORD).status_code == 200


@pytest.mark.parametrize(
    "new_password", ["short-pw", "eleven-char", "my-HANNA.HUBER-password", "1234hanna.huber!"]
)
def test_change_password_refuses_weak_ones(admin: AdminStack, new_password: str) -> None:
    admin.add_staff("support", email="hanna.huber@example.com")
    session = admin.login("hanna.huber@example.com")
    response = session.put(
        "/me/password", {"current_password": PASSWORD, "new_password": new_password}
    )
    assert_problem(response, 400, "weak_password")
    assert admin.login_response(session.email, PASSWORD).status_code == 200
