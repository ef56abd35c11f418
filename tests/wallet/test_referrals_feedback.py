"""Referrals and the Net Promoter question through the wallet: the invited member's first
purchase earns both the bonus once (not when the two share a phone number); the question comes
after a purchase, at most once per interval, and its answers make the program's score."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from loyalty.db.tables import mail_outbox, members, referrals
from loyalty.services.feedback import Feedback, net_promoter_score
from tests.app.conftest import Stack
from tests.support.problems import assert_problem

from .test_sign_in_api import WALLET, code_in, issue_till, program


def join(stack: Stack, pid: int, name: str, email: str, invite: str | None = None) -> int:
    body: dict[str, Any] = {"display_name": name, "email": email, "terms_accepted": True}
    if invite:
        body["invite"] = invite
    assert stack.client.post(f"{WALLET}/{pid}/enrollment", json=body).status_code == 202
    return int(
        stack.read_db(
            lambda conn: conn.scalar(select(members.c.id).where(members.c.email == email))
        )
    )


def signed_in(stack: Stack, manager: Any, pid: int, email: str) -> None:
    """Sign in with the newest code mailed to ``email`` (read from the outbox table: the
    manager's own session may have ended when the test moves the clock on)."""
    body = stack.read_db(
        lambda conn: conn.scalar(
            select(mail_outbox.c.body_text)
            .where(mail_outbox.c.to_address == email)
            .order_by(mail_outbox.c.id.desc())
            .limit(1)
        )
    )
    del manager
    response = stack.client.post(
        f"{WALLET}/{pid}/sign-in", json={"email": email, "code": code_in({"body_text": body})}
    )
    assert response.status_code == 200, response.text


def till_of(manager: Any, pid: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_till(manager, pid)['api_key']}"}


def buy(stack: Stack, till: dict[str, str], member_id: int, tx: str, cents: int) -> dict[str, Any]:
    card = stack.read_db(
        lambda conn: conn.scalar(select(members.c.card_number).where(members.c.id == member_id))
    )
    sale = {
        "occurred_at": stack.clock.now.isoformat(),
        "member": {"value": card},
        "order": {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "BROT", "quantity": 1, "unit_price": cents}],
        },
    }
    response = stack.client.post(f"/api/v1/pos/transactions/{tx}/complete", json=sale, headers=till)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def balance(stack: Stack, pid: int, member_id: int) -> int:
    return int(stack.shop.read(f"/programs/{pid}/members/{member_id}/balance")["available"])


def test_an_invited_first_purchase_earns_both_the_bonus_once(any_stack: Stack) -> None:
    stack = any_stack
    manager, pid = program(stack)
    manager.call("PATCH", f"/programs/{pid}", {"referral_bonus_points": 200})
    till = till_of(manager, pid)
    anna = join(stack, pid, "Anna", "anna@example.de")
    signed_in(stack, manager, pid, "anna@example.de")
    invitation = stack.client.get(f"{WALLET}/{pid}/invitation").json()
    assert invitation["link"].endswith(f"/wallet/{pid}?invite={invitation['code']}")
    assert (invitation["joined"], invitation["bonus_points"]) == (0, 200)
    # The welcome page of the link says so.
    annas_session = stack.client.cookies["loyalty_wallet"]
    stack.client.cookies.clear()
    welcome = stack.client.get(f"/wallet/{pid}?invite={invitation['code']}&lang=en")
    assert "You were invited" in welcome.text

    ben = join(stack, pid, "Ben", "ben@example.de", invite=invitation["code"])
    first = buy(stack, till, ben, "T-1", 4200)
    assert first["points_earned"] == 42
    assert first["balance"]["available"] == 42 + 200
    assert balance(stack, pid, anna) == 200
    buy(stack, till, ben, "T-2", 1000)
    assert balance(stack, pid, ben) == 42 + 200 + 10
    assert balance(stack, pid, anna) == 200

    stack.client.cookies.set("loyalty_wallet", annas_session)
    counts = stack.client.get(f"{WALLET}/{pid}/invitation").json()
    assert (counts["joined"], counts["converted"]) == (1, 1)


def test_no_bonus_when_the_two_share_a_phone_or_for_oneself(stack: Stack) -> None:
    manager, pid = program(stack)
    manager.call("PATCH", f"/programs/{pid}", {"referral_bonus_points": 200})
    till = till_of(manager, pid)
    anna = join(stack, pid, "Anna", "anna@example.de")
    signed_in(stack, manager, pid, "anna@example.de")
    code = stack.client.get(f"{WALLET}/{pid}/invitation").json()["code"]
    carl = join(stack, pid, "Carl", "carl@example.de", invite=code)

    async def same_phone(conn: Any) -> None:
        await conn.execute(update(members).values(phone="+4915123456789"))

    stack.run(lambda: _write(stack, same_phone))
    buy(stack, till, carl, "T-1", 1000)
    assert balance(stack, pid, carl) == 10
    assert balance(stack, pid, anna) == 0
    refused = stack.read_db(lambda conn: conn.scalar(select(referrals.c.refused)))
    assert refused == "shared_contact"


async def _write(stack: Stack, work: Any) -> None:
    from loyalty.db.engine import in_transaction

    await in_transaction(stack.engine, work)


def test_the_question_comes_after_a_purchase_once_per_interval(stack: Stack) -> None:
    manager, pid = program(stack)
    till = till_of(manager, pid)
    mia = join(stack, pid, "Mia", "mia@example.de")
    signed_in(stack, manager, pid, "mia@example.de")
    home = stack.client.get(f"/wallet/{pid}?lang=en")
    assert "recommend us" not in home.text  # no purchase yet
    assert_problem(
        stack.client.post(f"{WALLET}/{pid}/feedback", json={"score": 9}), 409, "feedback_not_due"
    )

    buy(stack, till, mia, "T-1", 1000)
    assert "recommend us" in stack.client.get(f"/wallet/{pid}?lang=en").text
    answered = stack.client.post(
        f"{WALLET}/{pid}/feedback", json={"score": 9, "comment": "Sehr freundlich"}
    )
    assert answered.status_code == 204
    assert "recommend us" not in stack.client.get(f"/wallet/{pid}?lang=en").text
    buy(stack, till, mia, "T-2", 1000)
    assert_problem(
        stack.client.post(f"{WALLET}/{pid}/feedback", json={"score": 3}), 409, "feedback_not_due"
    )
    stack.clock.advance(days=91)  # the 30-day session has ended too: sign in again
    stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": "mia@example.de"})
    signed_in(stack, manager, pid, "mia@example.de")
    buy(stack, till, mia, "T-3", 1000)
    assert stack.client.post(f"{WALLET}/{pid}/feedback", json={"score": 3}).status_code == 204

    feedback: Feedback = stack.app.state.feedback
    score = stack.run(
        feedback.score, pid, stack.clock.now - timedelta(days=365), stack.clock.now + timedelta(1)
    )
    assert (score.answers, score.promoters, score.detractors, score.score) == (2, 1, 1, 0.0)
    assert [c.comment for c in score.comments] == ["Sehr freundlich"]
    assert_problem(
        stack.client.post(f"{WALLET}/{pid}/feedback", json={"score": 11}), 400, "validation_failed"
    )
    del mia


def test_net_promoter_score_arithmetic() -> None:
    assert net_promoter_score([]) is None
    assert net_promoter_score([10, 9, 8, 7, 6, 0]) == 0.0
    assert net_promoter_score([10, 10, 10, 5]) == 50.0
    assert net_promoter_score([9, 7, 7]) == 33.3
