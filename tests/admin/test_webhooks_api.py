"""The webhooks admin API: who may manage endpoints and who may read the log, the secret shown
once, validation with clear problem codes, merchants kept apart, test messages, rotation,
disabling, the paged delivery log and replay (against a real receiver on loopback)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import webhook_endpoints
from loyalty.domain import webhooks as wh
from tests.admin.conftest import AdminStack, StaffSession
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

ALL_EVENTS = [str(t) for t in wh.SUBSCRIBABLE]


@pytest.fixture
def receiver(any_admin: AdminStack) -> Iterator[WebhookReceiver]:
    with running_receiver(any_admin.clock) as running:
        yield running


@pytest.fixture
def sqlite_receiver(admin: AdminStack) -> Iterator[WebhookReceiver]:
    with running_receiver(admin.clock) as running:
        yield running


def _create(
    session: StaffSession, receiver: WebhookReceiver, path: str = "/hook", **body: Any
) -> dict[str, Any]:
    payload = {"url": receiver.url(path), "events": ALL_EVENTS, "description": "CRM", **body}
    response = session.post("/webhooks", payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _program_and_member(stack: AdminStack) -> tuple[int, int]:
    program: int = stack.stack.create_program()["program_id"]
    return program, stack.stack.enroll(program, "Ann")


def _earn(stack: AdminStack, program: int, member: int, points: int) -> dict[str, Any]:
    return stack.stack.shop.ok(f"/programs/{program}/members/{member}/earn", {"points": points})


def _dispatch(stack: AdminStack) -> Any:
    return stack.stack.run(stack.stack.app.state.webhook_dispatcher.run_once)


def test_managers_manage_support_reads_cashiers_see_nothing(
    any_admin: AdminStack, receiver: WebhookReceiver
) -> None:
    owner = any_admin.session("owner")
    manager = any_admin.session("program_manager")
    support = any_admin.session("support")
    cashier = any_admin.session("cashier")
    mine = _create(owner, receiver)
    theirs = _create(manager, receiver, "/other", events=["tier.changed"])
    endpoint_id = mine["endpoint"]["endpoint_id"]

    listed = support.read("/webhooks")
    assert [e["endpoint_id"] for e in listed] == [
        endpoint_id,
        theirs["endpoint"]["endpoint_id"],
    ]
    assert all("secret" not in e for e in listed)
    assert support.read(f"/webhooks/{endpoint_id}")["endpoint"]["url"] == receiver.url("/hook")
    assert support.read(f"/webhooks/{endpoint_id}/deliveries")["deliveries"] == []
    refused = [
        support.post("/webhooks", {"url": receiver.url(), "events": ALL_EVENTS}),
        support.patch(f"/webhooks/{endpoint_id}", {"description": "x"}),
        support.post(f"/webhooks/{endpoint_id}/secret"),
        support.post(f"/webhooks/{endpoint_id}/disable"),
        support.post(f"/webhooks/{endpoint_id}/test"),
        support.post(f"/webhooks/{endpoint_id}/deliveries/1/replay"),
        cashier.get("/webhooks"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert len(support.read("/webhooks")) == 2  # nothing changed


def test_the_secret_is_shown_once_and_stored_sealed(
    any_admin: AdminStack, receiver: WebhookReceiver
) -> None:
    owner = any_admin.session("owner")
    created = _create(owner, receiver)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(wh.secret_key(secret)) == 32
    endpoint_id = created["endpoint"]["endpoint_id"]
    assert created["endpoint"]["events"] == ALL_EVENTS
    assert created["endpoint"]["program_id"] is None
    detail = owner.read(f"/webhooks/{endpoint_id}")
    assert secret not in str(detail)

    async def stored(conn: AsyncConnection) -> str:
        value = await conn.scalar(
            select(webhook_endpoints.c.secret_sealed).where(webhook_endpoints.c.id == endpoint_id)
        )
        return str(value)

    sealed = any_admin.stack.read_db(stored)
    assert secret not in sealed
    assert any_admin.stack.app.state.webhooks._box.open(sealed) == secret
    audit = [row for row in any_admin.audit_rows() if row["entity"] == "webhook_endpoint"]
    assert [row["action"] for row in audit] == ["webhook_endpoint.create"]
    assert secret not in str(audit)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "http://hooks.example.com/x"}, 400, "invalid_webhook_url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, 400, "invalid_webhook_url"),
        ({"url": "https://hooks.example.com/" + "a" * 2000}, 400, "validation_failed"),
        ({"events": ["points.stolen"]}, 400, "unknown_webhook_event"),
        ({"events": ["webhook.test"]}, 400, "unknown_webhook_event"),
        ({"events": []}, 400, "validation_failed"),
        ({"description": "x" * 201}, 400, "validation_failed"),
        ({"program_id": 999}, 404, "program_not_found"),
        ({"secret": "whsec_mine"}, 400, "validation_failed"),
    ],
)
def test_bad_endpoints_are_refused_with_clear_codes(
    admin: AdminStack,
    sqlite_receiver: WebhookReceiver,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    owner = admin.session("owner")
    payload = {"url": sqlite_receiver.url(), "events": ["points.earned"], **body}
    response = owner.post("/webhooks", payload)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert owner.read("/webhooks") == []


def test_production_wants_public_https(admin: AdminStack) -> None:
    owner = admin.session("owner")
    webhooks = admin.stack.app.state.webhooks
    webhooks._production = True
    refused = owner.post("/webhooks", {"url": "http://127.0.0.1:9/x", "events": ALL_EVENTS})
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_webhook_url")
    accepted = owner.post("/webhooks", {"url": "https://crm.example.com/in", "events": ALL_EVENTS})
    assert accepted.status_code == 201, accepted.text


def test_another_merchant_sees_none_of_it(any_admin: AdminStack, receiver: WebhookReceiver) -> None:
    owner = any_admin.session("owner")
    rival = any_admin.session("owner", merchant_id=any_admin.rival_id)
    rival_program = any_admin.stack.create_program(any_admin.stack.rival)["program_id"]
    endpoint_id = _create(owner, receiver)["endpoint"]["endpoint_id"]
    assert rival.read("/webhooks") == []
    for response in (
        rival.get(f"/webhooks/{endpoint_id}"),
        rival.get(f"/webhooks/{endpoint_id}/deliveries"),
        rival.patch(f"/webhooks/{endpoint_id}", {"description": "mine now"}),
        rival.post(f"/webhooks/{endpoint_id}/disable"),
        rival.post(f"/webhooks/{endpoint_id}/secret"),
        rival.post(f"/webhooks/{endpoint_id}/test"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "webhook_endpoint_not_found"
    response = owner.post(
        "/webhooks",
        {"url": receiver.url(), "events": ALL_EVENTS, "program_id": rival_program},
    )
    assert (response.status_code, response.json()["code"]) == (404, "program_not_found")
    assert receiver.received == []


def test_change_test_rotate_disable_enable(
    any_admin: AdminStack, receiver: WebhookReceiver
) -> None:
    owner = any_admin.session("program_manager")
    created = _create(owner, receiver, "/first")
    endpoint_id = created["endpoint"]["endpoint_id"]

    changed = owner.patch(
        f"/webhooks/{endpoint_id}",
        {"url": receiver.url("/second"), "events": ["tier.changed", "points.earned"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["points.earned", "tier.changed"]
    assert changed.json()["description"] == "CRM"

    tested = owner.post(f"/webhooks/{endpoint_id}/test")
    assert tested.status_code == 200, tested.text
    delivery = tested.json()
    assert (delivery["status"], delivery["event_type"], delivery["attempts"]) == (
        "delivered",
        "webhook.test",
        1,
    )
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    (message,) = receiver.received
    assert message.path == "/second"
    assert message.event_id == delivery["event_id"]
    assert message.message["type"] == "webhook.test"
    wh.verify(created["secret"], message.headers, message.body, message.at)

    rotated = owner.post(f"/webhooks/{endpoint_id}/secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    owner.post(f"/webhooks/{endpoint_id}/test")
    latest = receiver.received[-1]
    wh.verify(new_secret, latest.headers, latest.body, latest.at)
    with pytest.raises(Exception, match="signature"):
        wh.verify(created["secret"], latest.headers, latest.body, latest.at)

    disabled = owner.post(f"/webhooks/{endpoint_id}/disable")
    assert disabled.json()["disabled_at"] is not None
    refused = owner.post(f"/webhooks/{endpoint_id}/test")
    assert (refused.status_code, refused.json()["code"]) == (409, "webhook_endpoint_disabled")
    program, member = _program_and_member(any_admin)
    _earn(any_admin, program, member, 5)
    _dispatch(any_admin)
    assert len(receiver.received) == 2  # a disabled endpoint gets nothing
    enabled = owner.post(f"/webhooks/{endpoint_id}/enable")
    assert enabled.json()["disabled_at"] is None
    _earn(any_admin, program, member, 6)
    _dispatch(any_admin)
    assert [r.message["data"].get("points") for r in receiver.received[2:]] == [6]

    actions = [
        row["action"] for row in any_admin.audit_rows() if row["entity"] == "webhook_endpoint"
    ]
    assert actions == [
        "webhook_endpoint.create",
        "webhook_endpoint.update",
        "webhook_endpoint.test",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.test",
        "webhook_endpoint.disable",
        "webhook_endpoint.enable",
    ]


def test_the_delivery_log_pages_and_a_failed_delivery_is_replayed(
    any_admin: AdminStack, receiver: WebhookReceiver
) -> None:
    owner = any_admin.session("owner")
    endpoint_id = _create(owner, receiver, events=["points.earned"])["endpoint"]["endpoint_id"]
    program, member = _program_and_member(any_admin)
    receiver.script = lambda _path, _event, _seen: 500
    for points in (1, 2, 3):
        _earn(any_admin, program, member, points)
    for _ in range(wh.MAX_ATTEMPTS):
        _dispatch(any_admin)
        any_admin.clock.advance(days=2)  # beyond any delay of the schedule, jitter included
    _dispatch(any_admin)
    assert len(receiver.received) == 3 * wh.MAX_ATTEMPTS
    owner = any_admin.login(owner.email)  # sessions end after 12 hours; 16 days went by
    support = any_admin.session("support")

    first = support.read(f"/webhooks/{endpoint_id}/deliveries", {"limit": 2})
    assert [d["payload"]["data"]["points"] for d in first["deliveries"]] == [3, 2]
    assert first["next_before_id"] is not None
    rest = support.read(
        f"/webhooks/{endpoint_id}/deliveries", {"limit": 2, "before_id": first["next_before_id"]}
    )
    assert [d["payload"]["data"]["points"] for d in rest["deliveries"]] == [1]
    assert rest["next_before_id"] is None
    failed = rest["deliveries"][0]
    assert (failed["status"], failed["attempts"]) == ("failed", wh.MAX_ATTEMPTS)
    assert len(failed["attempt_log"]) == wh.MAX_ATTEMPTS
    assert {a["status_code"] for a in failed["attempt_log"]} == {500}
    assert failed["last_error"] == "HTTP 500: receiver says no"
    listed = owner.read("/webhooks")[0]
    assert (listed["pending"], listed["failed"]) == (0, 3)
    only_failed = owner.read(f"/webhooks/{endpoint_id}/deliveries", {"status": "failed"})
    assert len(only_failed["deliveries"]) == 3

    receiver.script = lambda _path, _event, _seen: 204
    replayed = owner.post(
        f"/webhooks/{endpoint_id}/deliveries/{failed['delivery_id']}/replay", None
    )
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
    _dispatch(any_admin)
    after = owner.read(f"/webhooks/{endpoint_id}/deliveries/{failed['delivery_id']}")
    assert (after["status"], after["attempts"]) == ("delivered", 1)
    assert len(after["attempt_log"]) == wh.MAX_ATTEMPTS + 1
    # The same event id again: the receiver knows it is the same event.
    assert receiver.accepted_ids() == Counter({failed["event_id"]: 1})
    assert Counter(r.event_id for r in receiver.received)[failed["event_id"]] == (
        wh.MAX_ATTEMPTS + 1
    )
    audit = [row for row in any_admin.audit_rows() if row["action"] == "webhook_delivery.replay"]
    assert [(row["entity_id"], row["before"]["status"]) for row in audit] == [
        (str(failed["delivery_id"]), "failed")
    ]
    # A delivered one may be replayed too (a receiver lost it); another endpoint's may not.
    again = owner.post(f"/webhooks/{endpoint_id}/deliveries/{failed['delivery_id']}/replay")
    assert again.json()["status"] == "pending"
    other = _create(owner, receiver, "/other")["endpoint"]["endpoint_id"]
    wrong = owner.post(f"/webhooks/{other}/deliveries/{failed['delivery_id']}/replay")
    assert (wrong.status_code, wrong.json()["code"]) == (404, "webhook_delivery_not_found")


def test_bad_log_queries_are_refused(admin: AdminStack, sqlite_receiver: WebhookReceiver) -> None:
    owner = admin.session("owner")
    endpoint_id = _create(owner, sqlite_receiver)["endpoint"]["endpoint_id"]
    for params in ({"status": "lost"}, {"limit": 0}, {"limit": 201}, {"before_id": 0}):
        response = owner.get(f"/webhooks/{endpoint_id}/deliveries", params)
        assert response.status_code == 400, (params, response.text)
    assert owner.get("/webhooks/0").status_code in {400, 404}
    missing = owner.get("/webhooks/999")
    assert (missing.status_code, missing.json()["code"]) == (404, "webhook_endpoint_not_found")


# --- the pages ---------------------------------------------------------------------------------

#: What the webhooks pages offer only to those who may change something (admin.js and
#: webhooks.js act on these attributes; nothing else on the pages writes).
WRITE_CONTROLS = re.compile(r"data-(api|issue|webhook)=")


def test_pages_show_endpoints_and_the_log_with_controls_for_managers_only(
    admin: AdminStack, sqlite_receiver: WebhookReceiver
) -> None:
    owner = admin.session("owner")
    created = _create(owner, sqlite_receiver, description="Kundenkarte CRM")
    endpoint_id = created["endpoint"]["endpoint_id"]
    program, member = _program_and_member(admin)
    earned = _earn(admin, program, member, 7)
    _dispatch(admin)
    (delivery,) = owner.read(f"/webhooks/{endpoint_id}/deliveries")["deliveries"]

    manager = admin.page_session("program_manager")
    listing = manager.page("/admin/webhooks", {"lang": "de"})
    assert listing.status_code == 200, listing.text
    assert "Content-Security-Policy" in listing.headers
    html = listing.text
    assert "Kundenkarte CRM" in html
    assert "Punkte gutgeschrieben" in html
    assert f'data-api="POST /api/v1/admin/webhooks/{endpoint_id}/disable"' in html
    assert 'data-webhook="POST /api/v1/admin/webhooks"' in html
    assert created["secret"] not in html
    log = manager.page(f"/admin/webhooks/{endpoint_id}", {"lang": "en"}).text
    assert "Points earned" in log
    assert f"journal:{earned['journal_id']}" in log
    assert '<span class="badge good">delivered</span>' in log
    assert f"/deliveries/{delivery['delivery_id']}/replay" in log

    support = admin.page_session("support")
    for path in ("/admin/webhooks", f"/admin/webhooks/{endpoint_id}"):
        response = support.page(path, {"lang": "en"})
        assert response.status_code == 200, response.text
        assert not WRITE_CONTROLS.search(response.text), path
    assert "read-only" in support.page("/admin/webhooks", {"lang": "en"}).text
    # What the page hides, the API refuses.
    refused = support.call("POST", f"/webhooks/{endpoint_id}/disable")
    assert refused.status_code == 403
    missing = manager.page("/admin/webhooks/999")
    assert missing.status_code == 404
