"""The card screen's API and pages: the rotating-code secret is given once per session, and the
codes computed with it identify the member at a till; the static number's Code 128 barcode;
the card page, the web app manifest, the icons and the service worker."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import zxingcpp
from PIL import Image
from sqlalchemy import select

from loyalty.db.tables import member_sessions, members
from loyalty.domain.cards import rotating_code, time_step, totp
from loyalty.services.member_cards import card_secret
from tests.app.conftest import Stack
from tests.support.problems import assert_problem

from .test_sign_in_api import ADA, WALLET, code_in, enroll, issue_till, mails, program, sign_in

BOB = {**ADA, "display_name": "Bob Baker", "email": "bob@example.de", "phone": None}
ADA_EMAIL = str(ADA["email"])
BOB_EMAIL = str(BOB["email"])
COOKIE = "loyalty_wallet"


def card(stack: Stack, pid: int, **headers: str) -> Any:
    return stack.client.get(f"{WALLET}/{pid}/card", headers=headers)


def secret_of(body: dict[str, Any]) -> bytes:
    text: str = body["secret"]
    return base64.b32decode(text + "=" * (-len(text) % 8))


def signed_in(stack: Stack, pid: int, email: str, manager: Any) -> tuple[int, str]:
    """Sign in with the newest mailed code to ``email``: (member id, session cookie)."""
    mail = next(m for m in mails(manager) if m["to_address"] == email.lower())
    response = sign_in(stack, pid, email, code_in(mail))
    assert response.status_code == 200, response.text
    return int(response.json()["member_id"]), response.cookies[COOKIE]


def use_session(stack: Stack, cookie: str) -> None:
    stack.client.cookies.clear()
    stack.client.cookies.set(COOKIE, cookie)


def terminal(stack: Stack, manager: Any, pid: int) -> dict[str, str]:
    issued = issue_till(manager, pid)
    return {"Authorization": f"Bearer {issued['api_key']}"}


def identify(stack: Stack, till: dict[str, str], value: str) -> Any:
    return stack.client.post(
        "/api/v1/pos/identify", json={"member": {"value": value}}, headers=till
    )


def test_the_secret_is_given_once_per_session_and_its_codes_identify_the_member(
    stack: Stack,
) -> None:
    manager, pid = program(stack)
    till = terminal(stack, manager, pid)
    enroll(stack, pid)
    member_id, _ = signed_in(stack, pid, ADA_EMAIL, manager)

    first = card(stack, pid)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["member_number"] == f"{member_id:010d}"
    assert body["step_seconds"] == 30
    assert body["digits"] == 8
    assert body["version"] == 0
    assert "=" not in body["secret"]
    assert body["card_number"].startswith("07")
    assert len(body["card_number"]) == 17
    assert body["card_number_formatted"].replace(" ", "") == body["card_number"]
    secret = secret_of(body)
    server_key = stack.app.state.settings.secret_key.encode()
    assert secret == card_secret(server_key, member_id, 0)

    # The code the wallet computes (as card.js does) names the member at the till.
    code = "08" + body["member_number"] + totp(secret, time_step(stack.clock.now))
    assert code == rotating_code(member_id, secret, stack.clock.now)
    identified = identify(stack, till, code)
    assert identified.status_code == 200, identified.text
    assert identified.json()["member_id"] == member_id
    # ... and so does the static number.
    by_number = identify(stack, till, body["card_number"])
    assert by_number.json()["member_id"] == member_id

    # A second request of the same session (a copied cookie) gets nothing.
    again = assert_problem(card(stack, pid), 409, "card_secret_already_delivered")
    assert "secret" not in again
    delivered = stack.read_db(
        lambda conn: conn.scalar(select(member_sessions.c.card_secret_delivered_at))
    )
    assert delivered is not None

    # Signing in again (a new session) delivers it again: the same secret.
    stack.client.post(f"{WALLET}/{pid}/sign-in/code", json={"email": ADA_EMAIL})
    signed_in(stack, pid, ADA_EMAIL, manager)
    renewed = card(stack, pid)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["secret"] == body["secret"]
    assert_problem(card(stack, pid), 409, "card_secret_already_delivered")


def test_a_session_gets_only_its_own_members_secret(stack: Stack) -> None:
    manager, pid = program(stack)
    till = terminal(stack, manager, pid)
    enroll(stack, pid)
    enroll(stack, pid, BOB)
    ada, ada_cookie = signed_in(stack, pid, ADA_EMAIL, manager)
    bob, bob_cookie = signed_in(stack, pid, BOB_EMAIL, manager)

    use_session(stack, bob_cookie)
    bobs = card(stack, pid).json()
    assert bobs["member_number"] == f"{bob:010d}"
    code = rotating_code(bob, secret_of(bobs), stack.clock.now)
    assert identify(stack, till, code).json()["member_id"] == bob
    # Bob's secret makes no code of Ada's: her member number with his secret is refused.
    forged = rotating_code(ada, secret_of(bobs), stack.clock.now)
    assert_problem(identify(stack, till, forged), 422, "rotating_code_expired")

    # Ada's session still gets hers (Bob's fetch did not use up her delivery).
    use_session(stack, ada_cookie)
    adas = card(stack, pid).json()
    assert adas["member_number"] == f"{ada:010d}"
    assert adas["secret"] != bobs["secret"]

    # Another program's path, no session, an ended session: nothing.
    _, other = program_two(stack, manager)
    use_session(stack, bob_cookie)
    assert card(stack, other).status_code == 401
    stack.client.cookies.clear()
    assert card(stack, pid).status_code == 401
    use_session(stack, bob_cookie)
    stack.client.post(f"{WALLET}/{pid}/sign-out")
    use_session(stack, bob_cookie)
    assert card(stack, pid).status_code == 401


def program_two(stack: Stack, manager: Any) -> tuple[Any, int]:
    created = manager.call(
        "POST", "/programs", {"code": "mond", "name": "Mondpunkte", "currency": "EUR"}, 201
    )
    return manager, int(created["program_id"])


def test_only_the_wallets_own_script_may_take_the_delivery(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    signed_in(stack, pid, ADA_EMAIL, manager)
    # A link from another site, or the address bar: refused, and the delivery is not used up.
    linked = card(stack, pid, **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert_problem(linked, 403, "forbidden")
    typed = card(stack, pid, **{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"})
    assert_problem(typed, 403, "forbidden")
    fetched = card(stack, pid, **{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})
    assert fetched.status_code == 200, fetched.text


def test_the_barcode_is_the_card_number_in_code_128(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    signed_in(stack, pid, ADA_EMAIL, manager)
    number = stack.read_db(lambda conn: conn.scalar(select(members.c.card_number)))
    response = stack.client.get(f"{WALLET}/{pid}/card/barcode.svg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "private, max-age=3600"
    assert response.headers["vary"] == "Cookie"
    assert "<script" not in response.text
    decoded = zxingcpp.read_barcodes(_rasterize(response.text))
    assert [(r.format, r.text) for r in decoded] == [(zxingcpp.BarcodeFormat.Code128, number)]
    # Revalidation by ETag.
    etag = response.headers["etag"]
    cached = stack.client.get(f"{WALLET}/{pid}/card/barcode.svg", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    stack.client.cookies.clear()
    assert stack.client.get(f"{WALLET}/{pid}/card/barcode.svg").status_code == 401


def _rasterize(svg: str) -> Image.Image:
    """The barcode SVG drawn with Pillow (its bars are whole modules): 3 px per module."""
    view = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    assert view
    width, height = int(view.group(1)), int(view.group(2))
    image = Image.new("L", (width * 3, height * 3), 255)
    for x, w, h in re.findall(r"M(\d+) 0h(\d+)v(\d+)", svg):
        image.paste(0, (int(x) * 3, 0, (int(x) + int(w)) * 3, int(h) * 3))
    return image


def test_the_card_page_shows_the_number_and_needs_a_session(stack: Stack) -> None:
    manager, pid = program(stack)
    enroll(stack, pid)
    member_id, _ = signed_in(stack, pid, ADA_EMAIL, manager)
    page = stack.client.get(f"/wallet/{pid}/card?lang=de")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "<title>Ihre Karte · Sonnenpunkte" in page.text
    assert f'data-member="{member_id}"' in page.text
    assert "/wallet/static/card.js" in page.text
    assert "/wallet/static/vendor/qrcode.js" in page.text
    assert "Kartennummer" in page.text
    assert "Bildschirmhelligkeit" in page.text
    assert 'aria-current="page">Karte</a>' in page.text
    number = str(stack.read_db(lambda conn: conn.scalar(select(members.c.card_number))))
    assert number[:2] + " " + number[2:6] in page.text
    english = stack.client.get(f"/wallet/{pid}/card?lang=en")
    assert "Card number" in english.text
    assert "Full screen" in english.text
    # The page itself does not take the secret: the card's script fetches it, and the page
    # tells the script whether this session has had it.
    assert 'data-delivered="false"' in page.text
    assert card(stack, pid).status_code == 200
    assert 'data-delivered="true"' in stack.client.get(f"/wallet/{pid}/card").text
    stack.client.cookies.clear()
    away = stack.client.get(f"/wallet/{pid}/card", follow_redirects=False)
    assert (away.status_code, away.headers["location"]) == (303, f"/wallet/{pid}")


def test_the_wallet_installs_as_an_app(stack: Stack) -> None:
    _, pid = program(stack)
    base = f"/wallet/{pid}"
    welcome = stack.client.get(base)
    assert f'<link rel="manifest" href="{base}/manifest.webmanifest">' in welcome.text
    assert "/wallet/static/pwa.js" in welcome.text

    manifest = stack.client.get(f"{base}/manifest.webmanifest", headers={"Accept-Language": "en"})
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["name"] == "Sonnenpunkte"
    assert len(body["short_name"]) <= 12
    # The scope covers the home page itself (/wallet/1 is not under /wallet/1/).
    assert body["start_url"] == base
    assert base.startswith(body["scope"])
    assert body["display"] == "standalone"
    assert body["shortcuts"] == [{"name": "Your card", "url": f"{base}/card"}]
    sizes = set()
    for icon in body["icons"]:
        png = stack.client.get(icon["src"])
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(png.content))
        assert icon["sizes"] == f"{image.width}x{image.height}"
        sizes.add(image.width)
    assert sizes == {192, 512}

    worker = stack.client.get(f"{base}/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("application/javascript")
    assert worker.headers["service-worker-allowed"] == base
    assert "__WALLET_VERSION__" not in worker.text
    assert stack.client.get(f"/wallet/{pid + 50}/sw.js").status_code == 404
    assert stack.client.get(f"/wallet/{pid + 50}/manifest.webmanifest").status_code == 404


def test_the_printable_card_in_the_programs_colours_decodes(stack: Stack) -> None:
    manager, pid = program(stack)
    refused = manager.client.patch(
        f"/api/v1/admin/programs/{pid}",
        json={"card_background": "#ffffff", "card_foreground": "#eeeeee", "card_accent": "#000000"},
        headers=manager.headers,
    )
    assert_problem(refused, 400, "validation_failed")
    alone = manager.client.patch(
        f"/api/v1/admin/programs/{pid}",
        json={"card_background": "#5b2c12"},
        headers=manager.headers,
    )
    assert_problem(alone, 400, "validation_failed")
    colours = {"card_background": "#5B2C12", "card_foreground": "#ffffff", "card_accent": "#f2c14e"}
    changed = manager.call("PATCH", f"/programs/{pid}", colours)
    assert changed["card_background"] == "#5b2c12"
    enroll(stack, pid)
    sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0]))
    card = stack.read_db(lambda conn: conn.scalar(select(members.c.card_number)))

    png = stack.client.get(f"{WALLET}/{pid}/card/print.png")
    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (1012, 638)
    assert image.convert("RGB").getpixel((5, 5)) == (0x5B, 0x2C, 0x12)
    found = {r.format.name: r.text for r in zxingcpp.read_barcodes(image)}
    assert found == {"QRCode": card, "Code128": card}
    svg = stack.client.get(f"{WALLET}/{pid}/card/print.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "#5b2c12" in svg.text
    assert "Sonnenpunkte" in svg.text
    stack.client.cookies.clear()
    assert stack.client.get(f"{WALLET}/{pid}/card/print.png").status_code == 401
