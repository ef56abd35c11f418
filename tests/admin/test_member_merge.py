"""Merging two member records of one person: points and lots (with their expiry dates) move by
ledger transfers, the ledger stays verifiable, the merged-away record is nobody any more (till,
wallet sign-in and sessions), every refusal changes nothing, and both members' audit trails
show the merge."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import mail_outbox, member_merges, member_sessions
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Caller
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.member_cards import identify
from loyalty.services.member_sign_in import session_digest
from tests.admin.conftest import AdminStack, StaffSession
from tests.admin.member_support import open_shop
from tests.support.problems import assert_problem


def _merge(session: StaffSession, source: int, target: int, reason: str = "Same person") -> Any:
    return session.post(f"/members/{source}/merge", {"into_member_id": target, "reason": reason})


def _identify(admin: AdminStack, value: str) -> int | ErrorCode:
    key = admin.stack.app.state.settings.secret_key.encode()
    caller = Caller(client_id="till", merchant_id=admin.shop_id)

    async def work(conn: AsyncConnection) -> int:
        return (await identify(conn, caller, value, admin.clock(), key)).member_id

    async def go() -> int | ErrorCode:
        try:
            return await in_transaction(admin.stack.engine, work, read_only=True)
        except DomainError as error:
            return error.code

    return admin.stack.run(go)


def test_merging_moves_points_and_lots_with_their_expiry(any_admin: AdminStack) -> None:
    cafe = open_shop(any_admin)  # points expire 30 days after they are earned
    bakery = open_shop(any_admin, expiry_kind="never", expiry_value=0)
    old = cafe.member("Anna Alt", email="anna.alt@example.com")
    new = cafe.member("Anna Neu", email="anna@example.com")
    cafe.earn(old, 100)
    any_admin.clock.advance(days=5)
    cafe.earn(old, 50)
    cafe.earn(new, 20)
    bakery.enroll(old)
    bakery.earn(old, 70)  # the target has no account in the bakery yet
    old_lots = cafe.lots_of(old)
    assert [points for points, _ in old_lots] == [100, 50]
    new_lots_before = cafe.lots_of(new)
    support = any_admin.session("support")

    response = _merge(support, old, new, "One person, two cards")
    assert response.status_code == 200, response.text
    merge = response.json()
    assert (merge["source_member_id"], merge["target_member_id"]) == (old, new)
    moved = {item["program_id"]: item for item in merge["moved"]}
    assert moved[cafe.program_id]["points"] == 150
    assert moved[bakery.program_id]["points"] == 70
    assert all(item["journal_id"] for item in merge["moved"])

    # Balances: everything is on the target now.
    assert (cafe.available(old), cafe.available(new)) == (0, 170)
    assert (bakery.available(old), bakery.available(new)) == (0, 70)
    # One lot per lot drawn, each keeping its expiry date (a merge never extends a point's life).
    assert sorted(cafe.lots_of(new), key=str) == sorted(new_lots_before + old_lots, key=str)
    assert cafe.lots_of(old) == []
    assert bakery.lots_of(new) == [(70, None)]
    # The journals tell the story on both sides.
    for member, delta in ((old, -150), (new, 150)):
        history = cafe.api.read(f"/programs/{cafe.program_id}/members/{member}/history")
        assert (history["items"][0]["kind"], history["items"][0]["delta"]) == ("transfer", delta)
    assert any_admin.stack.verify() == []

    row = cafe.member_row(old)
    assert row["merged_into_id"] == new
    # The contact data stays on the merged record (for the audit), the target keeps its own.
    assert (row["email"], row["display_name"]) == ("anna.alt@example.com", "Anna Alt")
    assert cafe.member_row(new)["email"] == "anna@example.com"

    def merge_rows(conn: AsyncConnection) -> Any:
        return conn.execute(select(member_merges))

    async def read(conn: AsyncConnection) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await merge_rows(conn)]

    (stored,) = any_admin.stack.read_db(read)
    assert (stored["source_member_id"], stored["target_member_id"]) == (old, new)
    assert stored["staff_id"] == support.staff_id
    assert stored["reason"] == "One person, two cards"
    audit = {
        (row["entity_id"], row["action"])
        for row in any_admin.audit_rows()
        if row["entity"] == "member"
    }
    assert {(str(old), "member.merge"), (str(new), "member.merge_in")} <= audit

    # The moved points expire on the target when their time comes: the first lot's 100.
    due = old_lots[0][1] + timedelta(seconds=1)
    any_admin.stack.run(lambda: run_expiry_sweep(any_admin.stack.engine, at=due))
    assert cafe.available(new) == 70
    assert any_admin.stack.verify() == []


def test_the_merged_record_is_nobody_at_the_till_or_in_the_wallet(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    old = shop.member("Ben", email="ben@example.com", phone="+4915112345678")
    new = shop.member("Ben B.", email="ben.b@example.com")
    old_card = shop.member_row(old)["card_number"]
    new_card = shop.member_row(new)["card_number"]
    assert _identify(any_admin, old_card) == old
    assert _identify(any_admin, "BEN@example.com") == old
    assert _identify(any_admin, "+49 151 12345678") == old

    # A live wallet session of the old record.
    token = secrets.token_urlsafe(24)
    now = any_admin.clock()

    async def add_session(conn: AsyncConnection) -> None:
        await conn.execute(
            member_sessions.insert().values(
                token_hash=session_digest(token),
                member_id=old,
                program_id=shop.program_id,
                created_at=now,
                expires_at=now + timedelta(days=1),
                last_seen_at=now,
            )
        )

    any_admin.stack.run(lambda: in_transaction(any_admin.stack.engine, add_session))
    sign_in = any_admin.stack.app.state.member_sign_in
    assert any_admin.stack.run(sign_in.authenticate, token) is not None

    merged = _merge(any_admin.session("owner"), old, new).json()
    assert merged["target_member_id"] == new

    for scan in (old_card, "ben@example.com", "+4915112345678"):
        assert _identify(any_admin, scan) == ErrorCode.CARD_NOT_FOUND, scan
    assert _identify(any_admin, new_card) == new
    assert any_admin.stack.run(sign_in.authenticate, token) is None

    # Asking for a sign-in code with the old address mails nothing.
    async def outbox(conn: AsyncConnection) -> int:
        return len((await conn.execute(select(mail_outbox.c.id))).all())

    before = any_admin.stack.read_db(outbox)
    any_admin.stack.run(
        sign_in.request_code, shop.program_id, "ben@example.com", "http://localhost/?token="
    )
    assert any_admin.stack.read_db(outbox) == before
    any_admin.stack.run(
        sign_in.request_code, shop.program_id, "ben.b@example.com", "http://localhost/?token="
    )
    assert any_admin.stack.read_db(outbox) == before + 1

    # Searching the old card number leads support to the record that holds the points now.
    found = any_admin.session("support").read("/members", {"q": old_card})["items"]
    assert [(hit["member_id"], hit["merged_into_id"]) for hit in found] == [(old, new)]


def test_refusals_change_nothing(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    old = shop.member("Clara")
    new = shop.member("Clara C.")
    shop.earn(old, 500)
    shop.hold(old, 100)  # an open sale at a till
    support = any_admin.session("support")
    manager = any_admin.session("program_manager")
    rival = any_admin.session("owner", merchant_id=any_admin.rival_id)
    before = any_admin.stack.snapshot()

    refused = assert_problem(_merge(support, old, new), 409, "member_has_pending_holds")
    assert (refused["program_id"], refused["held"]) == (shop.program_id, 100)
    assert_problem(_merge(support, old, old), 400, "merge_into_itself")
    assert_problem(_merge(support, old, 999_999), 404, "member_not_found")
    assert_problem(_merge(manager, old, new), 403, "forbidden")
    assert_problem(
        support.post(f"/members/{old}/merge", {"into_member_id": new, "reason": " "}),
        400,
        "reason_required",
    )
    assert_problem(_merge(rival, old, new), 404, "member_not_found")
    assert any_admin.stack.snapshot() == before

    # Once the hold's time is up it is settled on the way, and the merge goes through.
    any_admin.clock.advance(hours=1)
    assert _merge(support, old, new).status_code == 200
    assert shop.available(new) == 500
    # Merged records take part in nothing any more.
    assert_problem(_merge(support, old, new), 409, "member_merged")
    assert_problem(_merge(support, new, old), 409, "member_merged")
    third = shop.member("Clara Drei")
    assert_problem(_merge(support, third, old), 409, "member_merged")
    assert_problem(
        support.post(
            f"/programs/{shop.program_id}/members/{old}/adjustments",
            {"points": 10, "reason": "Goodwill"},
        ),
        409,
        "member_merged",
    )
    assert any_admin.stack.verify() == []


def test_erased_members_cannot_be_merged(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    gone = shop.member("Dora")
    kept = shop.member("Dora D.")
    privacy = any_admin.stack.app.state.member_privacy
    any_admin.stack.run(privacy.erase, gone, any_admin.shop_id, any_admin.clock())
    support = any_admin.session("support")
    assert_problem(_merge(support, gone, kept), 409, "member_erased")
    assert_problem(_merge(support, kept, gone), 409, "member_erased")


@pytest.mark.parametrize("points", [0, 1])
def test_a_member_without_points_merges_too(admin: AdminStack, points: int) -> None:
    shop = open_shop(admin)
    old = shop.member("Emil")
    new = shop.member("Emil E.")
    if points:
        shop.earn(old, points)
    merged = _merge(admin.session("owner"), old, new).json()
    assert merged["moved"][0]["points"] == points
    assert (merged["moved"][0]["journal_id"] is None) == (points == 0)
    assert shop.available(new) == points
    assert admin.stack.verify() == []


def test_the_target_may_be_a_member_of_other_programs_only(admin: AdminStack) -> None:
    first = open_shop(admin)
    second = open_shop(admin)
    old = first.member("Fritz")
    new = second.member("Fritz F.")
    first.earn(old, 40)
    assert _merge(admin.session("support"), old, new).status_code == 200
    assert first.available(new) == 40
    assert second.available(new) == 0
