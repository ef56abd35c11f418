"""The member's own data (DSGVO/GDPR) through the wallet's API: the profile, the download of all
their data as JSON and as a ZIP of CSV files, and erasure: personal data gone from every table,
sign-in and the till no longer find the member, the ledger still verifies, nobody else touched.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from loyalty.db.tables import (
    audit_log,
    feedback_answers,
    invite_codes,
    journals,
    mail_outbox,
    member_consents,
    member_sessions,
    members,
    reward_redemptions,
    rewards,
    sign_in_codes,
)
from loyalty.domain.cards import rotating_code
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_cards import card_secret
from loyalty.services.member_privacy import ERASED_NAME, Erased, MemberPrivacy
from tests.app.conftest import Stack
from tests.app.staff_session import Manager
from tests.pos.test_terminal_api import Till, line, order, wallet_code
from tests.support.problems import assert_problem

from .test_sign_in_api import (
    ADA,
    WALLET,
    code_in,
    enroll,
    issue_till,
    mails,
    program_with_coffee,
    sign_in,
)

ADA_EMAIL = "ada.lovelace@example.de"
BOB = {
    "display_name": "Bob Builder",
    "email": "bob@example.de",
    "phone": "0160 1234567",
    "terms_accepted": True,
    "marketing": True,
    "locale": "de",
}
COOKIE = "loyalty_wallet"


@dataclass
class World:
    stack: Stack
    manager: Manager
    till: Till
    pid: int
    ada: int
    card: str
    ada_cookie: str
    bob: int
    bob_cookie: str

    def as_member(self, cookie: str) -> None:
        self.stack.client.cookies.set(COOKIE, cookie)


def member_signed_in(stack: Stack, manager: Manager, pid: int, body: dict[str, Any]) -> str:
    """Enroll through the wallet, read the code from the outbox, sign in: the session cookie."""
    assert enroll(stack, pid, body).status_code == 202
    address = body["email"].lower()
    signed_in = sign_in(stack, pid, address, code_in(mails(manager, address)[0]))
    assert signed_in.status_code == 200, signed_in.text
    return str(signed_in.cookies[COOKIE])


def world(stack: Stack) -> World:
    """Ada and Bob in the program "sonne" with a reward and a till."""
    manager, pid = program_with_coffee(stack)
    issued = issue_till(manager, pid)
    bob_cookie = member_signed_in(stack, manager, pid, BOB)
    ada_cookie = member_signed_in(stack, manager, pid, ADA)
    rows = stack.read_db(
        lambda conn: conn.execute(
            select(members.c.id, members.c.email, members.c.card_number).order_by(members.c.id)
        )
    ).all()
    ids = {row.email: (row.id, row.card_number) for row in rows}
    ada, card = ids[ADA_EMAIL]
    bob, _ = ids["bob@example.de"]
    return World(
        stack, manager, Till(stack, issued["api_key"]), pid, ada, card, ada_cookie, bob, bob_cookie
    )


def shop_as_ada(w: World) -> dict[str, Any]:
    """A sale, a voucher from the wallet, a sale with a reward, a return and an open sale with
    a reward held: Ada's balance afterwards."""
    stack, till, now = w.stack, w.till, w.stack.clock.now.isoformat()
    till.ok(
        "/transactions/T-1/complete",
        {"occurred_at": now, "member": {"value": w.card}, "order": order(line("1", 100_000))},
    )
    w.as_member(w.ada_cookie)
    voucher = stack.client.post(
        f"{WALLET}/{w.pid}/rewards/kaffee/redeem", json={}, headers={"Idempotency-Key": "v-1"}
    )
    assert voucher.status_code == 201, voucher.text
    basket = order(line("1", 3_000), line("2", 2_000, sku="KUCHEN"))
    till.ok(
        "/transactions/T-2/redemptions",
        {
            "member": {"value": wallet_code(stack, w.ada)},
            "redemption": {"reward_code": "kaffee"},
            "order": basket,
        },
        201,
        **{"Idempotency-Key": "r-1"},
    )
    till.ok(
        "/transactions/T-2/complete",
        {"occurred_at": now, "member": {"value": w.card}, "order": basket},
    )
    till.ok(
        "/transactions/T-2/refunds",
        {"refund_id": "RF-1", "lines": [{"line_id": "2", "quantity": 1}]},
        201,
    )
    till.ok(
        "/transactions/T-3/redemptions",
        {"member": {"value": w.card}, "redemption": {"reward_code": "kaffee"}},
        201,
        **{"Idempotency-Key": "r-2"},
    )
    put = stack.client.put(f"{WALLET}/{w.pid}/consents/marketing", json={"granted": True})
    assert put.status_code == 200
    invitation = stack.client.get(f"{WALLET}/{w.pid}/invitation")
    assert invitation.status_code == 200, invitation.text
    answered = stack.client.post(
        f"{WALLET}/{w.pid}/feedback", json={"score": 9, "comment": "Ada mag den Kuchen"}
    )
    assert answered.status_code == 204, answered.text
    bob_earned = stack.shop.ok(f"/programs/{w.pid}/members/{w.bob}/earn", {"points": 77})
    assert bob_earned["balance"]["available"] == 77
    balance: dict[str, Any] = stack.shop.read(f"/programs/{w.pid}/members/{w.ada}/balance")
    return {
        "voucher": voucher.json()["voucher_code"],
        "invite_code": invitation.json()["code"],
        **balance,
    }


