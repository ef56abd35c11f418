"""Programme colours: #rrggbb only, and legible (WCAG 2 contrast) on the card."""

from __future__ import annotations

import pytest

from loyalty.domain.card_style import (
    BLACK,
    DEFAULT_STYLE,
    WHITE,
    CardStyle,
    CardStyleError,
    contrast_ratio,
    css_rgb,
    parse_hex_colour,
)

pytestmark = pytest.mark.unit


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio(BLACK, WHITE) == pytest.approx(21)
    assert contrast_ratio(WHITE, WHITE) == pytest.approx(1)
    assert contrast_ratio((0x76, 0x76, 0x76), WHITE) == pytest.approx(4.54, abs=0.01)


def test_colours_are_normalised_and_converted() -> None:
    style = CardStyle(background="#7A2E0E", foreground="#FFFFFF", accent="#F6C343")
    assert (style.background, style.foreground, style.accent) == ("#7a2e0e", "#ffffff", "#f6c343")
    assert style.background_rgb == (122, 46, 14)
    assert css_rgb(style.accent_rgb) == "rgb(246, 195, 67)"
    assert contrast_ratio(DEFAULT_STYLE.foreground_rgb, DEFAULT_STYLE.background_rgb) >= 4.5


@pytest.mark.parametrize("value", ["#fff", "7a2e0e", "#7a2e0g", "red", "#7a2e0e ", ""])
def test_malformed_colours_are_refused(value: str) -> None:
    with pytest.raises(CardStyleError, match="#rrggbb"):
        parse_hex_colour(value)
    with pytest.raises(CardStyleError):
        CardStyle(background=value)


def test_illegible_combinations_are_refused() -> None:
    with pytest.raises(CardStyleError, match=r"text needs at least 4\.5:1"):
        CardStyle(background="#f39200", foreground="#ffffff", accent="#000000")
    with pytest.raises(CardStyleError, match="accent"):
        CardStyle(background="#12355b", foreground="#ffffff", accent="#1f4f80")
