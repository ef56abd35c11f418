"""Camera scanning on the cashier page, in headless Chromium with a fake camera.

Chromium films a Y4M file that the test writes: the QR code of a real member's rotating wallet
code (``qrcode`` + Pillow) on a dark counter. The page is made to use the vendored decoder
(``static/vendor/jsQR.js``): ``BarcodeDetector`` is deleted before the page's script runs, as
in Chrome on Windows and Linux, Firefox and Safari, which have none. Pressing the camera button
identifies the member as a typed scan and Enter would, closes the camera dialog and turns the
camera off. Also: a picture without a code keeps the dialog open until Cancel, which turns the
camera off too; a refused permission and a missing camera are explained in the page's language;
a till without any camera has no camera button.

The server and the shop come from ``conftest.py``. A test with a fake camera launches Chromium
with the camera flags it needs (the film is fixed at launch); the till without a camera is the
shared browser with the page's view of the devices replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import qrcode
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, Playwright, Request, expect

from pos_adapter.cashier.i18n import STRINGS
from tests.e2e.helpers import (
    BASE_TIER_NAME,
    CHROMIUM_ARGS,
    LOCALES,
    START_POINTS,
    TIMEOUT_MS,
    VIEWPORT,
    BrowserErrors,
    Shop,
    enrol,
    points,
    sign_in,
    wallet_code,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: The fake camera's picture: VGA, as a cheap USB camera films.
FRAME_SIZE = (640, 480)
#: The counter the code is held over (luminance): darker than the code's white quiet zone.
COUNTER = 90
DECODER_PATH = "/pos/static/vendor/jsQR.js"

#: Runs before the page's own script in every page of the context:
#: - no BarcodeDetector, whatever this Chromium has, so the vendored decoder does the work;
#: - every stream getUserMedia answers is kept, to see that the page stops it afterwards;
#: - the calls of the vendored decoder are counted (it defines ``window.jsQR`` when it loads).
PAGE_SETUP = """
delete window.BarcodeDetector;
window.__cameraStreams = [];
window.__decoderCalls = 0;
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    window.__cameraStreams.push(stream);
    return stream;
  };
}
let decoder;
Object.defineProperty(window, "jsQR", {
  configurable: true,
  get: () => decoder && ((...args) => { window.__decoderCalls += 1; return decoder(...args); }),
  set: (value) => { decoder = value; },
});
"""
#: The state of the tracks of every stream the page opened: [["ended"]] once it stopped its one.
TRACK_STATES = "window.__cameraStreams.map((s) => s.getTracks().map((t) => t.readyState))"


# --- The fake camera's film ----------------------------------------------------------------------


def wallet_frame(value: str) -> Image.Image:
    """The wallet's QR code of ``value`` (numeric mode, error correction M, the standard quiet
    zone of 4 white modules), held in the middle of the camera's picture."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(value)
    qr.make(fit=True)
    code = qr.make_image(fill_color="black", back_color="white").get_image().convert("L")
    frame = Image.new("L", FRAME_SIZE, COUNTER)
    frame.paste(code, ((FRAME_SIZE[0] - code.width) // 2, (FRAME_SIZE[1] - code.height) // 2))
    return frame


def codeless_frame() -> Image.Image:
    """The counter with a card on it that carries no code."""
    frame = Image.new("L", FRAME_SIZE, COUNTER)
    draw = ImageDraw.Draw(frame)
    draw.rounded_rectangle((170, 130, 470, 330), radius=18, fill=235)
    draw.rectangle((200, 170, 420, 190), fill=60)
    draw.rectangle((200, 210, 360, 222), fill=120)
    return frame


def write_y4m(path: Path, frame: Image.Image, frames: int = 5) -> Path:
    """``frame`` as a Y4M film Chromium's fake camera plays in a loop: 4:2:0, luminance only
    (both chroma planes neutral grey), 10 frames a second."""
    picture = frame.convert("L")
    width, height = picture.size
    assert (width % 2, height % 2) == (0, 0), "4:2:0 needs an even width and height"
    chroma = bytes([128]) * (width // 2 * height // 2)
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + (b"FRAME\n" + picture.tobytes() + chroma + chroma) * frames)
    return path


# --- The browser with a camera -------------------------------------------------------------------


@contextlib.contextmanager
def camera_page(
    playwright: Playwright,
    chromium: Path,
    errors: BrowserErrors,
    lang: str,
    *,
    film: Path | None,
    allowed: bool,
) -> Iterator[Page]:
    """A page in a Chromium whose fake camera plays ``film`` (or Chromium's own test pattern),
    with the camera allowed for the page or not (then getUserMedia is refused)."""
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
    if film is not None:
        args.append(f"--use-file-for-fake-video-capture={film}")
    if allowed:
        args.append("--use-fake-ui-for-media-stream")
    browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
    try:
        context = browser.new_context(
            locale=LOCALES[lang], viewport=VIEWPORT, permissions=["camera"] if allowed else []
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(PAGE_SETUP)
        page = context.new_page()
        errors.watch(page)
        yield page
    finally:
        browser.close()


def requests_to(page: Page, path: str) -> list[str]:
    """The URLs of the page's requests to ``path`` (with any query), as they happen."""
    seen: list[str] = []

    def record(request: Request) -> None:
        if request.url.split("?")[0].endswith(path):
            seen.append(request.url)

    page.on("request", record)
    return seen


# --- The tests -----------------------------------------------------------------------------------


def test_the_camera_reads_the_wallet_code_with_the_vendored_decoder(
    playwright: Playwright, chromium: Path, errors: BrowserErrors, shop: Shop, tmp_path: Path
) -> None:
    lang = "de"
    t = STRINGS[lang]
    member = enrol(shop, "Aylin Yılmaz")
    film = write_y4m(tmp_path / "wallet.y4m", wallet_frame(wallet_code(shop, member)))

    with camera_page(playwright, chromium, errors, lang, film=film, allowed=True) as page:
        decoder_loads = requests_to(page, DECODER_PATH)
        identifies = requests_to(page, "/api/v1/pos/identify")
        sign_in(page, shop, lang)
        assert page.evaluate("'BarcodeDetector' in window") is False
        assert decoder_loads == [], "the decoder loads with the camera, not with the page"

        page.get_by_role("button", name=t["camera"], exact=True).click()

        card = page.locator("#member")
        expect(card.locator("#member-name")).to_have_text(member.name)
        expect(card.locator("#member-tier")).to_have_text(BASE_TIER_NAME[lang])
        expect(card.locator("#member-available")).to_have_text(points(START_POINTS, lang))
        expect(card.locator("#member-detail")).to_contain_text(t["by_rotating_code"])
        # The camera is closed and off; the scan field is ready for the next scan.
        expect(page.locator("#dlg-camera")).to_be_hidden()
        assert page.evaluate(TRACK_STATES) == [["ended"]]
        assert page.evaluate("document.getElementById('camera-video').srcObject") is None
        scan = page.get_by_label(t["scan_label"])
        expect(scan).to_have_value("")
        expect(scan).to_be_focused()
        expect(page.locator("#banner")).to_be_hidden()
        assert page.evaluate("window.__decoderCalls") >= 1

    # The vendored decoder read the code, loaded once with its content hash; one identify.
    assert len(decoder_loads) == 1, decoder_loads
    assert decoder_loads[0].startswith(f"{shop.server.base_url}{DECODER_PATH}?v="), decoder_loads
    assert len(identifies) == 1, identifies
    assert errors.messages == []
    assert "Traceback" not in shop.server.log_text()


def test_a_picture_without_a_code_keeps_the_camera_open_until_cancel(
    playwright: Playwright, chromium: Path, errors: BrowserErrors, shop: Shop, tmp_path: Path
) -> None:
    lang = "en"
    t = STRINGS[lang]
    film = write_y4m(tmp_path / "counter.y4m", codeless_frame())

    with camera_page(playwright, chromium, errors, lang, film=film, allowed=True) as page:
        identifies = requests_to(page, "/api/v1/pos/identify")
        sign_in(page, shop, lang)
        page.get_by_role("button", name=t["camera"], exact=True).click()

        dialog = page.locator("#dlg-camera")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_text(t["camera_hint"])).to_be_visible()
        # The film plays in the dialog and the decoder looks at frame after frame, finding none.
        page.wait_for_function(
            "() => document.getElementById('camera-video').videoWidth === 640"
            " && window.__decoderCalls >= 4"
        )
        expect(dialog).to_be_visible()
        page.screenshot(path=tmp_path / "cashier_camera_open.png")

        dialog.get_by_role("button", name=t["cancel"], exact=True).click()
        expect(dialog).to_be_hidden()
        # The dialog's close event (a task after the click) turns the camera off.
        page.wait_for_function(f"() => JSON.stringify({TRACK_STATES}) === '[[\"ended\"]]'")
        calls = page.evaluate("window.__decoderCalls")
        page.wait_for_timeout(600)  # three scan intervals: no decoding after Cancel
        assert page.evaluate("window.__decoderCalls") == calls
        expect(page.get_by_label(t["scan_label"])).to_be_focused()
        expect(page.locator("#no-member")).to_be_visible()
        expect(page.locator("#banner")).to_be_hidden()

    assert identifies == []
    assert errors.messages == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_refused_camera_is_explained(
    playwright: Playwright, chromium: Path, errors: BrowserErrors, shop: Shop, lang: str
) -> None:
    t = STRINGS[lang]
    with camera_page(playwright, chromium, errors, lang, film=None, allowed=False) as page:
        sign_in(page, shop, lang)
        page.get_by_role("button", name=t["camera"], exact=True).click()
        expect(page.locator("#banner-text")).to_have_text(t["err_camera_denied"])
        expect(page.locator("#dlg-camera")).to_be_hidden()
        assert page.evaluate(TRACK_STATES) == []
    assert errors.messages == []


#: A till with speakers but no camera; ``window.__plugCamera()`` plugs one in that is gone again
#: (unplugged, or held by another program's driver) when the page asks for it.
NO_CAMERA = """
let devices = [{ kind: "audiooutput", deviceId: "", groupId: "", label: "" }];
Object.defineProperty(navigator.mediaDevices, "enumerateDevices", {
  value: async () => devices.slice(),
});
Object.defineProperty(navigator.mediaDevices, "getUserMedia", {
  value: async () => { throw new DOMException("Requested device not found", "NotFoundError"); },
});
window.__plugCamera = () => {
  devices = devices.concat([{ kind: "videoinput", deviceId: "", groupId: "", label: "" }]);
  navigator.mediaDevices.dispatchEvent(new Event("devicechange"));
};
"""


def test_no_camera_no_button_and_a_missing_camera_is_explained(
    browser: Browser, errors: BrowserErrors, shop: Shop
) -> None:
    lang = "de"
    t = STRINGS[lang]
    context = browser.new_context(locale=LOCALES[lang], viewport=VIEWPORT)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(NO_CAMERA)
        page = context.new_page()
        errors.watch(page)
        sign_in(page, shop, lang)
        camera = page.locator("#btn-camera")
        expect(camera).to_be_hidden()

        page.evaluate("window.__plugCamera()")
        expect(camera).to_be_visible()
        camera.click()
        expect(page.locator("#banner-text")).to_have_text(t["err_camera_missing"])
        expect(page.locator("#dlg-camera")).to_be_hidden()
    finally:
        context.close()
    assert errors.messages == []
