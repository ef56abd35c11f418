"""A program's card colours, checked for legibility.

A ``CardStyle`` has three ``#rrggbb`` colours: the card's ``background``, the ``foreground`` of the
text drawn on it, and an ``accent`` (a stripe on the printed card, the labels of the Apple Wallet
pass). They are checked with the WCAG 2 contrast ratio: foreground on background at least 4.5 (the
level for normal text), accent on background at least 3 (large text and graphics). Barcodes never
use these colours: they are always black on a white panel, whatever the style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: WCAG 2.x, success criterion 1.4.3 (normal text).
MIN_TEXT_CONTRAST = 4.5
#: WCAG 2.x, 1.4.3 for large text and 1.4.11 for graphical objects.
MIN_ACCENT_CONTRAST = 3.0

_HEX = re.compile(r"#[0-9a-fA-F]{6}")

RGB = tuple[int, int, int]


class CardStyleError(ValueError):
    """A colour that is not ``#rrggbb``, or a pair of colours too alike to read."""


def parse_hex_colour(value: str) -> RGB:
    """``#rrggbb`` (either case) as an (r, g, b) tuple of 0-255; ``CardStyleError`` otherwise."""
    if not isinstance(value, str) or _HEX.fullmatch(value) is None:
        raise CardStyleError(f"colour {value!r} is not of the form #rrggbb")
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _channel(value: int) -> float:
    srgb = value / 255
    return srgb / 12.92 if srgb <= 0.04045 else ((srgb + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: RGB) -> float:
    """WCAG 2 relative luminance of an sRGB colour: 0 for black, 1 for white."""
    r, g, b = colour
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio of two colours, from 1 (the same) to 21 (black on white)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    lighter, darker = max(la, lb), min(la, lb)
    return (lighter + 0.05) / (darker + 0.05)


def css_rgb(colour: RGB) -> str:
    """``rgb(r, g, b)``: the form Apple Wallet's pass.json wants."""
    return "rgb({}, {}, {})".format(*colour)


def hex_colour(colour: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class CardStyle:
    """A program's colours (``#rrggbb``; stored lowercase). Raises ``CardStyleError`` when a colour
    is malformed or the text or the accent would be hard to read on the background."""

    background: str = "#12355b"
    foreground: str = "#ffffff"
    accent: str = "#f2a900"

    def __post_init__(self) -> None:
        for name in ("background", "foreground", "accent"):
            colour = parse_hex_colour(getattr(self, name))
            object.__setattr__(self, name, hex_colour(colour))
        text = contrast_ratio(self.foreground_rgb, self.background_rgb)
        if text < MIN_TEXT_CONTRAST:
            raise CardStyleError(
                f"foreground {self.foreground} on background {self.background} has contrast "
                f"{text:.2f}:1; text needs at least {MIN_TEXT_CONTRAST}:1"
            )
        accent = contrast_ratio(self.accent_rgb, self.background_rgb)
        if accent < MIN_ACCENT_CONTRAST:
            raise CardStyleError(
                f"accent {self.accent} on background {self.background} has contrast "
                f"{accent:.2f}:1; it needs at least {MIN_ACCENT_CONTRAST}:1"
            )

    @property
    def background_rgb(self) -> RGB:
        return parse_hex_colour(self.background)

    @property
    def foreground_rgb(self) -> RGB:
        return parse_hex_colour(self.foreground)

    @property
    def accent_rgb(self) -> RGB:
        return parse_hex_colour(self.accent)


DEFAULT_STYLE = CardStyle()


def style_of(background: str | None, foreground: str | None, accent: str | None) -> CardStyle:
    """A program's stored colours as a style; the default where they are not all set (they
    were checked when they were set)."""
    if background is None or foreground is None or accent is None:
        return DEFAULT_STYLE
    try:
        return CardStyle(background, foreground, accent)
    except CardStyleError:
        return DEFAULT_STYLE
