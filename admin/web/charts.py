"""Charts drawn on the server as SVG: time series (lines, optionally the first one as an area)
and horizontal bar charts, with axes, gridlines, labels and a legend.

No script and no chart library: the page stays within its strict Content-Security-Policy
(colours are SVG presentation attributes, not style attributes) and prints as it shows. Every
chart carries a ``<title>`` and a description for screen readers; the page adds the numbers as
a table. Numbers and dates come formatted by the caller (the page's language).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

#: Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_INK: Final = "#15202b"
_MUTED: Final = "#5b6675"
_GRID: Final = "#dfe3ea"
_FONT: Final = "system-ui, -apple-system, Segoe UI, sans-serif"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[int]


def nice_ticks(low: float, high: float, count: int = 5) -> list[int]:
    """Whole gridline values 1, 2, 2.5 or 5 times a power of ten apart (at least 1) covering
    ``low..high``, zero among them."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    factors = (1, 2, 2.5, 5, 10) if power >= 10 else (1, 2, 5, 10)
    step = int(next(f * power for f in factors if f * power >= raw))
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def _attrs(**attributes: object) -> str:
    return " ".join(
        f'{name.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
        for name, value in attributes.items()
    )


def _text(x: float, y: float, content: str, **attributes: object) -> str:
    return f"<text {_attrs(x=f'{x:.1f}', y=f'{y:.1f}', **attributes)}>{escape(content)}</text>"


def _shown_labels(count: int, room: int) -> set[int]:
    """Which of ``count`` x labels fit: evenly spaced, the first and the last always (the one
    before the last goes when the last does not fall on the spacing)."""
    if count <= room:
        return set(range(count))
    step = math.ceil((count - 1) / max(room - 1, 1))
    regular = list(range(0, count, step))
    if len(regular) > 1 and regular[-1] != count - 1:
        regular.pop()
    return {*regular, count - 1}


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    number: Callable[[int], str] = str,
    area: bool = False,
    width: int = 640,
    height: int = 260,
) -> Markup:
    """Series over the same buckets (``labels``), one line each; ``area`` fills the first."""
    left, right, top, bottom = 56, 14, 34, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [value for line in series for value in line.values] or [0]
    ticks = nice_ticks(min(values), max(values))
    low, high = ticks[0], ticks[-1]
    n = len(labels)

    def x(index: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * index / (n - 1))

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f"<svg {_attrs(id=chart_id, class_='chart', viewBox=f'0 0 {width} {height}', role='img')}"
        f' aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg"'
        f' font-family="{_FONT}" font-size="12">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(_description(labels, series, number))}</desc>',
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f"<line {_attrs(x1=left, x2=width - right, y1=f'{ty:.1f}', y2=f'{ty:.1f}')}"
            f' stroke="{_GRID if tick else _MUTED}" stroke-width="1"/>'
        )
        parts.append(_text(left - 6, ty + 4, number(tick), text_anchor="end", fill=_MUTED))
    shown = _shown_labels(n, max(2, plot_w // 78))
    for index, label in enumerate(labels):
        if index in shown:
            anchor = (
                "start" if n > 1 and index == 0 else "end" if index == n - 1 and n > 1 else "middle"
            )
            parts.append(
                _text(x(index), height - bottom + 18, label, text_anchor=anchor, fill=_MUTED)
            )
            parts.append(
                f'<line x1="{x(index):.1f}" x2="{x(index):.1f}" y1="{height - bottom}"'
                f' y2="{height - bottom + 5}" stroke="{_MUTED}"/>'
            )
    for position, line in enumerate(series):
        colour = PALETTE[position % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
        if area and position == 0 and n > 1:
            base = y(max(low, 0))
            outline = f"{x(0):.1f},{base:.1f} {points} {x(n - 1):.1f},{base:.1f}"
            parts.append(
                f'<polygon class="area" points="{outline}" fill="{colour}" fill-opacity="0.15"/>'
            )
        if n == 1:
            parts.append(
                f'<circle class="series-{position}" cx="{x(0):.1f}" cy="{y(line.values[0]):.1f}"'
                f' r="4" fill="{colour}"/>'
            )
        else:
            parts.append(
                f'<polyline class="series-{position}" points="{points}" fill="none"'
                f' stroke="{colour}" stroke-width="2.2" stroke-linejoin="round"'
                f' stroke-linecap="round"/>'
            )
    parts.append(_legend(series, left, 18))
    parts.append("</svg>")
    # Every piece of text in it went through escape() or _attrs().
    return Markup("".join(parts))  # noqa: S704


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, int]],
    *,
    number: Callable[[int], str] = str,
    colours: Sequence[str] | None = None,
    width: int = 640,
    bar_height: int = 22,
) -> Markup:
    """One horizontal bar per ``(label, value)``, the value written beside it; ``colours`` (one
    per bar) say what a bar means, else all bars take the first colour of the palette."""
    label_w = min(220, 24 + 7 * max((len(label) for label, _ in bars), default=4))
    value_w = 70
    top, gap = 8, 8
    height = top * 2 + len(bars) * (bar_height + gap)
    plot_w = width - label_w - value_w
    ticks = nice_ticks(0, max((value for _, value in bars), default=0))
    high = ticks[-1] or 1
    parts = [
        f"<svg {_attrs(id=chart_id, class_='chart bars', viewBox=f'0 0 {width} {height}')}"
        f' role="img" aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg"'
        f' font-family="{_FONT}" font-size="12">',
        f'<title id="{chart_id}-title">{escape(title)}: '
        f"{escape(', '.join(f'{label} {number(value)}' for label, value in bars))}</title>",
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * (bar_height + gap)
        length = max(0.0, plot_w * value / high)
        parts.append(_text(label_w - 8, y + bar_height * 0.7, label, text_anchor="end", fill=_INK))
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{plot_w:.1f}" height="{bar_height}"'
            f' fill="{_GRID}" fill-opacity="0.45" rx="3"/>'
        )
        if length:
            parts.append(
                f'<rect class="bar" x="{label_w}" y="{y}" width="{length:.1f}"'
                f' height="{bar_height}" fill="{colours[index] if colours else PALETTE[0]}"'
                ' rx="3"/>'
            )
        parts.append(
            _text(
                label_w + plot_w + 8,
                y + bar_height * 0.7,
                number(value),
                fill=_INK,
                font_weight="600",
            )
        )
    parts.append("</svg>")
    # Every piece of text in it went through escape() or _attrs().
    return Markup("".join(parts))  # noqa: S704


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    parts = []
    for position, line in enumerate(series):
        colour = PALETTE[position % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" rx="2" fill="{colour}"/>'
        )
        parts.append(_text(x + 17, y + 1, line.name, fill=_INK))
        x += 17 + 6.8 * len(line.name) + 16
    return "".join(parts)


def _description(
    labels: Sequence[str], series: Sequence[Series], number: Callable[[int], str]
) -> str:
    """The chart in words: each series' first, last, lowest and highest value."""
    if not labels:
        return ""
    parts = []
    for line in series:
        if not line.values:
            continue
        parts.append(
            f"{line.name}: {labels[0]} {number(line.values[0])}, {labels[-1]} "
            f"{number(line.values[-1])}, min {number(min(line.values))}, "
            f"max {number(max(line.values))}"
        )
    return "; ".join(parts)
