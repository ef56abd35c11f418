"""The import page and a run's report page, for each role, and the admin API behind them
refusing what the page hides."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from admin.api import ADMIN_API_PREFIX

from .conftest import AdminStack, PageSession

pytestmark = pytest.mark.integration

BAD_MEMBERS = (
    "external_id;display_name;email\n"
    "K-1;Anna Berger;anna@example.org\n"
    "K-2;;lukas@example.org\n"
    "K-3;Mia Gruber;mia@\n"
)


def _upload(session: PageSession, program_id: int, text: str, **params: Any) -> httpx.Response:
    """What imports.js sends: a multipart form with the page's cookie and this site's Origin."""
    return session.client.post(
        f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/members",
        files={"file": ("kunden.csv", text.encode(), "text/csv")},
        params={name: str(value).lower() for name, value in params.items()},
        headers=session.headers(),
    )


def _page(session: PageSession, path: str, **params: Any) -> str:
    response = session.page(path, params or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


@pytest.fixture
def program_id(admin: AdminStack) -> int:
    return int(admin.stack.create_program()["program_id"])


def test_a_manager_sees_the_form_the_columns_and_the_runs(
    admin: AdminStack, program_id: int
) -> None:
    manager = admin.page_session("program_manager")
    html = _page(manager, "/admin/imports")
    assert 'id="import-form"' in html
    assert f'data-endpoint="/api/v1/admin/programs/{program_id}/imports/"' in html
    assert "Fehlerhafte Zeilen überspringen" in html
    assert "<code>external_id</code>" in html
    assert "<code>occurred_at</code>" in html
    assert "Noch keine Importe" in html
    assert 'src="/admin/static/imports.js"' in html
    # Strict CSP: no inline script or style.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html

    response = _upload(manager, program_id, BAD_MEMBERS)
    assert response.status_code == 201, response.text
    run_id = response.json()["run_id"]
    listed = _page(manager, "/admin/imports", program=program_id)
    assert f'data-run="{run_id}"' in listed
    assert "abgelehnt" in listed
    assert "kunden.csv" in listed

    report = _page(manager, f"/admin/imports/{run_id}", program=program_id, lang="en")
    assert "Import 1" in report
    assert "rejected" in report
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td><code>(\w+)</code>', report)
    assert rows == [("3", "display_name"), ("4", "email")]
    assert "Required field empty" in report
    assert "Nothing was imported" in report


def test_support_sees_the_runs_without_the_form_and_the_api_refuses(
    admin: AdminStack, program_id: int
) -> None:
    owner = admin.page_session("owner")
    assert _upload(owner, program_id, BAD_MEMBERS, skip_bad_lines=True).status_code == 201
    support = admin.page_session("support")
    html = _page(support, "/admin/imports")
    assert 'id="import-form"' not in html
    assert 'id="read-only"' in html
    assert "importiert" in html
    refused = _upload(support, program_id, BAD_MEMBERS)
    assert refused.status_code == 403


def test_a_cookie_upload_from_another_site_is_refused(admin: AdminStack, program_id: int) -> None:
    owner = admin.page_session("owner")
    response = owner.client.post(
        f"{ADMIN_API_PREFIX}/programs/{program_id}/imports/members",
        files={"file": ("kunden.csv", BAD_MEMBERS.encode(), "text/csv")},
        headers=owner.headers("https://evil.example"),
    )
    assert response.status_code == 403
    assert owner.call("GET", f"/programs/{program_id}/imports").json() == []


def test_unknown_programs_and_runs_are_not_found_pages(admin: AdminStack, program_id: int) -> None:
    owner = admin.page_session("owner")
    assert owner.page("/admin/imports", {"program": 999}).status_code == 404
    assert owner.page("/admin/imports/5", {"program": program_id}).status_code == 404
    rival = admin.page_session("owner", merchant_id=admin.rival_id)
    run_id = _upload(owner, program_id, BAD_MEMBERS).json()["run_id"]
    assert rival.page(f"/admin/imports/{run_id}", {"program": program_id}).status_code == 404
    empty = _page(rival, "/admin/imports")
    assert "Noch kein Programm" in empty


def test_without_a_session_the_page_asks_to_sign_in(admin: AdminStack) -> None:
    response = admin.client.get("/admin/imports", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/imports"
