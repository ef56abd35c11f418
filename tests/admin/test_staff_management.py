"""Owners manage the merchant's staff users: create, change, deactivate, and never lose the
last owner. Every change lands in the audit log, without a password hash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.admin.conftest import PASSWORD, AdminStack, StaffSession
from tests.support.problems import assert_problem

NEW_PASSWORD = "Topfen-Strudel-2025"


def _new_staff(**overrides: Any) -> dict[str, Any]:
    body = {
        "email": "Lena.Koch@Example.com",
        "password": NEW_PASSWORD,
        "role": "support",
        "display_name": "Lena Koch",
    }
    body.update(overrides)
    return body


def test_create_staff(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    response = owner.post("/staff", _new_staff())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "lena.koch@example.com"
    assert created["role"] == "support"
    assert created["active"] is True
    assert created["last_login_at"] is None
    assert "password" not in json.dumps(created)

    row = any_admin.staff_row(created["staff_id"])
    assert row["merchant_id"] == owner.merchant_id
    assert row["password_hash"].startswith("$argon2id$")
    assert NEW_PASSWORD not in row["password_hash"]
    assert any_admin.login_response("lena.koch@example.com", NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("email", ["lena.koch@example.com", "LENA.KOCH@EXAMPLE.COM"])
def test_email_taken_case_insensitively(any_admin: AdminStack, email: str) -> None:
    owner = any_admin.session("owner")
    assert owner.post("/staff", _new_staff()).status_code == 201
    assert_problem(owner.post("/staff", _new_staff(email=email)), 409, "staff_email_taken")


def test_email_is_unique_across_merchants(admin: AdminStack) -> None:
    """The email is the login name: one per deployment."""
    admin.add_staff("support", email="lena.koch@example.com", merchant_id=admin.rival_id)
    owner = admin.session("owner")
    assert_problem(owner.post("/staff", _new_staff()), 409, "staff_email_taken")


@pytest.mark.parametrize(
    "password",
    ["", "elevenchars", "Lena.Koch-2025!", "my-LENA.KOCH-password"],
    ids=["empty", "too short", "contains local part", "contains it upper-cased"],
)
def test_weak_passwords_are_refused(admin: AdminStack, password: str) -> None:
    owner = admin.session("owner")
    before = admin.audit_rows()
    response = owner.post("/staff", _new_staff(password=password))
    expected = "validation_failed" if not password else "weak_password"
    assert_problem(response, 400, expected)
    assert admin.audit_rows() == before
    assert_problem(
        admin.login_response("lena.koch@example.com", password or "x"), 401, "invalid_credentials"
    )


def test_twelve_characters_are_enough(admin: AdminStack) -> None:
    owner = admin.session("owner")
    assert owner.post("/staff", _new_staff(password="abcdefghijkl")).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "admin"),
        ("role", None),
        ("email", "not-an-email"),
        ("display_name", ""),
        ("display_name", "x" * 201),
        ("password", "p" * 1025),
        ("unknown", 1),
    ],
)
def test_bad_input_is_refused(admin: AdminStack, field: str, value: Any) -> None:
    owner = admin.session("owner")
    assert_problem(owner.post("/staff", _new_staff(**{field: value})), 400, "validation_failed")


def test_list_staff_shows_only_the_merchants_own(admin: AdminStack) -> None:
    owner = admin.session("owner")
    support = admin.add_staff("support")
    rival_user = admin.add_staff("program_manager", merchant_id=admin.rival_id)
    listed = owner.read("/staff")
    assert [user["staff_id"] for user in listed] == [owner.staff_id, support.staff_id]
    assert rival_user.email not in json.dumps(listed)
    assert all("password_hash" not in user for user in listed)


def test_update_staff(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    user = any_admin.add_staff("support")
    any_admin.clock.advance(minutes=5)
    response = owner.patch(
        f"/staff/{user.staff_id}", {"role": "program_manager", "display_name": "Lena K."}
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["role"] == "program_manager"
    assert updated["display_name"] == "Lena K."
    assert updated["active"] is True
    assert updated["updated_at"] == any_admin.clock.now.isoformat().replace("+00:00", "Z")
    assert owner.read("/staff")[1] == updated


def test_update_of_another_merchants_staff_is_not_found(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    rival_user = any_admin.add_staff("support", merchant_id=any_admin.rival_id)
    for staff_id in (rival_user.staff_id, 999_999):
        response = owner.patch(f"/staff/{staff_id}", {"active": False})
        assert_problem(response, 404, "staff_not_found")
    assert any_admin.staff_row(rival_user.staff_id)["active"] is True


def test_an_empty_update_changes_nothing(admin: AdminStack) -> None:
    owner = admin.session("owner")
    user = admin.add_staff("support")
    before = admin.audit_rows()
    response = owner.patch(f"/staff/{user.staff_id}", {"role": "support"})
    assert response.status_code == 200, response.text
    assert response.json()["updated_at"] is None
    assert owner.patch(f"/staff/{user.staff_id}", {}).status_code == 200
    assert admin.audit_rows() == before


# --- the last owner ----------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"active": False}, {"role": "program_manager"}])
def test_the_last_active_owner_stays(any_admin: AdminStack, change: dict[str, Any]) -> None:
    owner = any_admin.session("owner")
    before = any_admin.audit_rows()
    body = assert_problem(owner.patch(f"/staff/{owner.staff_id}", change), 409, "last_owner")
    assert body["staff_id"] == owner.staff_id
    assert any_admin.staff_row(owner.staff_id)["role"] == "owner"
    assert any_admin.staff_row(owner.staff_id)["active"] is True
    assert any_admin.audit_rows() == before


def test_one_of_two_owners_may_go(any_admin: AdminStack) -> None:
    first = any_admin.session("owner")
    second = any_admin.add_staff("owner")
    assert first.patch(f"/staff/{second.staff_id}", {"role": "support"}).status_code == 200
    # Now ``first`` is the last one.
    assert_problem(first.patch(f"/staff/{first.staff_id}", {"active": False}), 409, "last_owner")


def test_an_inactive_owner_does_not_count(admin: AdminStack) -> None:
    first = admin.session("owner")
    second = admin.add_staff("owner")
    assert first.patch(f"/staff/{second.staff_id}", {"active": False}).status_code == 200
    assert_problem(first.patch(f"/staff/{first.staff_id}", {"role": "support"}), 409, "last_owner")
    # Reactivated, the second owner lets the first one step down.
    assert first.patch(f"/staff/{second.staff_id}", {"active": True}).status_code == 200
    assert first.patch(f"/staff/{first.staff_id}", {"role": "support"}).status_code == 200


def test_owners_of_another_merchant_do_not_count(admin: AdminStack) -> None:
    owner = admin.session("owner")
    admin.add_staff("owner", merchant_id=admin.rival_id)
    assert_problem(owner.patch(f"/staff/{owner.staff_id}", {"active": False}), 409, "last_owner")


# --- the audit trail --------------------------------------------------------------------------


def _no_secrets(rows: list[dict[str, Any]], *passwords: str) -> None:
    text = json.dumps(rows, default=str)
    assert "$argon2" not in text
    assert "password_hash" not in text
    for password in passwords:
        assert password not in text


def test_staff_changes_are_audited_with_before_and_after(any_admin: AdminStack) -> None:
    owner_user = any_admin.add_staff("owner", display_name="Olga Owner")
    owner: StaffSession = any_admin.login(owner_user.email)
    created = owner.post("/staff", _new_staff()).json()
    staff_id = created["staff_id"]
    assert (
        owner.patch(f"/staff/{staff_id}", {"role": "cashier", "active": False}).status_code == 200
    )

    rows = any_admin.audit_rows()
    provisioned, creation, update = rows
    assert provisioned["actor"] == "system"
    assert provisioned["staff_id"] is None
    assert provisioned["action"] == "create"
    assert provisioned["merchant_id"] == owner.merchant_id

    actor = f"Olga Owner <{owner_user.email}>"
    assert creation["actor"] == actor
    assert creation["staff_id"] == owner.staff_id
    assert (creation["action"], creation["entity"], creation["entity_id"]) == (
        "create",
        "staff",
        str(staff_id),
    )
    assert creation["before"] is None
    assert creation["after"] == {
        "email": "lena.koch@example.com",
        "display_name": "Lena Koch",
        "role": "support",
        "active": True,
    }
    assert creation["at"] == any_admin.clock.now

    assert update["action"] == "update"
    assert update["before"] == creation["after"]
    assert update["after"] == {**creation["after"], "role": "cashier", "active": False}
    _no_secrets(rows, NEW_PASSWORD, PASSWORD)


def test_password_changes_are_audited_without_the_password(admin: AdminStack) -> None:
    session = admin.session("support")
    new_password = "Marillen-Knoedel-77"
    response = session.put(
        "/me/password", {"current_password": PASSWORD, "new_password": new_password}
    )
    assert response.status_code == 204, response.text
    last = admin.audit_rows()[-1]
    assert (last["action"], last["entity_id"], last["staff_id"]) == (
        "change_password",
        str(session.staff_id),
        session.staff_id,
    )
    assert last["before"] is None
    assert last["after"] is None
    _no_secrets(admin.audit_rows(), PASSWORD, new_password)
