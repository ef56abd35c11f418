"""The admin pages' sign-in and the cookie session the admin API accepts from them."""

from __future__ import annotations

import pytest

from admin.api.auth import STAFF_COOKIE

from .conftest import PASSWORD, SITE_ORIGIN, AdminStack

pytestmark = pytest.mark.integration


def test_the_sign_in_page_is_a_plain_form_in_both_languages(admin: AdminStack) -> None:
    german = admin.client.get("/admin/login", headers={"Accept-Language": "de"})
    english = admin.client.get("/admin/login?lang=en")

    assert german.status_code == 200
    assert "Anmeldung für Mitarbeitende" in german.text
    assert 'action="/admin/session"' in german.text
    assert "Staff sign-in" in english.text
    assert "script-src 'self'" in german.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in german.headers["content-security-policy"]
    assert german.headers["cache-control"] == "no-store"


def test_signing_in_sets_a_strict_http_only_cookie_and_goes_where_asked(
    admin: AdminStack,
) -> None:
    email = admin.add_staff("owner").email

    response = admin.client.post(
        "/admin/session",
        data={"email": email, "password": PASSWORD, "next": "/admin/members?q=anna"},
        headers={"Origin": SITE_ORIGIN},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/members?q=anna"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{STAFF_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin", "/wallet/1"])
def test_after_signing_in_only_back_office_paths_are_followed(
    admin: AdminStack, target: str
) -> None:
    email = admin.add_staff("owner").email

    response = admin.client.post(
        "/admin/session",
        data={"email": email, "password": PASSWORD, "next": target},
        headers={"Origin": SITE_ORIGIN},
        follow_redirects=False,
    )

    assert response.headers["location"] == "/admin/analytics"


def test_a_wrong_password_shows_the_form_again_without_a_cookie(admin: AdminStack) -> None:
    email = admin.add_staff("owner").email

    response = admin.client.post(
        "/admin/session",
        data={"email": email, "password": "not the password", "next": "/admin"},
        headers={"Origin": SITE_ORIGIN, "Accept-Language": "en"},
        follow_redirects=False,
    )

    assert response.status_code == 401
    assert "The email or password is not correct." in response.text
    assert "set-cookie" not in response.headers


def test_a_sign_in_posted_from_another_site_is_refused(admin: AdminStack) -> None:
    email = admin.add_staff("owner").email

    response = admin.client.post(
        "/admin/session",
        data={"email": email, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_the_admin_api_accepts_the_page_cookie(admin: AdminStack) -> None:
    session = admin.page_session("support")

    me = session.call("GET", "/me", origin=None)

    assert me.status_code == 200
    assert me.json()["email"] == session.email


def test_a_cookie_write_from_another_site_is_refused_and_changes_nothing(
    admin: AdminStack,
) -> None:
    owner = admin.page_session("owner")
    before = len(admin.audit_rows())
    body = {
        "email": "mallory@example.com",
        "display_name": "Mallory",
        "role": "owner",
        "password": "a-long-enough-password",
    }

    foreign = owner.call("POST", "/staff", body, origin="https://evil.example")
    cross_site = admin.client.post(
        "/api/v1/admin/staff",
        json=body,
        headers={"Cookie": f"{STAFF_COOKIE}={owner.token}", "Sec-Fetch-Site": "cross-site"},
    )

    assert foreign.status_code == 403
    assert cross_site.status_code == 403
    assert len(admin.audit_rows()) == before
    same_site = owner.call("POST", "/staff", body)
    assert same_site.status_code == 201, same_site.text


def test_signing_out_ends_the_session(admin: AdminStack) -> None:
    session = admin.page_session("owner")

    response = admin.client.post(
        "/admin/session/end", headers=session.headers(), follow_redirects=False
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert session.call("GET", "/me", origin=None).status_code == 401


def test_admin_home_leads_to_the_dashboard(admin: AdminStack) -> None:
    response = admin.client.get("/admin", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/analytics"


def test_a_page_about_something_unknown_is_a_page_not_problem_json(admin: AdminStack) -> None:
    session = admin.page_session("owner")

    response = session.page("/admin/programs/999999", params={"lang": "en"})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text
    assert "program_not_found" in response.text
    # The page keeps the shell: the signed-in user and the navigation.
    assert 'href="/admin/members"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_cashier_gets_the_no_access_page(admin: AdminStack) -> None:
    session = admin.page_session("cashier")

    response = session.page("/admin/programs", params={"lang": "en"})

    assert response.status_code == 403
    assert "No access" in response.text
