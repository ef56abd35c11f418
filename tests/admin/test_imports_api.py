"""The admin API's CSV imports: uploads as the body or as a form, the report, dry runs,
skipping bad lines, the list of runs, roles, merchants and the size limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin.api import ADMIN_API_PREFIX
from tests.admin.conftest import AdminStack, StaffSession
from tests.support.problems import assert_problem

MEMBERS = (
    "external_id;display_name;email;opening_points\r\n"
    "K-1;Anna Berger;anna@example.org;120\r\n"
    "K-2;Lukas Hofer;lukas@example.org;\r\n"
)
BAD_MEMBERS = (
    "external_id,display_name,email\n"
    "K-1,Anna,anna@example.org\n"
    "K-2,,lukas@example.org\n"
    "K-3,Mia,mia@\n"
)
TRANSACTIONS = (
    "reference,occurred_at,member,total,points\n"
    "T-1,2024-12-01T10:00:00Z,K-1,12.50,12\n"
    "T-2,2024-12-02T10:00:00Z,,8.00,\n"
)


def upload(
    session: StaffSession,
    program_id: int,
    kind: str,
    body: str | bytes,
    *,
    form: bool = False,
    **params: Any,
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    url = f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/{kind}"
    query = {name: str(value).lower() for name, value in params.items()}
    if form:
        return session.client.post(
            url,
            files={"file": ("kunden.csv", content, "text/csv")},
            params=query,
            headers=session.headers(),
        )
    return session.client.post(
        url,
        content=content,
        params=query,
        headers={**session.headers(), "Content-Type": "text/csv"},
    )


@pytest.fixture
def program_id(admin: AdminStack) -> int:
    program: dict[str, Any] = admin.stack.create_program()
    return int(program["program_id"])


def test_an_owner_imports_members_from_the_request_body(admin: AdminStack, program_id: int) -> None:
    owner = admin.session("owner")
    response = upload(owner, program_id, "members", MEMBERS, filename="kunden.csv")
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "imported"
    assert (run["rows_total"], run["rows_imported"], run["rows_invalid"]) == (2, 2, 0)
    assert run["filename"] == "kunden.csv"
    assert run["actor"].endswith("<" + owner.email + ">")
    location = response.headers["location"]
    assert location == f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/{run['run_id']}"
    assert owner.read(location.removeprefix(ADMIN_API_PREFIX)) == run
    listed = owner.read(f"/programs/{program_id}/imports")
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    audit = [row for row in admin.audit_rows() if row["action"] == "import.members"]
    assert len(audit) == 1
    assert audit[0]["staff_id"] == owner.staff_id
    assert audit[0]["entity_id"] == str(run["run_id"])

    members = owner.read(f"/programs/{program_id}/members")
    assert len(members["items"]) == 2


def test_a_manager_uploads_a_form_and_transactions_follow(
    any_admin: AdminStack,
) -> None:
    program_id = int(any_admin.stack.create_program()["program_id"])
    manager = any_admin.session("program_manager")
    response = upload(manager, program_id, "members", MEMBERS, form=True)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "kunden.csv"
    sales = upload(manager, program_id, "transactions", TRANSACTIONS)
    assert sales.status_code == 201, sales.text
    assert (sales.json()["status"], sales.json()["rows_imported"]) == ("imported", 2)
    again = upload(manager, program_id, "transactions", TRANSACTIONS)
    assert (again.json()["rows_imported"], again.json()["rows_already_present"]) == (0, 2)
    assert any_admin.stack.verify() == []


def test_a_file_with_bad_lines_is_reported_and_imports_nothing(
    admin: AdminStack, program_id: int
) -> None:
    owner = admin.session("owner")
    response = upload(owner, program_id, "members", BAD_MEMBERS)
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["status"], run["rows_invalid"], run["rows_imported"]) == ("rejected", 2, 0)
    assert [(p["line"], p["code"], p["column"]) for p in run["problems"]] == [
        (3, "required", "display_name"),
        (4, "invalid_email", "email"),
    ]
    assert owner.read(f"/programs/{program_id}/members")["items"] == []

    skipped = upload(owner, program_id, "members", BAD_MEMBERS, skip_bad_lines=True)
    assert (skipped.json()["status"], skipped.json()["rows_imported"]) == ("imported", 1)
    assert skipped.json()["skip_bad_lines"] is True


def test_a_dry_run_answers_the_report_and_stores_nothing(
    admin: AdminStack, program_id: int
) -> None:
    owner = admin.session("owner")
    response = upload(owner, program_id, "members", BAD_MEMBERS, dry_run=True)
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["run_id"], run["dry_run"], run["status"]) == (None, True, "rejected")
    assert [p["line"] for p in run["problems"]] == [3, 4]
    good = upload(owner, program_id, "members", MEMBERS, dry_run=True)
    assert (good.status_code, good.json()["status"]) == (200, "valid")
    assert owner.read(f"/programs/{program_id}/imports") == []
    assert owner.read(f"/programs/{program_id}/members")["items"] == []


@pytest.mark.parametrize(
    ("role", "status"),
    [("owner", 201), ("program_manager", 201), ("support", 403), ("cashier", 403)],
)
def test_roles(admin: AdminStack, program_id: int, role: str, status: int) -> None:
    session = admin.session(role)
    response = upload(session, program_id, "members", MEMBERS)
    assert response.status_code == status, response.text
    if status == 403:
        assert_problem(response, 403, "forbidden")
        assert_problem(session.get(f"/programs/{program_id}/imports"), 403, "forbidden")


def test_anonymous_callers_are_refused(admin: AdminStack, program_id: int) -> None:
    response = admin.client.post(
        f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/members",
        content=MEMBERS,
        headers={"Content-Type": "text/csv"},
    )
    assert_problem(response, 401, "unauthorized")


def test_another_merchants_program_and_runs_are_not_found(
    admin: AdminStack, program_id: int
) -> None:
    owner = admin.session("owner")
    run = upload(owner, program_id, "members", MEMBERS).json()
    rival = admin.session("owner", merchant_id=admin.rival_id)
    assert_problem(upload(rival, program_id, "members", MEMBERS), 404, "program_not_found")
    assert_problem(rival.get(f"/programs/{program_id}/imports"), 404, "program_not_found")
    assert_problem(
        rival.get(f"/programs/{program_id}/imports/{run['run_id']}"), 404, "import_run_not_found"
    )
    assert_problem(owner.get(f"/programs/{program_id}/imports/999"), 404, "import_run_not_found")


def test_an_unknown_kind_is_not_a_route(admin: AdminStack, program_id: int) -> None:
    owner = admin.session("owner")
    response = upload(owner, program_id, "rewards", MEMBERS)
    assert response.status_code in {404, 405}


def test_a_form_without_the_file_field_is_refused(admin: AdminStack, program_id: int) -> None:
    owner = admin.session("owner")
    response = owner.client.post(
        f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/members",
        files={"upload": ("kunden.csv", MEMBERS.encode(), "text/csv")},
        headers=owner.headers(),
    )
    body = assert_problem(response, 400, "validation_failed")
    assert "'file'" in body["detail"]


def test_files_above_the_limit_are_refused_with_413(admin: AdminStack, program_id: int) -> None:
    owner = admin.session("owner")
    too_big = MEMBERS.encode() + b"K-3;" + b"x" * (21 * 1024 * 1024) + b"\r\n"
    for form in (False, True):
        response = upload(owner, program_id, "members", too_big, form=form)
        body = assert_problem(response, 413, "import_too_large")
        assert "loyalty import" in body["detail"]
        assert body["limit_bytes"] == 20 * 1024 * 1024
    assert owner.read(f"/programs/{program_id}/imports") == []
