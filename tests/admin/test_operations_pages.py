"""The operations pages: staff, tills (terminals, keys, vendor connections), the audit log and
the mail outbox, rendered for each role, and the admin API refusing what a page hides."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.api.auth import STAFF_COOKIE
from admin.web.audit_pages import TEXTS as AUDIT_TEXTS
from admin.web.audit_pages import diff_rows, flatten, read_filters
from admin.web.outbox_pages import Segment, linkify
from loyalty.db.engine import in_transaction
from loyalty.db.tables import terminals
from loyalty.services.outbox import enqueue
from loyalty.services.terminals import Terminals

from .conftest import PASSWORD, AdminStack, PageSession

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
PAGES = ("/admin/staff", "/admin/terminals", "/admin/audit", "/admin/outbox")
#: What a page offers only to those who may change something: admin.js and operations.js
#: act on these attributes, and nothing else on the pages writes.
WRITE_CONTROLS = re.compile(r"data-(api|issue)=")


def _page(session: PageSession, path: str, **params: Any) -> httpx.Response:
    response = session.page(path, params or None)
    assert response.headers["content-type"].startswith("text/html"), response.text
    return response


def _ok_page(session: PageSession, path: str, **params: Any) -> str:
    response = _page(session, path, **params)
    assert response.status_code == 200, response.text
    return response.text


def _terminal(admin: AdminStack, owner: PageSession, code: str = "kasse-1") -> dict[str, Any]:
    program = admin.stack.create_program(code=f"p-{code}")
    body = {"program_id": program["program_id"], "code": code, "location": "mitte", "name": "K1"}
    issued = owner.call("POST", "/terminals", body)
    assert issued.status_code == 201, issued.text
    data: dict[str, Any] = issued.json()
    return data


def _terminal_count(admin: AdminStack) -> int:
    async def count(conn: AsyncConnection) -> int:
        return int(await conn.scalar(select(func.count()).select_from(terminals)) or 0)

    return admin.stack.read_db(count)


# --- Every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_every_page_sends_to_the_sign_in(admin: AdminStack, path: str) -> None:
    response = admin.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/login?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_strict_and_bilingual(admin: AdminStack, path: str) -> None:
    owner = admin.page_session("owner")
    german = _page(owner, path)
    english = _page(owner, path, lang="en")
    assert german.status_code == english.status_code == 200
    assert '<html lang="de">' in german.text
    assert '<html lang="en">' in english.text
    for response in (german, english):
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert response.headers["cache-control"] == "no-store"
        # No inline code or style: every script has a src, no element carries style="".
        assert re.search(r"<script(?![^>]*\bsrc=)", response.text) is None
        assert " style=" not in response.text
    titles = {"/admin/staff": ("Personal", "Staff"), "/admin/terminals": ("Kassen", "Tills"),
              "/admin/audit": ("Protokoll", "Audit log"),
              "/admin/outbox": ("Postausgang", "Mail outbox")}  # fmt: skip
    assert f"<h1>{titles[path][0]}</h1>" in german.text
    assert f"<h1>{titles[path][1]}</h1>" in english.text


# --- Staff -----------------------------------------------------------------------------------


def test_the_owner_sees_staff_with_every_control(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    helper = admin.add_staff("support", display_name="Hanna Hilfreich")
    admin.login(helper.email)  # a last sign-in to show

    html = _ok_page(owner, "/admin/staff", lang="en")

    assert "Hanna Hilfreich" in html
    assert helper.email in html
    assert 'data-api="POST /api/v1/admin/staff"' in html
    assert f'data-api="PATCH /api/v1/admin/staff/{helper.staff_id}"' in html
    assert '"active": false' in html  # deactivate
    assert 'name="role"' in html
    row = re.search(rf'<tr data-staff-id="{helper.staff_id}".*?</tr>', html, re.S)
    assert row is not None
    assert "Support" in row.group(0)
    assert "never" not in row.group(0)  # signed in once
    assert 'id="read-only"' not in html


@pytest.mark.parametrize("role", ["support", "program_manager"])
def test_other_roles_read_the_staff_list_without_controls(admin: AdminStack, role: str) -> None:
    reader = admin.page_session(role)
    colleague = admin.add_staff("owner", display_name="Olga Inhaberin")

    html = _ok_page(reader, "/admin/staff")

    assert "Olga Inhaberin" in html
    assert colleague.email in html
    assert 'id="read-only"' in html
    # Only the own-password form writes; no create, role or (de)activation controls.
    assert WRITE_CONTROLS.findall(html) == ["api"]
    assert 'data-api="PUT /api/v1/admin/me/password"' in html
    assert "/api/v1/admin/staff" not in html


def test_the_api_refuses_staff_changes_a_page_hides(admin: AdminStack) -> None:
    support = admin.page_session("support")
    target = admin.add_staff("support")
    body = {"email": "neu@example.com", "display_name": "Neu", "role": "owner",
            "password": "ein-langes-passwort"}  # fmt: skip
    before = len(admin.audit_rows())

    assert support.call("POST", "/staff", body).status_code == 403
    assert support.call("PATCH", f"/staff/{target.staff_id}", {"role": "owner"}).status_code == 403
    assert len(admin.audit_rows()) == before


def test_a_changed_password_is_confirmed_on_the_page(admin: AdminStack) -> None:
    support = admin.page_session("support")
    changed = support.call(
        "PUT", "/me/password", {"current_password": PASSWORD, "new_password": "Neues-Passwort-99"}
    )
    assert changed.status_code == 204, changed.text
    html = _ok_page(support, "/admin/staff", password="changed")
    assert "Ihr Passwort ist geändert." in html


# --- Tills -----------------------------------------------------------------------------------


def test_the_owner_sees_tills_with_keys_and_every_control(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    issued = _terminal(admin, owner)
    terminal_id = issued["terminal_id"]
    # The till uses its key: the page shows when.
    admin.clock.advance(minutes=5)
    used_at = admin.clock.now
    service: Terminals = admin.stack.app.state.terminals
    admin.stack.run(service.authenticate, issued["api_key"])

    html = _ok_page(owner, "/admin/terminals", lang="en")

    assert "kasse-1" in html
    assert f"lk_{issued['prefix']}_" in html
    assert issued["api_key"] not in html  # shown once, in the API's answer only
    row = re.search(rf'<tr data-key="{issued["prefix"]}">.*?</tr>', html, re.S)
    assert row is not None
    assert "valid" in row.group(0)
    berlin = used_at.astimezone(BERLIN)
    assert berlin.strftime("%H:%M") in row.group(0)
    assert 'data-issue="POST /api/v1/admin/terminals"' in html
    assert f'data-issue="POST /api/v1/admin/terminals/{terminal_id}/keys"' in html
    revoke = f"/api/v1/admin/terminals/{terminal_id}/keys/{issued['key_id']}/revoke"
    assert revoke in html
    assert "data-confirm=" in html
    assert 'data-issue="POST /api/v1/admin/vendor-connections"' in html
    assert 'id="read-only"' not in html


def test_a_rotated_key_shows_its_expiry_and_a_revoked_one_no_control(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    first = _terminal(admin, owner)
    terminal_id = first["terminal_id"]
    rotated = owner.call("POST", f"/terminals/{terminal_id}/keys", {"grace_seconds": 3600})
    assert rotated.status_code == 201, rotated.text
    second = rotated.json()
    revoked = owner.call("POST", f"/terminals/{terminal_id}/keys/{second['key_id']}/revoke")
    assert revoked.status_code == 200, revoked.text

    html = _ok_page(owner, "/admin/terminals")

    old_row = re.search(rf'<tr data-key="{first["prefix"]}">.*?</tr>', html, re.S)
    new_row = re.search(rf'<tr data-key="{second["prefix"]}">.*?</tr>', html, re.S)
    assert old_row is not None
    assert new_row is not None
    assert "gültig" in old_row.group(0)  # valid for the grace hour
    expiry = datetime.fromisoformat(rotated.json()["older_keys_expire_at"])
    local = expiry.astimezone(BERLIN)
    assert local.strftime("%H:%M") in old_row.group(0)
    assert "/revoke" in old_row.group(0)
    assert "gesperrt" in new_row.group(0)
    assert "/revoke" not in new_row.group(0)


@pytest.mark.parametrize("role", ["support", "program_manager"])
def test_other_roles_see_tills_without_controls(admin: AdminStack, role: str) -> None:
    owner = admin.page_session("owner")
    issued = _terminal(admin, owner)
    vendor = owner.call(
        "POST",
        "/vendor-connections",
        {"vendor": "toast", "account": "restaurant-1", "terminal_id": issued["terminal_id"]},
    )
    assert vendor.status_code == 201, vendor.text
    reader = admin.page_session(role)

    html = _ok_page(reader, "/admin/terminals")

    assert "kasse-1" in html
    assert f"lk_{issued['prefix']}_" in html
    assert "restaurant-1" in html
    assert f"…{vendor.json()['secret'][-4:]}" in html
    assert vendor.json()["secret"] not in html
    assert 'id="read-only"' in html
    assert WRITE_CONTROLS.findall(html) == []
    assert "/revoke" not in html
    assert 'id="create-terminal"' not in html


def test_the_api_refuses_till_changes_a_page_hides(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    issued = _terminal(admin, owner)
    support = admin.page_session("support")
    count = _terminal_count(admin)
    body = {"program_id": 1, "code": "heimlich", "location": "x", "name": "x"}

    assert support.call("POST", "/terminals", body).status_code == 403
    rotate = support.call("POST", f"/terminals/{issued['terminal_id']}/keys", {})
    assert rotate.status_code == 403
    revoke = f"/terminals/{issued['terminal_id']}/keys/{issued['key_id']}/revoke"
    assert support.call("POST", revoke).status_code == 403
    assert _terminal_count(admin) == count
    keys = owner.call("GET", "/terminals", origin=None).json()[0]["keys"]
    assert [(key["key_id"], key["active"]) for key in keys] == [(issued["key_id"], True)]


def test_a_cross_site_till_write_with_the_owner_cookie_is_refused(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    program = admin.stack.create_program()
    body = {"program_id": program["program_id"], "code": "fremd", "location": "x", "name": "x"}

    foreign = owner.call("POST", "/terminals", body, origin="https://evil.example")
    cross_site = admin.client.post(
        "/api/v1/admin/terminals",
        json=body,
        headers={"Cookie": f"{STAFF_COOKIE}={owner.token}", "Sec-Fetch-Site": "cross-site"},
    )

    assert foreign.status_code == 403
    assert cross_site.status_code == 403
    assert _terminal_count(admin) == 0
    assert owner.call("POST", "/terminals", body).status_code == 201


def test_tills_of_another_merchant_stay_unseen(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    _terminal(admin, owner, code="eigene-kasse")
    rival = admin.page_session("owner", merchant_id=admin.rival_id)
    html = _ok_page(rival, "/admin/terminals")
    assert "eigene-kasse" not in html


# --- Audit log -------------------------------------------------------------------------------


def test_the_audit_page_shows_each_change_as_a_diff(admin: AdminStack) -> None:
    reader = admin.page_session("support")
    boss = admin.login(admin.add_staff("owner").email)
    user = admin.add_staff("support", display_name="Vorher Name")
    renamed = boss.patch(f"/staff/{user.staff_id}", {"display_name": "Nachher <Name>"})
    assert renamed.status_code == 200

    html = _ok_page(reader, "/admin/audit", entity="staff", entity_id=str(user.staff_id))

    entries = re.findall(r'<li class="card audit-entry" data-entry="\d+">.*?</li>', html, re.S)
    assert len(entries) == 2  # the creation and the rename, newest first
    rename, creation = entries
    changed = re.search(r'<tr class="diff-changed">.*?</tr>', rename, re.S)
    assert changed is not None
    assert "display_name" in changed.group(0)
    assert "Vorher Name" in changed.group(0)
    assert "Nachher &lt;Name&gt;" in changed.group(0)  # escaped, never markup
    assert "<Name>" not in html
    assert "3 unveränderte Felder" in rename  # email, role, active
    assert rename.count('class="diff-changed"') == 1
    assert creation.count('class="diff-added"') == 4
    assert "system" in creation


def test_the_audit_page_filters_by_actor_action_and_days(admin: AdminStack) -> None:
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: the page's days are German days.
    admin.clock.now = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    boss_email = admin.add_staff("owner").email
    user = admin.add_staff("support")
    boss = admin.login(boss_email)
    assert boss.patch(f"/staff/{user.staff_id}", {"display_name": "Am Zweiten"}).is_success
    admin.clock.now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    boss = admin.login(boss_email)  # the first session has ended meanwhile
    assert boss.patch(f"/staff/{user.staff_id}", {"role": "program_manager"}).is_success
    reader = admin.page_session("program_manager")

    def shown(**params: str) -> list[str]:
        html = _ok_page(reader, "/admin/audit", **params)
        return re.findall(r'<td class="value new">(.*?)</td>', html, re.S)

    assert shown(staff=str(boss.staff_id)) == ["program_manager", "Am Zweiten"]
    assert shown(action="create", staff=str(boss.staff_id)) == []
    updates = {"entity": "staff", "entity_id": str(user.staff_id), "action": "update"}
    assert shown(**updates, **{"from": "2025-03-02", "to": "2025-03-02"}) == ["Am Zweiten"]
    assert shown(**updates, **{"from": "2025-03-03"}) == ["program_manager"]
    assert shown(**updates, to="2025-03-01") == []
    assert shown(**updates) == ["program_manager", "Am Zweiten"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2025-03-05", "to": "2025-03-01"}, "Der Zeitraum ist leer"),
        ({"from": "gestern"}, "„gestern“ ist kein Datum"),
        ({"staff": "ich"}, "„ich“ ist keine gültige Nummer"),
        ({"before": "-3"}, "keine gültige Nummer"),
        ({"action": "x" * 65}, "Aktion: höchstens 64 Zeichen"),
    ],
)
def test_bad_audit_filters_say_what_is_wrong(
    admin: AdminStack, params: dict[str, str], message: str
) -> None:
    reader = admin.page_session("support")
    response = _page(reader, "/admin/audit", **params)
    assert response.status_code == 400
    assert message in response.text
    assert 'class="card audit-entry"' not in response.text


def test_the_audit_page_pages_to_older_entries_with_its_filters(admin: AdminStack) -> None:
    reader = admin.page_session("support")
    boss = admin.login(admin.add_staff("owner").email)
    user = admin.add_staff("support")
    for number in range(52):
        assert boss.patch(f"/staff/{user.staff_id}", {"display_name": f"N{number}"}).is_success

    first = _ok_page(reader, "/admin/audit", action="update")
    older = re.search(r'<a href="([^"]+)" id="audit-older"', first)
    assert older is not None
    link = older.group(1).replace("&amp;", "&")
    assert "action=update" in link
    assert first.count('class="card audit-entry"') == 50
    second = reader.page(link).text
    assert second.count('class="card audit-entry"') == 2
    assert 'id="audit-older"' not in second
    assert 'id="audit-newest"' in second
    assert ">N1<" in second
    assert ">N0<" in second


def test_audit_entries_of_another_merchant_stay_unseen(admin: AdminStack) -> None:
    admin.add_staff("support", display_name="Geheime Kollegin", merchant_id=admin.rival_id)
    reader = admin.page_session("owner")
    html = _ok_page(reader, "/admin/audit")
    assert "Geheime Kollegin" not in html


def test_flatten_and_diff_rows() -> None:
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1, 2]}) == {"a.b": 1, "a.c": {}, "d": [1, 2]}
    assert flatten(7) == {"(value)": 7}
    rows = diff_rows({"x": 1, "same": "s", "gone": True}, {"x": 2, "same": "s", "new": None})
    assert [(row.key, row.change, row.before, row.after) for row in rows] == [
        ("gone", "removed", "true", None),
        ("new", "added", None, "null"),
        ("x", "changed", "1", "2"),
        ("same", "same", "s", "s"),
    ]
    created = diff_rows(None, {"tiers": [{"code": "gold"}], "name": {"de": "Gold"}})
    assert [(row.key, row.after) for row in created] == [
        ("name.de", "Gold"),
        ("tiers", '[{"code": "gold"}]'),
    ]
    assert diff_rows(None, None) == []


def test_filter_days_are_german_days() -> None:
    filters = read_filters({"from": "2025-07-01", "to": "2025-07-01"}, AUDIT_TEXTS["en"])
    assert filters.errors == []
    assert filters.since == datetime(2025, 6, 30, 22, 0, tzinfo=UTC)
    assert filters.until == datetime(2025, 7, 1, 22, 0, tzinfo=UTC)
    winter = read_filters({"from": "2025-01-10"}, AUDIT_TEXTS["en"])
    assert winter.since == datetime(2025, 1, 9, 23, 0, tzinfo=UTC)
    assert winter.until is None


# --- Outbox ----------------------------------------------------------------------------------


def _mail(admin: AdminStack, body: str, *, merchant_id: int | None = None) -> int:
    async def work(conn: AsyncConnection) -> int:
        return await enqueue(
            conn,
            merchant_id=merchant_id or admin.shop_id,
            to_address="ole@example.de",
            subject="Ihr Anmeldecode: 123456",
            body_text=body,
            kind="sign_in",
            at=admin.clock.now,
        )

    async def enqueued() -> int:
        return await in_transaction(admin.stack.engine, work)

    return admin.stack.run(enqueued)


def test_the_owner_reads_the_outbox_with_safe_links(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    body = (
        "Hallo <b>Ole</b>,\n"
        "Link: http://127.0.0.1:8000/api/v1/wallet/1/sign-in/link?token=abc&x=1.\n"
        "Hier: http://testserver.local/wallet/1 und https://example.org/hilfe\n"
        "Nie: javascript:alert(1)"
    )
    mail_id = _mail(admin, body)

    listing = _ok_page(owner, "/admin/outbox")
    assert "ole@example.de" in listing
    assert f'href="/admin/outbox/{mail_id}"' in listing
    assert "im Postausgang" in listing

    html = _ok_page(owner, f"/admin/outbox/{mail_id}")
    mail = re.search(r'<pre id="mail-body">(.*?)</pre>', html, re.S)
    assert mail is not None
    text = mail.group(1)
    assert "&lt;b&gt;Ole&lt;/b&gt;" in text
    assert "<b>" not in text
    assert '<a href="/api/v1/wallet/1/sign-in/link?token=abc&amp;x=1">' in text
    assert "x=1</a>." in text  # the full stop ends the sentence, not the link
    assert '<a href="/wallet/1">http://testserver.local/wallet/1</a>' in text
    assert '<a href="https://example.org/hilfe" rel="noopener noreferrer" target="_blank">' in text
    assert "javascript:alert(1)" in text
    assert 'href="javascript' not in text
    assert len(re.findall(r"<a ", text)) == 3


@pytest.mark.parametrize("role", ["support", "program_manager"])
def test_only_owners_read_the_outbox(admin: AdminStack, role: str) -> None:
    mail_id = _mail(admin, "Code 123456")
    reader = admin.page_session(role)
    for path in ("/admin/outbox", f"/admin/outbox/{mail_id}"):
        response = _page(reader, path)
        assert response.status_code == 403
        assert "Nur Inhaber/innen sehen den Postausgang" in response.text
        assert "123456" not in response.text
    assert 'href="/admin/outbox"' not in _ok_page(reader, "/admin/staff")  # not in the menu


def test_mail_of_another_merchant_is_not_found(admin: AdminStack) -> None:
    mail_id = _mail(admin, "Code 654321", merchant_id=admin.rival_id)
    owner = admin.page_session("owner")
    response = _page(owner, f"/admin/outbox/{mail_id}")
    assert response.status_code == 404
    assert "654321" not in response.text
    assert "654321" not in _ok_page(owner, "/admin/outbox")


def test_the_outbox_pages_through_older_mail(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    ids = [_mail(admin, f"Mail {number}") for number in range(51)]
    first = _ok_page(owner, "/admin/outbox")
    assert first.count("<tr data-mail=") == 50
    assert f'href="/admin/outbox?before={ids[1]}"' in first
    second = _ok_page(owner, "/admin/outbox", before=str(ids[1]))
    assert re.findall(r'<tr data-mail="(\d+)"', second) == [str(ids[0])]


def test_linkify_keeps_text_as_text() -> None:
    own = frozenset({"shop.example"})
    assert linkify("no links <here>", own) == [Segment("no links <here>")]
    assert linkify("(see https://shop.example/a?b=1#c)", own) == [
        Segment("(see "),
        Segment("https://shop.example/a?b=1#c", href="/a?b=1#c"),
        Segment(")"),
    ]
    assert linkify("http://other.example", own) == [
        Segment("http://other.example", href="http://other.example", external=True)
    ]