def unzip_csv(content: bytes) -> dict[str, list[dict[str, str]]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        return {
            name: list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
            for name in archive.namelist()
        }


def test_export_then_erase(any_stack: Stack) -> None:
    stack = any_stack
    w = world(stack)
    before = shop_as_ada(w)
    assert (before["posted"], before["held"]) == (870, 100)
    w.as_member(w.ada_cookie)

    # -- the download, as JSON ------------------------------------------------------------
    response = stack.client.get(f"{WALLET}/{w.pid}/export.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="loyalty-member-{w.ada}-' in disposition
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    profile = data["profile"]
    assert (profile["member_id"], profile["display_name"], profile["email"]) == (
        w.ada,
        "Ada Lovelace",
        ADA_EMAIL,
    )
    assert (profile["phone"], profile["locale"], profile["card_number"]) == (
        "+4915123456789",
        "en",
        w.card,
    )
    assert profile["email_verified_at"] is not None
    (account,) = data["accounts"]
    assert (account["program_id"], account["posted"], account["held"]) == (w.pid, 870, 100)
    assert sum(lot["remaining"] for lot in data["lots"]) == 870
    kinds = {journal["kind"] for journal in data["journals"]}
    assert {"earn", "redeem", "hold", "capture", "refund"} <= kinds
    assert sum(entry["amount"] for entry in data["entries"]) == 870
    assert sum(j["delta"] for j in data["journals"]) == 870
    assert len(data["orders"]) == 2
    lines = {(o["order_id"], ln["sku"]) for o in data["orders"] for ln in o["lines"]}
    assert len(lines) == 3
    assert any(ln["sku"] == "KUCHEN" for o in data["orders"] for ln in o["lines"])
    (returned,) = data["returns"]
    assert returned["quantities"]
    assert len(data["redemptions"]) == 3
    assert before["voucher"] in {r["voucher_code"] for r in data["redemptions"]}
    assert [t["transaction_id"] for t in data["pos_transactions"]] == ["T-1", "T-2", "T-3"]
    assert [(c["kind"], c["granted"]) for c in data["consents"]] == [
        ("terms", True),
        ("marketing", False),
        ("marketing", True),
    ]
    assert len(data["sessions"]) == 1
    assert [i["code"] for i in data["invite_codes"]] == [before["invite_code"]]
    assert [(f["score"], f["comment"]) for f in data["feedback"]] == [(9, "Ada mag den Kuchen")]
    assert "token_hash" not in data["sessions"][0]
    (mail,) = data["mail"]
    sent = mails(w.manager, ADA_EMAIL)[0]
    code = code_in(sent)
    # What and when, not the text; the code in the subject is blanked out.
    assert mail["kind"] == "sign_in"
    assert mail["subject"] == sent["subject"].replace(code, "••••••")
    text = response.text
    assert code not in text
    assert "body_text" not in text
    assert "code_hash" not in text
    assert "Bob" not in text
    assert "bob@example.de" not in text

    # -- the same, as a ZIP of CSV files --------------------------------------------------
    archive = stack.client.get(f"{WALLET}/{w.pid}/export.csv")
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    assert archive.headers["content-disposition"].endswith('-csv.zip"')
    files = unzip_csv(archive.content)
    assert {"member.csv", "journals.csv", "orders.csv", "order_lines.csv", "mail.csv"} <= set(files)
    (member_row,) = files["member.csv"]
    assert (member_row["display_name"], member_row["email"]) == ("Ada Lovelace", ADA_EMAIL)
    assert len(files["journals.csv"]) == len(data["journals"])
    assert len(files["order_lines.csv"]) == 3
    assert len(files["redemptions.csv"]) == 3
    assert files["feedback.csv"][0]["comment"] == "Ada mag den Kuchen"
    assert files["sessions.csv"][0]["revoked_at"] == ""
    # Empty sections still have their header row.
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.read("tier_changes.csv").decode("utf-8-sig").startswith("program_id,")

    # -- erasure ----------------------------------------------------------------------------
    journals_before = stack.read_db(
        lambda conn: conn.execute(select(journals.c.id, journals.c.kind, journals.c.delta))
    ).all()
    consents_before = stack.read_db(
        lambda conn: conn.scalar(select(func.count()).select_from(member_consents))
    )
    assert_problem(
        stack.client.post(f"{WALLET}/{w.pid}/erase", json={"confirm": "ja"}),
        400,
        "erasure_not_confirmed",
    )
    assert_problem(stack.client.post(f"{WALLET}/{w.pid}/erase", json={}), 400, "validation_failed")
    forged = stack.client.post(
        f"{WALLET}/{w.pid}/erase",
        json={"confirm": "DELETE"},
        headers={"Origin": "https://evil.example"},
    )
    assert_problem(forged, 403, "forbidden")
    assert stack.client.get(f"{WALLET}/{w.pid}/profile").json()["display_name"] == "Ada Lovelace"

    erased = stack.client.post(f"{WALLET}/{w.pid}/erase", json={"confirm": "LÖSCHEN"})
    assert erased.status_code == 200, erased.text
    assert f"{COOKIE}=" in erased.headers["set-cookie"]
    answer = erased.json()
    assert (answer["member_id"], answer["points_forfeited"], answer["holds_released"]) == (
        w.ada,
        870,
        1,
    )
    assert (answer["sessions_ended"], answer["mails_deleted"]) == (1, 1)
    w.as_member(w.ada_cookie)
    assert stack.client.get(f"{WALLET}/{w.pid}/session").status_code == 401
    assert stack.client.get(f"{WALLET}/{w.pid}/export.json").status_code == 401

    # Personal data gone from every table.
    row = stack.read_db(
        lambda conn: conn.execute(select(members).where(members.c.id == w.ada))
    ).one()
    assert row.display_name == ERASED_NAME
    assert (row.email, row.phone, row.locale, row.card_number, row.segments) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (row.email_verified_at, row.card_secret_version) == (None, 1)
    feedback = stack.read_db(
        lambda conn: conn.execute(
            select(feedback_answers.c.score, feedback_answers.c.comment).where(
                feedback_answers.c.member_id == w.ada
            )
        )
    ).all()
    assert [tuple(f) for f in feedback] == [(9, None)]
    codes = stack.read_db(
        lambda conn: conn.scalar(
            select(func.count()).select_from(invite_codes).where(invite_codes.c.member_id == w.ada)
        )
    )
    assert codes == 0
    assert row.deleted_at is not None
    assert [m for m in mails(w.manager) if m["to_address"] == ADA_EMAIL] == []
    left = stack.read_db(
        lambda conn: conn.execute(
            select(
                select(func.count())
                .select_from(mail_outbox)
                .where(func.lower(mail_outbox.c.to_address) == ADA_EMAIL)
                .scalar_subquery(),
                select(func.count())
                .select_from(member_sessions)
                .where(member_sessions.c.member_id == w.ada, member_sessions.c.revoked_at.is_(None))
                .scalar_subquery(),
                select(func.count())
                .select_from(sign_in_codes)
                .where(sign_in_codes.c.member_id == w.ada, sign_in_codes.c.used_at.is_(None))
                .scalar_subquery(),
            )
        )
    ).one()
    assert tuple(left) == (0, 0, 0)
    # The audit log says what happened, without personal data.
    audit = stack.read_db(
        lambda conn: conn.execute(select(audit_log).where(audit_log.c.action == "member.erase"))
    ).one()
    assert (audit.actor, audit.entity_id, audit.staff_id) == ("system", str(w.ada), None)
    assert "ada" not in str(audit.after).lower()

    # Sign-in with their address answers as for an unknown one, and sends nothing.
    sent_before = len(mails(w.manager))
    asked = stack.client.post(f"{WALLET}/{w.pid}/sign-in/code", json={"email": ADA["email"]})
    unknown = stack.client.post(
        f"{WALLET}/{w.pid}/sign-in/code", json={"email": "nobody@example.de"}
    )
    assert (asked.status_code, asked.json()) == (unknown.status_code, unknown.json())
    assert len(mails(w.manager)) == sent_before
    assert_problem(sign_in(stack, w.pid, ADA_EMAIL, "123456"), 401, "sign_in_code_invalid")

    # The till no longer finds them: not by card, email, phone or wallet code (old or new).
    secret_now = card_secret(stack.app.state.settings.secret_key.encode(), w.ada, 1)
    for scan in (
        w.card,
        wallet_code(stack, w.ada),
        rotating_code(w.ada, secret_now, stack.clock.now),
        ADA_EMAIL,
        "+4915123456789",
    ):
        assert_problem(w.till.post("/identify", {"member": {"value": scan}}), 404, "card_not_found")

    # The ledger: every earlier journal is still there, unchanged; the balance went to breakage
    # by one expire journal; the hold was released; verify finds nothing.
    after = stack.read_db(
        lambda conn: conn.execute(select(journals.c.id, journals.c.kind, journals.c.delta))
    ).all()
    assert set(journals_before) <= set(after)
    added = sorted((j.kind, j.delta) for j in set(after) - set(journals_before))
    assert added == [("expire", -870), ("release", 0)]
    assert stack.verify() == []
    balance = stack.shop.read(f"/programs/{w.pid}/members/{w.ada}/balance")
    assert (balance["posted"], balance["held"]) == (0, 0)
    # The open sale's redemption ended released with its unit back: the till can still void it.
    redemptions = stack.read_db(
        lambda conn: conn.execute(
            select(reward_redemptions.c.reference, reward_redemptions.c.status).order_by(
                reward_redemptions.c.id
            )
        )
    ).all()
    assert [tuple(r) for r in redemptions][-1] == ("pos:T-3", "released")
    units = stack.read_db(lambda conn: conn.scalar(select(rewards.c.units_redeemed)))
    assert units == 2
    voided = w.till.ok("/transactions/T-3/void", {})
    assert (voided["holds_released"], voided["balance"]["available"]) == (0, 0)
    assert stack.verify() == []
    consents_after = stack.read_db(
        lambda conn: conn.scalar(select(func.count()).select_from(member_consents))
    )
    assert consents_after == consents_before

    # Bob is untouched: his profile, his session, his points.
    w.as_member(w.bob_cookie)
    bob = stack.client.get(f"{WALLET}/{w.pid}/profile").json()
    assert (bob["display_name"], bob["email"], bob["phone"]) == (
        "Bob Builder",
        "bob@example.de",
        "+491601234567",
    )
    bob_balance = stack.shop.read(f"/programs/{w.pid}/members/{w.bob}/balance")
    assert bob_balance["available"] == 77
    assert w.till.ok("/identify", {"member": {"value": "bob@example.de"}})["member_id"] == w.bob


def test_erasing_twice_answers_the_same_and_changes_nothing(stack: Stack) -> None:
    w = world(stack)
    stack.shop.ok(f"/programs/{w.pid}/members/{w.ada}/earn", {"points": 40})
    privacy = MemberPrivacy(stack.engine)
    merchant = stack.shop.merchant_id
    at = stack.clock.now
    first: Erased = stack.run(partial(privacy.erase, w.ada, merchant, at))
    assert first.points_forfeited == 40
    snapshot = stack.snapshot()
    later = datetime(2030, 1, 1, tzinfo=at.tzinfo)
    again: Erased = stack.run(partial(privacy.erase, w.ada, merchant, later))
    assert again == first
    assert stack.snapshot() == snapshot
    assert stack.verify() == []
    # Another merchant's id finds nobody.
    with pytest.raises(DomainError) as refused:
        stack.run(partial(privacy.erase, w.bob, stack.rival.merchant_id, at))
    assert refused.value.code is ErrorCode.MEMBER_NOT_FOUND


def test_members_see_only_themselves(stack: Stack) -> None:
    w = world(stack)
    stack.shop.ok(f"/programs/{w.pid}/members/{w.ada}/earn", {"points": 500})
    w.as_member(w.bob_cookie)
    profile = stack.client.get(f"{WALLET}/{w.pid}/profile").json()
    assert (profile["member_id"], profile["display_name"]) == (w.bob, "Bob Builder")
    export = stack.client.get(f"{WALLET}/{w.pid}/export.json").json()
    assert export["profile"]["member_id"] == w.bob
    assert export["accounts"][0]["posted"] == 0
    assert export["journals"] == []
    assert "Ada" not in stack.client.get(f"{WALLET}/{w.pid}/export.json").text
    assert (
        "Ada" not in unzip_csv(stack.client.get(f"{WALLET}/{w.pid}/export.csv").content).__repr__()
    )
    # Bob's session is for this program only; without a session nothing answers.
    assert stack.client.get(f"{WALLET}/{w.pid + 1}/profile").status_code in {401, 404}
    stack.client.cookies.clear()
    for path in ("profile", "export.json", "export.csv"):
        assert stack.client.get(f"{WALLET}/{w.pid}/{path}").status_code == 401
    assert (
        stack.client.post(f"{WALLET}/{w.pid}/erase", json={"confirm": "DELETE"}).status_code == 401
    )
    # Ada is still there.
    w.as_member(w.ada_cookie)
    assert stack.client.get(f"{WALLET}/{w.pid}/profile").json()["member_id"] == w.ada


def test_the_member_changes_name_phone_and_language(stack: Stack) -> None:
    w = world(stack)
    w.as_member(w.ada_cookie)
    path = f"{WALLET}/{w.pid}/profile"
    changed = stack.client.patch(path, json={"display_name": " Ada King ", "phone": "0171 9876543"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["display_name"], body["phone"], body["locale"]) == (
        "Ada King",
        "+491719876543",
        "en",
    )
    cleared = stack.client.patch(path, json={"phone": None, "locale": "de"}).json()
    assert (cleared["display_name"], cleared["phone"], cleared["locale"]) == (
        "Ada King",
        None,
        "de",
    )
    assert stack.client.get(f"{WALLET}/{w.pid}/session").json()["display_name"] == "Ada King"
    assert_problem(stack.client.patch(path, json={"phone": "12"}), 400, "invalid_phone")
    assert_problem(
        stack.client.patch(path, json={"email": "new@example.de"}), 400, "validation_failed"
    )
    assert_problem(stack.client.patch(path, json={"locale": "fr"}), 400, "validation_failed")
    assert_problem(stack.client.patch(path, json={"display_name": ""}), 400, "validation_failed")
    assert stack.client.get(path).json()["email"] == ADA_EMAIL
