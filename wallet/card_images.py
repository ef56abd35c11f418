"""Card images: QR codes of card values, and the printable membership card.

QR codes (``qr_png``, ``qr_svg``)
    Error correction M, a quiet zone of 4 modules, black on white (../shared/DESIGN.md section 6).
    A card number (17 digits) or a rotating code (20 digits) fits version 1 (21 x 21 modules, 29
    with the quiet zone) in numeric mode. Give either ``module_px`` (pixels per module) or
    ``size_px`` (the image's side): with ``size_px`` the modules are the largest whole number of
    pixels that fits, and the pixels left over widen the quiet zone, so the PNG has no blurred
    module edges at any size.

Printable card (``card_png``, ``card_svg``)
    Credit-card size (ID-1, 85.6 x 53.98 mm), 1012 x 638 px at 300 dpi: the program's name, the
    member's display name, and two white panels, one with a Code 128 barcode of the card number
    (for 1D scanners) above the number formatted for reading, one with the QR code of the card
    number. Text is in the program's colours (``loyalty.domain.card_style.CardStyle``); codes
    are black on white whatever the colours. The PNG and the SVG come from the same layout. The
    PNG draws text with the Roboto fonts shipped in ``wallet/fonts`` (no system font assumed);
    the SVG names Roboto with Arial and sans-serif as fallbacks, and pins each text's width
    (``textLength``), so a fallback font cannot push text out of its place.

    Names longer than the card is wide are set smaller, then cut with "…". A text with
    characters the fonts cannot draw (``FONT_CODEPOINTS``; Latin, Greek and Cyrillic are there)
    is drawn with their base letters when they have one (NFKD) and otherwise left off the card
    rather than drawn as boxes.

The Code 128 symbols come from python-barcode (charset C for digit pairs, the check symbol);
this module only draws the bars.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import qrcode
from barcode.codex import Code128
from PIL import Image, ImageChops, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from loyalty.domain.card_style import (
    BLACK,
    DEFAULT_STYLE,
    RGB,
    WHITE,
    CardStyle,
    contrast_ratio,
    hex_colour,
)
from loyalty.domain.cards import check_card_number, format_card_number

# --- QR codes ------------------------------------------------------------------------------

#: Modules of light margin around a QR code (ISO/IEC 18004 asks for 4).
QR_QUIET_ZONE = 4
DEFAULT_MODULE_PX = 8

Matrix = tuple[tuple[bool, ...], ...]


@lru_cache(maxsize=256)
def qr_matrix(value: str) -> Matrix:
    """The QR code of ``value`` at error correction M, smallest version that fits, with its
    4-module quiet zone included: ``True`` is a dark module."""
    if not value:
        raise ValueError("a QR code needs a value")
    code = qrcode.QRCode(version=None, error_correction=ERROR_CORRECT_M, border=QR_QUIET_ZONE)
    code.add_data(value)
    code.make(fit=True)
    return tuple(tuple(bool(cell) for cell in row) for row in code.get_matrix())


def _module_and_offset(modules: int, size_px: int | None, module_px: int | None) -> tuple[int, int]:
    """(pixels per module, pixels of extra margin on each side) for an image of ``modules``."""
    if size_px is not None and module_px is not None:
        raise ValueError("give size_px or module_px, not both")
    if size_px is None:
        module = DEFAULT_MODULE_PX if module_px is None else module_px
        if module < 1:
            raise ValueError(f"module_px must be at least 1, not {module}")
        return module, 0
    module = size_px // modules
    if module < 1:
        raise ValueError(f"a QR code of {modules} modules needs at least {modules} px")
    return module, (size_px - module * modules) // 2


def _matrix_image(matrix: Matrix, module: int) -> Image.Image:
    """The matrix as a 1-bit image, ``module`` pixels per module, dark = 0."""
    side = len(matrix)
    small = Image.frombytes(
        "L", (side, side), bytes(0 if dark else 255 for row in matrix for dark in row)
    )
    return small.resize((side * module, side * module), Image.Resampling.NEAREST).convert("1")


def qr_png(value: str, *, size_px: int | None = None, module_px: int | None = None) -> bytes:
    """The QR code of ``value`` as a PNG (1 bit, black on white). ``size_px``: the image's side
    in pixels (at least the number of modules); or ``module_px``: pixels per module
    (default 8)."""
    matrix = qr_matrix(value)
    module, offset = _module_and_offset(len(matrix), size_px, module_px)
    code = _matrix_image(matrix, module)
    side = size_px if size_px is not None else code.width
    image = Image.new("1", (side, side), 1)
    image.paste(code, (offset, offset))
    return _png_bytes(image)


def _dark_runs(row: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """(start, length) of each run of dark modules in ``row``."""
    start: int | None = None
    for x, dark in enumerate((*row, False)):
        if dark and start is None:
            start = x
        elif not dark and start is not None:
            yield start, x - start
            start = None


def _qr_path(matrix: Matrix) -> str:
    """SVG path data of the dark modules, one unit per module: a rectangle per horizontal run."""
    return "".join(
        f"M{x} {y}h{length}v1h-{length}z"
        for y, row in enumerate(matrix)
        for x, length in _dark_runs(row)
    )


def qr_svg(value: str, *, size_px: int | None = None, module_px: int | None = None) -> str:
    """The QR code of ``value`` as an SVG document (black on white, crisp edges). Sized like
    ``qr_png``; being vector, it scales to any size without losing the quiet zone."""
    matrix = qr_matrix(value)
    side = len(matrix)
    module, _ = _module_and_offset(side, size_px, module_px)
    pixels = size_px if size_px is not None else side * module
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{pixels}" height="{pixels}" viewBox="0 0 {side} {side}" '
        'shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#ffffff"/>'
        f'<path fill="#000000" d="{_qr_path(matrix)}"/>'
        "</svg>\n"
    )


def _png_bytes(image: Image.Image, dpi: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if dpi is None:
        image.save(buffer, format="PNG", optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True, dpi=(dpi, dpi))
    return buffer.getvalue()


# --- Code 128 ------------------------------------------------------------------------------

#: Modules of light margin either side of a Code 128 symbol (ISO/IEC 15417 asks for 10).
CODE128_QUIET_ZONE = 10


def code128_modules(value: str) -> str:
    """The modules of the Code 128 symbol of ``value`` (start, data, check symbol, stop), as
    ``1`` (bar) and ``0`` (space), without quiet zones."""
    if not value or not value.isascii():
        raise ValueError("Code 128 needs a non-empty ASCII value")
    # A fresh instance each time: python-barcode's encoder keeps state between builds.
    modules: str = Code128(value).build()[0]
    return modules


# --- Fonts ---------------------------------------------------------------------------------

#: The code points of the shipped Roboto subsets (wallet/fonts/README.md); both weights have the
#: same. tests/wallet/test_card_images.py checks this list against the fonts.
FONT_CODEPOINTS: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E), (0x00A0, 0x024F), (0x0259, 0x0259), (0x02BB, 0x02BC), (0x02C6, 0x02C7),
    (0x02D8, 0x02DD), (0x0370, 0x0377), (0x037A, 0x037F), (0x0384, 0x038A), (0x038C, 0x038C),
    (0x038E, 0x03A1), (0x03A3, 0x03E1), (0x03F0, 0x045F), (0x0490, 0x0491), (0x1E9E, 0x1E9E),
    (0x2010, 0x2027), (0x2030, 0x203A), (0x2044, 0x2044), (0x20AC, 0x20AC), (0x2116, 0x2116),
    (0x2122, 0x2122),
)  # fmt: skip
_FONT_FILES = {False: "Roboto-Regular.ttf", True: "Roboto-Bold.ttf"}
SVG_FONT_FAMILY = "Roboto, Arial, Helvetica, sans-serif"
ELLIPSIS = "…"


def font_has(char: str) -> bool:
    """Whether the shipped fonts draw ``char`` (one character)."""
    point = ord(char)
    return any(low <= point <= high for low, high in FONT_CODEPOINTS)


def drawable_text(text: str) -> str | None:
    """``text`` as the shipped fonts can draw it: NFC; whitespace runs become one space; a
    character the fonts lack loses accents from the last until the fonts have it (Vietnamese
    "ễ" becomes "ê"; compatibility forms such as "ﬁ" become "fi"). ``None`` when some character
    is left that they cannot draw."""
    out: list[str] = []
    for char in unicodedata.normalize("NFC", " ".join(text.split())):
        if font_has(char):
            out.append(char)
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        marks = [c for c in decomposed if unicodedata.combining(c)]
        while True:
            candidate = unicodedata.normalize("NFC", base + "".join(marks))
            if candidate and all(font_has(c) for c in candidate):
                out.append(candidate)
                break
            if not marks:
                return None
            marks.pop()
    return "".join(out)


@lru_cache(maxsize=64)
def font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    """The shipped Roboto (bold or regular) at ``size`` pixels per em."""
    data = files("wallet").joinpath("fonts", _FONT_FILES[bold]).read_bytes()
    return ImageFont.truetype(io.BytesIO(data), size)


def text_width(text: str, *, bold: bool, size: int) -> float:
    """The advance width of ``text`` in pixels, set in the shipped Roboto at ``size`` px."""
    return float(font(bold, size).getlength(text))


def fit_text(
    text: str, *, bold: bool, max_size: int, min_size: int, max_width: float
) -> tuple[str, int] | None:
    """(text, size) of ``text`` set as large as fits ``max_width`` between ``max_size`` and
    ``min_size``; at ``min_size`` cut with "…" when still too wide. ``None`` when the text is
    empty or the fonts cannot draw it."""
    drawable = drawable_text(text)
    if not drawable:
        return None
    for size in range(max_size, min_size - 1, -1):
        if text_width(drawable, bold=bold, size=size) <= max_width:
            return drawable, size
    cut = drawable
    while cut and text_width(cut.rstrip() + ELLIPSIS, bold=bold, size=min_size) > max_width:
        cut = cut[:-1]
    return cut.rstrip() + ELLIPSIS, min_size


# --- The printable card --------------------------------------------------------------------

#: ID-1 (ISO/IEC 7810), the size of a credit card.
CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 53.98
CARD_DPI = 300
#: 1012 x 638: the card at 300 dpi, rounded up so the image covers it.
CARD_SIZE = (
    math.ceil(CARD_WIDTH_MM / 25.4 * CARD_DPI),
    math.ceil(CARD_HEIGHT_MM / 25.4 * CARD_DPI),
)

_MARGIN = 52
_GAP = 24
_PANEL_RADIUS = 14
_QR_MODULE_PX = 9
_MAX_BAR_MODULE_PX = 4
_NUMBER_SIZE = 34


@dataclass(frozen=True, slots=True)
class CardFace:
    """What a printed card shows. ``card_number`` is checked (``invalid_card_number``) and kept
    canonical; ``display_name`` may be empty."""

    program_name: str
    card_number: str
    display_name: str = ""
    style: CardStyle = DEFAULT_STYLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "card_number", check_card_number(self.card_number))


@dataclass(frozen=True, slots=True)
class _Rect:
    x: int
    y: int
    width: int
    height: int
    fill: RGB
    radius: int = 0
    outline: RGB | None = None
    outline_width: int = 0


@dataclass(frozen=True, slots=True)
class _Text:
    x: float
    baseline: float
    text: str
    size: int
    bold: bool
    fill: RGB
    anchor: Literal["start", "middle"] = "start"


@dataclass(frozen=True, slots=True)
class _Qr:
    x: int
    y: int
    module: int
    matrix: Matrix


@dataclass(frozen=True, slots=True)
class _Bars:
    x: int
    y: int
    module: int
    height: int
    modules: str


_Shape = _Rect | _Text | _Qr | _Bars


def _card_layout(card: CardFace) -> list[_Shape]:
    """Everything on the card, back to front, in pixels at 300 dpi."""
    width, height = CARD_SIZE
    style = card.style
    shapes: list[_Shape] = [_Rect(0, 0, width, height, style.background_rgb)]
    text_width_max = width - 2 * _MARGIN

    title = fit_text(
        card.program_name, bold=True, max_size=64, min_size=36, max_width=text_width_max
    )
    if title is not None:
        shapes.append(_Text(_MARGIN, 112, title[0], title[1], True, style.foreground_rgb))
    shapes.append(_Rect(_MARGIN, 140, 96, 10, style.accent_rgb, radius=5))
    name = fit_text(
        card.display_name, bold=False, max_size=44, min_size=30, max_width=text_width_max
    )
    if name is not None:
        shapes.append(_Text(_MARGIN, 222, name[0], name[1], False, style.foreground_rgb))

    # White panels; outlined when the card itself is so light that they would not show.
    outline = style.foreground_rgb if contrast_ratio(style.background_rgb, WHITE) < 1.5 else None
    border = 3 if outline is not None else 0

    matrix = qr_matrix(card.card_number)
    qr_side = len(matrix) * _QR_MODULE_PX
    qr_x, qr_y = width - _MARGIN - qr_side, height - _MARGIN - qr_side
    # An outline goes around the QR code's quiet zone, never into it.
    shapes.append(
        _Rect(
            qr_x - border,
            qr_y - border,
            qr_side + 2 * border,
            qr_side + 2 * border,
            WHITE,
            _PANEL_RADIUS,
            outline,
            border,
        )
    )
    shapes.append(_Qr(qr_x, qr_y, _QR_MODULE_PX, matrix))

    panel_x, panel_y = _MARGIN, qr_y
    panel_w, panel_h = qr_x - _GAP - _MARGIN, qr_side
    shapes.append(_Rect(panel_x, panel_y, panel_w, panel_h, WHITE, _PANEL_RADIUS, outline, border))
    modules = code128_modules(card.card_number)
    module = min(_MAX_BAR_MODULE_PX, panel_w // (len(modules) + 2 * CODE128_QUIET_ZONE))
    if module < 2:  # pragma: no cover - a card number always fits
        raise ValueError("the card number's Code 128 does not fit the card")
    bars_w = module * len(modules)
    number_baseline = panel_y + panel_h - 26
    bars_top = panel_y + 28
    bars_h = number_baseline - _NUMBER_SIZE - 16 - bars_top
    shapes.append(_Bars(panel_x + (panel_w - bars_w) // 2, bars_top, module, bars_h, modules))
    shapes.append(
        _Text(
            panel_x + panel_w / 2,
            number_baseline,
            format_card_number(card.card_number),
            _NUMBER_SIZE,
            True,
            BLACK,
            anchor="middle",
        )
    )
    return shapes


def card_png(card: CardFace) -> bytes:
    """The printable card as an RGB PNG, 1012 x 638 px, tagged 300 dpi."""
    shapes = _card_layout(card)
    image = Image.new("RGB", CARD_SIZE, WHITE)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        if isinstance(shape, _Rect):
            box = (shape.x, shape.y, shape.x + shape.width - 1, shape.y + shape.height - 1)
            draw.rounded_rectangle(
                box,
                radius=shape.radius,
                fill=shape.fill,
                outline=shape.outline,
                width=shape.outline_width,
            )
        elif isinstance(shape, _Text):
            anchor = "ls" if shape.anchor == "start" else "ms"
            face = font(shape.bold, shape.size)
            draw.text(
                (shape.x, shape.baseline), shape.text, font=face, fill=shape.fill, anchor=anchor
            )
        elif isinstance(shape, _Qr):
            # Only the dark modules: the panel under it keeps its rounded corners and outline.
            dark = ImageChops.invert(_matrix_image(shape.matrix, shape.module).convert("L"))
            image.paste(BLACK, (shape.x, shape.y), dark)
        else:
            x = shape.x
            for start, length in _dark_runs([m == "1" for m in shape.modules]):
                left = x + start * shape.module
                draw.rectangle(
                    (left, shape.y, left + length * shape.module - 1, shape.y + shape.height - 1),
                    fill=BLACK,
                )
    return _png_bytes(image, dpi=CARD_DPI)


def _svg_shape(shape: _Shape) -> str:
    if isinstance(shape, _Rect):
        if shape.outline is not None and shape.outline_width:
            # An SVG stroke is centred on the edge; inset it to match Pillow's inner outline.
            half = shape.outline_width / 2
            return (
                f'<rect x="{shape.x + half}" y="{shape.y + half}" '
                f'width="{shape.width - shape.outline_width}" '
                f'height="{shape.height - shape.outline_width}" rx="{shape.radius}" '
                f'fill="{hex_colour(shape.fill)}" stroke="{hex_colour(shape.outline)}" '
                f'stroke-width="{shape.outline_width}"/>'
            )
        radius = f' rx="{shape.radius}"' if shape.radius else ""
        return (
            f'<rect x="{shape.x}" y="{shape.y}" width="{shape.width}" height="{shape.height}"'
            f'{radius} fill="{hex_colour(shape.fill)}"/>'
        )
    if isinstance(shape, _Text):
        length = text_width(shape.text, bold=shape.bold, size=shape.size)
        return (
            f'<text x="{shape.x:g}" y="{shape.baseline:g}" font-size="{shape.size}" '
            f'font-weight="{"bold" if shape.bold else "normal"}" '
            f'fill="{hex_colour(shape.fill)}" text-anchor="{shape.anchor}" '
            f'textLength="{length:.1f}" lengthAdjust="spacingAndGlyphs">'
            f"{escape(shape.text)}</text>"
        )
    if isinstance(shape, _Qr):
        return (
            f'<path transform="translate({shape.x} {shape.y}) scale({shape.module})" '
            f'fill="#000000" shape-rendering="crispEdges" d="{_qr_path(shape.matrix)}"/>'
        )
    bars = "".join(
        f"M{start} 0h{length}v1h-{length}z"
        for start, length in _dark_runs([m == "1" for m in shape.modules])
    )
    return (
        f'<path transform="translate({shape.x} {shape.y}) scale({shape.module} {shape.height})" '
        f'fill="#000000" shape-rendering="crispEdges" d="{bars}"/>'
    )


def card_svg(card: CardFace) -> str:
    """The printable card as an SVG document, 85.68 x 54.02 mm (1012 x 638 user units, the
    PNG's pixels), with the same layout as ``card_png``."""
    width, height = CARD_SIZE
    title = drawable_text(card.program_name) or "Membership card"
    body = "".join(_svg_shape(shape) for shape in _card_layout(card))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{width / CARD_DPI * 25.4:.2f}mm" height="{height / CARD_DPI * 25.4:.2f}mm" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr(SVG_FONT_FAMILY)}>'
        f"<title>{escape(title)}</title>"
        f"{body}"
        "</svg>\n"
    )
