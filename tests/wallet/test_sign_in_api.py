"""Enrollment and passwordless sign-in through the wallet's API, end to end: the code is read
from the mail outbox as a member reads their mail; used, wrong and expired codes are refused;
unknown addresses are not told apart from known ones; sessions end one by one or everywhere."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from loyalty.db.tables import member_consents, members
from tests.app.conftest import Stack
from tests.app.staff_session import Manager
from tests.support.problems import assert_problem

WALLET = "/api/v1/wallet"
ADA = {
    "display_name": "Ada Lovelace",
    "email": "Ada.Lovelace@Example.DE",
    "phone": "0151 23456789",
    "terms_accepted": True,
    "marketing": False,
    "locale": "en",
}


def program(stack: Stack) -> tuple[Manager, int]:
    manager = Manager(stack)
    created = manager.call(
        "POST", "/programs", {"code": "sonne", "name": "Sonnenpunkte", "currency": "EUR"}, 201
    )
    return manager, int(created["program_id"])


def program_with_coffee(stack: Stack) -> tuple[Manager, int]:
    """The program "sonne" with one reward: a coffee for 100 points (2.50 EUR off)."""
    manager, pid = program(stack)
    manager.call(
        "POST",
        f"/programs/{pid}/rewards",
        {
            "code": "kaffee",
            "kind": "amount_off",
            "name": {"de": "Kaffee gratis", "en": "Free coffee"},
            "points_cost": 100,
            "amount_off": 250,
        },
        201,
    )
    return manager, pid


def issue_till(manager: Manager, pid: int) -> dict[str, Any]:
    """A till of the program ("kasse-1") and its first API key, as the owner issues them."""
    issued: dict[str, Any] = manager.call(
        "POST",
        "/terminals",
        {"program_id": pid, "code": "kasse-1", "location": "mitte", "name": "Kasse 1"},
        201,
    )
    return issued


def mails(manager: Manager, to: str | None = None) -> list[dict[str, Any]]:
    every: list[dict[str, Any]] = manager.call("GET", "/outbox")
    return [m for m in every if to is None or m["to_address"] == to]


def code_in(mail: dict[str, Any]) -> str:
    found = re.search(r"\b(\d{6})\b", mail["body_text"])
    assert found, mail["body_text"]
    return found.group(1)


def link_in(mail: dict[str, Any]) -> str:
    found = re.search(r"(/api/v1/wallet/\S+)", mail["body_text"])
    assert found, mail["body_text"]
    return found.group(1)


def enroll(stack: Stack, pid: int, body: dict[str, Any] | None = None) -> Any:
    return stack.client.post(f"{WALLET}/{pid}/enrollment", json=body or ADA)


def sign_in(stack: Stack, pid: int, email: str, code: str) -> Any:
    return stack.client.post(f"{WALLET}/{pid}/sign-in", json={"email": email, "code": code})


def test_enroll_read_the_code_sign_in_and_out(any_stack: Stack) -> None:
    stack = any_stack
    manager, pid = program(stack)
    assert enroll(stack, pid).status_code == 202

    (mail,) = mails(manager, "ada.lovelace@example.de")
    assert mail["kind"] == "sign_in"
    assert mail["subject"].startswith("Your sign-in code for Sonnenpunkte")
    row = stack.read_db(
        lambda conn: conn.execute(
            select(members.c.email, members.c.phone, members.c.locale, members.c.card_number)
        )
    ).one()
    assert (row.email, row.phone, row.locale) == ("ada.lovelace@example.de", "+4915123456789", "en")
    assert row.card_number.startswith("07")

    signed_in = sign_in(stack, pid, "ADA.lovelace@example.de", code_in(mail))
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.headers["set-cookie"]
    assert "loyalty_wallet=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax")
    session = signed_in.json()
    assert session["display_name"] == "Ada Lovelace"
    assert [(c["kind"], c["granted"], c["text_version"]) for c in session["consents"]] == [
        ("terms", True, "2026-11-01"),
        ("marketing", False, "2026-11-01"),
    ]
    assert stack.client.get(f"{WALLET}/{pid}/session").json()["member_id"] == session["member_id"]

    # The code worked once.
    assert_problem(sign_in(stack, pid, ADA["email"], code_in(mail)), 401, "sign_in_code_invalid")

    # Marketing consent given, then withdrawn: each change kept with its time.
    put = stack.client.put(f"{WALLET}/{pid}/consents/marketing", json={"granted": True})
    assert {c["kind"]: c["granted"] for c in put.json()} == {"terms": True, "marketing": True}
    stack.client.put(f"{WALLET}/{pid}/consents/marketing", json={"granted": False})
    kept = stack.read_db(
        lambda conn: conn.scalar(select(func.count()).select_from(member_consents))
    )
    assert kept == 4

    assert stack.client.post(f"{WALLET}/{pid}/sign-out").status_code == 200
    assert stack.client.get(f"{WALLET}/{pid}/session").status_code == 401


def test_the_mailed_link_signs_in_once(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    (mail,) = mails(manager)
    opened = stack.client.get(link_in(mail), follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/wallet/{pid}"
    assert stack.client.get(f"{WALLET}/{pid}/session").status_code == 200
    stack.client.cookies.clear()
    again = stack.client.get(link_in(mail), follow_redirects=False)
    assert_problem(again, 401, "sign_in_code_invalid")


def test_expired_wrong_and_burned_codes_are_refused(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    (mail,) = mails(manager)
    stack.clock.advance(minutes=16)
    assert_problem(sign_in(stack, pid, ADA["email"], code_in(mail)), 401, "sign_in_code_invalid")

    stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": ADA["email"]})
    fresh = mails(manager)[0]
    wrong = "000000" if code_in(fresh) != "000000" else "111111"
    for _ in range(5):
        assert_problem(sign_in(stack, pid, ADA["email"], wrong), 401, "sign_in_code_invalid")
    # Five wrong tries burned the code: the right one no longer works either.
    assert_problem(sign_in(stack, pid, ADA["email"], code_in(fresh)), 401, "sign_in_code_invalid")


def test_unknown_addresses_and_second_enrollments_tell_nothing(stack: Stack) -> None:
    manager, pid = program(stack)
    unknown = stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": "nobody@example.de"})
    assert unknown.status_code == 202
    assert mails(manager) == []

    assert enroll(stack, pid).status_code == 202
    # The same person again (another spelling, the same phone): no second member, a new code.
    again = enroll(stack, pid, {**ADA, "email": "someone.else@example.de"})
    assert again.status_code == 202
    assert again.json() == enroll(stack, pid).json()
    count = stack.read_db(lambda conn: conn.scalar(select(func.count()).select_from(members)))
    assert count == 1
    assert {m["to_address"] for m in mails(manager)} == {"ada.lovelace@example.de"}


def test_sign_out_everywhere_ends_every_session(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    first = sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0]))
    stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": ADA["email"]})
    phone_cookie = first.cookies["loyalty_wallet"]
    sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0]))
    assert stack.client.post(f"{WALLET}/{pid}/sign-out-everywhere").status_code == 200
    stack.client.cookies.set("loyalty_wallet", phone_cookie)
    assert stack.client.get(f"{WALLET}/{pid}/session").status_code == 401


def test_bad_enrollments_are_refused_with_codes(stack: Stack) -> None:
    _, pid = program(stack)
    cases = [
        ({**ADA, "terms_accepted": False}, 400, "consent_required"),
        ({**ADA, "email": "not-an-address"}, 400, "invalid_email"),
        ({**ADA, "phone": "12"}, 400, "invalid_phone"),
        ({**ADA, "extra": 1}, 400, "validation_failed"),
    ]
    for body, status, code in cases:
        assert_problem(enroll(stack, pid, body), status, code)
    assert_problem(enroll(stack, pid + 99), 404, "program_not_found")
    count = stack.read_db(lambda conn: conn.scalar(select(func.count()).select_from(members)))
    assert count == 0


def test_sign_in_attempts_are_limited_per_address(stack: Stack) -> None:
    _, pid = program(stack)
    for _ in range(5):
        ok = stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": "x@example.de"})
        assert ok.status_code == 202
    refused = stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": "X@example.de"})
    assert_problem(refused, 429, "rate_limited")


def test_requests_from_another_site_are_refused(stack: Stack) -> None:
    _, pid = program(stack)
    forged = stack.client.post(
        f"{WALLET}/{pid}/enrollment", json=ADA, headers={"Origin": "https://evil.example"}
    )
    assert_problem(forged, 403, "forbidden")


def test_a_cashier_enrolls_by_email_and_the_member_completes_later(stack: Stack) -> None:
    manager, pid = program(stack)
    issued = issue_till(manager, pid)
    till = {"Authorization": f"Bearer {issued['api_key']}"}
    made = stack.client.post("/api/v1/pos/members", json={"email": "Kim@Example.de"}, headers=till)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["created"] is True
    assert body["card_number"].startswith("07")
    (mail,) = mails(manager)
    assert mail["kind"] == "complete_profile"
    assert "Kundenkarte" in mail["body_text"]
    # The card earns at once.
    identified = stack.client.post(
        "/api/v1/pos/identify", json={"member": {"value": body["card_number"]}}, headers=till
    )
    assert identified.json()["member_id"] == body["member_id"]
    # Enrolled again: the same member, a sign-in mail.
    again = stack.client.post("/api/v1/pos/members", json={"email": "kim@example.de"}, headers=till)
    assert (again.json()["member_id"], again.json()["created"]) == (body["member_id"], False)
    opened = stack.client.get(link_in(mails(manager)[0]), follow_redirects=False)
    assert opened.status_code == 303
    # The completion mail's link (the older one, already replaced by the sign-in mail) is spent;
    # a new completion link opens the profile, where the member accepts the terms.
    assert [m["kind"] for m in mails(manager)] == ["sign_in", "complete_profile"]
    stack.client.cookies.clear()
    third = stack.client.post(
        "/api/v1/pos/members", json={"email": "lea@example.de"}, headers=till
    ).json()
    completion = mails(manager, "lea@example.de")[0]
    landed = stack.client.get(link_in(completion), follow_redirects=False)
    assert landed.headers["location"] == f"/wallet/{pid}/profile"
    profile = stack.client.get(f"/wallet/{pid}/profile?lang=en")
    assert "Your card was created at the till" in profile.text
    assert "Please complete your profile" in stack.client.get(f"/wallet/{pid}?lang=en").text
    accepted = stack.client.put(f"{WALLET}/{pid}/consents/terms", json={"granted": True})
    assert [c["kind"] for c in accepted.json()] == ["terms"]
    assert "Your card was created" not in stack.client.get(f"/wallet/{pid}/profile").text
    refused = stack.client.put(f"{WALLET}/{pid}/consents/terms", json={"granted": False})
    assert_problem(refused, 400, "consent_required")
    assert third["created"] is True
