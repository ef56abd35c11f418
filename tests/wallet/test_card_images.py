"""Every rendered card image reads back, with a real decoder (zxing-cpp), as the value it was
made for: QR codes as PNG and as rasterized SVG at the sizes the wallet uses, and the printable
card's QR code and Code 128 barcode, in dark and light programme colours."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import resvg_py
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from loyalty.domain.card_style import CardStyle
from loyalty.domain.cards import (
    damm_check_digit,
    format_card_number,
    new_card_number,
    rotating_code,
)
from loyalty.domain.errors import DomainError
from wallet.card_images import (
    CARD_SIZE,
    CODE128_QUIET_ZONE,
    FONT_CODEPOINTS,
    QR_QUIET_ZONE,
    CardFace,
    card_png,
    card_svg,
    code128_modules,
    drawable_text,
    fit_text,
    font,
    qr_matrix,
    qr_png,
    qr_svg,
)

pytestmark = pytest.mark.unit

CARD = "0712345678901234" + damm_check_digit("0712345678901234")
ROTATING = rotating_code(12345, b"0123456789abcdef0123", datetime(2026, 5, 4, 12, tzinfo=UTC))
QR = zxingcpp.BarcodeFormat.QRCode
CODE128 = zxingcpp.BarcodeFormat.Code128
#: The sizes the wallet shows QR codes at (CSS px and their 2x rasterizations).
WALLET_QR_SIZES = (256, 320, 512)
BAKERY = CardStyle(background="#7a2e0e", foreground="#ffffff", accent="#f6c343")
FARM_SHOP = CardStyle(background="#ffffff", foreground="#1b4332", accent="#2d6a4f")


def image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


def rasterize(svg: str, width: int) -> bytes:
    """The SVG as a PNG ``width`` px wide (resvg; dpi 96 so that mm sizes resolve)."""
    return resvg_py.svg_to_bytes(svg_string=svg, width=width, dpi=96.0)


def decoded(png: bytes, formats: zxingcpp.BarcodeFormat) -> list[str]:
    grey = image(png).convert("L")
    return [result.text for result in zxingcpp.read_barcodes(grey, formats=formats)]


# --- QR codes ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [CARD, ROTATING])
def test_card_values_fit_version_1_with_a_4_module_quiet_zone(value: str) -> None:
    matrix = qr_matrix(value)
    assert len(matrix) == 21 + 2 * QR_QUIET_ZONE
    assert all(len(row) == len(matrix) for row in matrix)
    edge = QR_QUIET_ZONE
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if not (edge <= x < len(row) - edge and edge <= y < len(matrix) - edge):
                assert not dark, (x, y)


@pytest.mark.parametrize("size", WALLET_QR_SIZES)
@pytest.mark.parametrize("value", [CARD, ROTATING])
def test_qr_png_decodes_at_the_wallet_sizes(value: str, size: int) -> None:
    png = qr_png(value, size_px=size)
    picture = image(png)
    assert picture.size == (size, size)
    results = zxingcpp.read_barcodes(picture.convert("L"), formats=QR)
    assert [r.text for r in results] == [value]
    assert results[0].ec_level == "M"


@pytest.mark.parametrize("size", WALLET_QR_SIZES)
def test_qr_png_margin_is_white_for_at_least_4_modules(size: int) -> None:
    picture = image(qr_png(CARD, size_px=size)).convert("L")
    module = size // len(qr_matrix(CARD))
    margin = QR_QUIET_ZONE * module
    pixels = picture.load()
    assert pixels is not None
    for i in range(size):
        for j in range(margin):
            assert pixels[i, j] == 255
            assert pixels[j, i] == 255
            assert pixels[i, size - 1 - j] == 255
            assert pixels[size - 1 - j, i] == 255


@pytest.mark.parametrize("size", WALLET_QR_SIZES)
@pytest.mark.parametrize("value", [CARD, ROTATING])
def test_qr_svg_rasterized_decodes_at_the_wallet_sizes(value: str, size: int) -> None:
    svg = qr_svg(value, size_px=size)
    png = rasterize(svg, size)
    assert image(png).size == (size, size)
    assert decoded(png, QR) == [value]


def test_qr_module_size_sets_the_image_size() -> None:
    modules = len(qr_matrix(CARD))
    assert image(qr_png(CARD, module_px=5)).size == (5 * modules, 5 * modules)
    assert image(qr_png(CARD)).size == (8 * modules, 8 * modules)
    assert f'width="{3 * modules}"' in qr_svg(CARD, module_px=3)


def test_qr_size_must_hold_every_module() -> None:
    with pytest.raises(ValueError, match="at least 29 px"):
        qr_png(CARD, size_px=28)
    with pytest.raises(ValueError, match="not both"):
        qr_png(CARD, size_px=256, module_px=4)
    with pytest.raises(ValueError, match="needs a value"):
        qr_svg("")


def test_qr_png_is_black_on_white() -> None:
    colours = {colour for _, colour in image(qr_png(CARD, module_px=2)).convert("RGB").getcolors()}
    assert colours == {(0, 0, 0), (255, 255, 255)}


card_numbers = st.text("0123456789", min_size=14, max_size=14).map(
    lambda digits: new_card_number(lambda _: digits)
)
rotating_codes = st.builds(
    rotating_code,
    st.integers(1, 9_999_999_999),
    st.binary(min_size=20, max_size=20),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@pytest.mark.property
@given(value=st.one_of(card_numbers, rotating_codes), size=st.sampled_from(WALLET_QR_SIZES))
def test_any_card_value_reads_back_from_png_and_svg(value: str, size: int) -> None:
    assert decoded(qr_png(value, size_px=size), QR) == [value]
    assert decoded(rasterize(qr_svg(value, size_px=size), size), QR) == [value]


# --- Code 128 ------------------------------------------------------------------------------


def test_code128_of_a_card_number_is_start_c_digits_check_stop() -> None:
    modules = code128_modules(CARD)
    assert modules.startswith("11010011100")  # Start C
    assert modules.endswith("1100011101011")  # Stop
    assert set(modules) == {"0", "1"}
    assert code128_modules(CARD) == modules  # no state kept between calls


# --- The printable card --------------------------------------------------------------------


@pytest.mark.parametrize("style", [BAKERY, FARM_SHOP], ids=["dark", "light"])
def test_card_png_reads_back_qr_and_code128(style: CardStyle) -> None:
    face = CardFace("Bäckerei Sonnenschein", CARD, "Jürgen Müller", style)
    png = card_png(face)
    picture = image(png)
    assert picture.size == CARD_SIZE == (1012, 638)
    assert picture.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert decoded(png, QR) == [CARD]
    assert decoded(png, CODE128) == [CARD]


@pytest.mark.parametrize("style", [BAKERY, FARM_SHOP], ids=["dark", "light"])
def test_card_svg_rasterized_reads_back_qr_and_code128(style: CardStyle) -> None:
    face = CardFace("Bäckerei Sonnenschein", CARD, "Jürgen Müller", style)
    png = rasterize(card_svg(face), CARD_SIZE[0])
    assert image(png).size == CARD_SIZE
    assert decoded(png, QR) == [CARD]
    assert decoded(png, CODE128) == [CARD]


def test_card_svg_is_xml_with_the_texts_escaped() -> None:
    face = CardFace('Brot & "Butter" <Nord>', CARD, "Zoë O'Neill", BAKERY)
    root = ET.fromstring(card_svg(face))
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ['Brot & "Butter" <Nord>', "Zoë O'Neill", format_card_number(CARD)]
    assert root.get("viewBox") == "0 0 1012 638"
    assert root.get("width") == "85.68mm"


def test_card_code128_keeps_its_quiet_zone_inside_the_white_panel() -> None:
    picture = image(card_png(CardFace("Bäckerei", CARD, "", BAKERY))).convert("RGB")
    bars_row = 420  # through the middle of the bars
    row = [picture.getpixel((x, bars_row)) for x in range(CARD_SIZE[0])]
    qr_panel = CARD_SIZE[0] - 52 - 29 * 9  # the QR code's panel starts here
    black = [x for x, colour in enumerate(row) if colour == (0, 0, 0) and x < qr_panel]
    first_bar, last_bar = min(black), max(black)
    module = 3
    assert len(code128_modules(CARD)) * module == last_bar - first_bar + 1
    quiet = CODE128_QUIET_ZONE * module
    for x in [*range(first_bar - quiet, first_bar), *range(last_bar + 1, last_bar + 1 + quiet)]:
        assert row[x] == (255, 255, 255), x


def test_card_number_is_checked() -> None:
    with pytest.raises(DomainError):
        CardFace("Bäckerei", CARD[:-1] + str((int(CARD[-1]) + 1) % 10))
    assert CardFace("Bäckerei", format_card_number(CARD)).card_number == CARD


# --- Text ----------------------------------------------------------------------------------


def test_umlauts_and_other_latin_greek_cyrillic_text_is_drawable() -> None:
    for text in ("Bäckerei Grünwiese Öl Äpfel Straße ẞ €", "Łódź Čapek", "Ελένη", "Юлия"):
        assert drawable_text(text) == text


def test_text_outside_the_fonts_falls_back_or_is_left_off() -> None:
    assert drawable_text("Nguyễn") == "Nguyên"  # ễ loses its tilde: the fonts have ê
    assert drawable_text("ﬁne") == "fine"
    assert drawable_text("王小明") is None
    assert drawable_text("  Jana \n Huber ") == "Jana Huber"
    assert fit_text("王小明", bold=False, max_size=44, min_size=30, max_width=900) is None


def test_long_text_shrinks_then_is_cut_with_an_ellipsis() -> None:
    short = fit_text("Bäckerei", bold=True, max_size=64, min_size=36, max_width=900)
    assert short == ("Bäckerei", 64)
    long_name = "Hofladen Grünwiese & Söhne Obst und Gemüse aus der Region seit 1887"
    fitted = fit_text(long_name, bold=True, max_size=64, min_size=36, max_width=900)
    assert fitted is not None
    text, size = fitted
    assert size == 36
    assert text.endswith("…")
    assert long_name.startswith(text[:-1])
    assert font(True, 36).getlength(text) <= 900


def _glyph(char: str, *, bold: bool) -> bytes:
    canvas = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(canvas).text((8, 4), char, font=font(bold, 28), fill=255)
    return canvas.tobytes()


@pytest.mark.parametrize("bold", [False, True], ids=["regular", "bold"])
def test_font_codepoints_are_exactly_what_the_fonts_draw(bold: bool) -> None:
    missing = _glyph("\ue000", bold=bold)  # private use: no font here has it
    assert missing != _glyph(" ", bold=bold)  # .notdef is a visible box
    for low, high in FONT_CODEPOINTS:
        for point in range(low, high + 1):
            assert _glyph(chr(point), bold=bold) != missing, hex(point)
    for point in (0x0530, 0x05D0, 0x0627, 0x4E2D, 0x1F600):  # Armenian ... an emoji
        assert _glyph(chr(point), bold=bold) == missing, hex(point)


def test_rotating_codes_of_a_day_all_fit_version_1() -> None:
    start = datetime(2026, 5, 4, tzinfo=UTC)
    for step in range(0, 2880, 97):
        code = rotating_code(1, b"k" * 20, start + timedelta(seconds=30 * step))
        assert len(qr_matrix(code)) == 29
