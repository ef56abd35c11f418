"""The wallet's pages: the welcome page signed out, home, rewards and activity signed in, in
German and English, each under a strict Content-Security-Policy."""

from __future__ import annotations

from tests.app.conftest import Stack
from tests.support.problems import assert_problem

from .test_sign_in_api import (
    ADA,
    WALLET,
    code_in,
    enroll,
    mails,
    program,
    program_with_coffee,
    sign_in,
)


def signed_in_member(stack: Stack) -> tuple[int, int]:
    manager, pid = program_with_coffee(stack)
    enroll(stack, pid)
    session = sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0])).json()
    return pid, int(session["member_id"])


def test_welcome_page_signed_out(stack: Stack) -> None:
    _, pid = program(stack)
    page = stack.client.get(f"/wallet/{pid}", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "Sign in" in page.text
    assert "Join" in page.text
    german = stack.client.get(f"/wallet/{pid}?lang=de")
    assert "Mitglied werden" in german.text
    assert stack.client.get(f"/wallet/{pid + 50}").status_code == 404


def test_home_shows_balance_rewards_and_activity(stack: Stack) -> None:
    pid, member = signed_in_member(stack)
    stack.shop.ok(f"/programs/{pid}/members/{member}/earn", {"points": 1250})
    home = stack.client.get(f"/wallet/{pid}?lang=de")
    assert home.status_code == 200
    assert "1.250" in home.text  # German digit grouping
    assert "Kaffee gratis" in home.text
    assert "einlösbar" in home.text
    assert "Punkte gesammelt" in home.text
    english = stack.client.get(f"/wallet/{pid}?lang=en")
    assert "1,250" in english.text
    assert "Free coffee" in english.text


def test_redeem_a_reward_for_a_voucher(stack: Stack) -> None:
    pid, member = signed_in_member(stack)
    stack.shop.ok(f"/programs/{pid}/members/{member}/earn", {"points": 300})
    path = f"{WALLET}/{pid}/rewards/kaffee/redeem"
    missing = stack.client.post(path, json={})
    assert_problem(missing, 400, "idempotency_key_missing")
    done = stack.client.post(path, json={}, headers={"Idempotency-Key": "v-1"})
    assert done.status_code == 201, done.text
    voucher = done.json()
    assert len(voucher["voucher_code"]) == 12
    assert voucher["balance"]["available"] == 200
    again = stack.client.post(path, json={}, headers={"Idempotency-Key": "v-1"})
    assert again.json()["voucher_code"] == voucher["voucher_code"]


def test_pages_need_the_members_own_session(stack: Stack) -> None:
    pid, _ = signed_in_member(stack)
    stack.client.cookies.clear()
    for page in ("history", "rewards"):
        response = stack.client.get(f"/wallet/{pid}/{page}", follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, f"/wallet/{pid}")
    assert stack.client.get(f"{WALLET}/{pid}/session").status_code == 401


def test_the_front_page_links_the_wallets_and_the_outbox(stack: Stack) -> None:
    _, pid = program(stack)
    front = stack.client.get("/")
    assert f'href="/wallet/{pid}"' in front.text
    assert 'href="/admin/outbox"' in front.text
    # The outbox is the owner's: without a staff session the link leads to the sign-in page.
    outbox = stack.client.get("/admin/outbox", headers={"Accept-Language": "en"})
    assert outbox.status_code == 200
    assert outbox.url.path == "/admin/login"
    assert outbox.url.params["next"] == "/admin/outbox"
    assert "Staff sign-in" in outbox.text
    assert "script-src 'self'" in outbox.headers["content-security-policy"]


def test_the_profile_page_shows_data_consents_download_and_deletion(stack: Stack) -> None:
    pid, member = signed_in_member(stack)
    stack.shop.ok(f"/programs/{pid}/members/{member}/earn", {"points": 300})
    page = stack.client.get(f"/wallet/{pid}/profile?lang=en")
    assert page.status_code == 200
    assert 'value="Ada Lovelace"' in page.text
    assert "ada.lovelace@example.de" in page.text
    assert "Programme terms accepted on" in page.text
    assert "Offers by email: not given" in page.text
    assert f"/api/v1/wallet/{pid}/export.json" in page.text
    assert "Your 300\u00a0pts are forfeited" in page.text
    stack.client.put(f"{WALLET}/{pid}/consents/marketing", json={"granted": True})
    german = stack.client.get(f"/wallet/{pid}/profile?lang=de")
    assert "Angebote per E-Mail: erteilt am" in german.text


def test_the_terms_and_privacy_notice_members_accept(stack: Stack) -> None:
    _, pid = program(stack)
    welcome = stack.client.get(f"/wallet/{pid}?lang=de")
    assert f'href="/wallet/{pid}/terms"' in welcome.text
    terms = stack.client.get(f"/wallet/{pid}/terms?lang=de")
    assert terms.status_code == 200
    assert "Fassung 2026-11-01" in terms.text
    assert "Verantwortlich: Bäckerei Sonnenschein" in terms.text
    assert "Art. 6 Abs. 1 lit. b DSGVO" in terms.text
    english = stack.client.get(f"/wallet/{pid}/terms?lang=en")
    assert "Controller: Bäckerei Sonnenschein" in english.text
