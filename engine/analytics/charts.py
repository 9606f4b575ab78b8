"""Charts drawn with fpdf2's own rectangles and lines: no browser, no image files.

    stacked_bars(pdf, x, y, w, h, labels, {"critical": [...], "high": [...]}, colours)
    lines(pdf, x, y, w, h, labels, {"MTTA": [...], "MTTR": [...]}, colours)

Axes start at zero; the top of the value axis is a "nice" number (1, 2 or 5 × 10^k) above the
largest value, with four grid lines. Labels of the category axis are thinned to fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from fpdf import FPDF

Colour = tuple[int, int, int]
PALETTE: dict[str, Colour] = {
    "critical": (192, 57, 43),
    "high": (230, 126, 34),
    "medium": (241, 196, 15),
    "low": (52, 152, 219),
    "info": (149, 165, 166),
}
SERIES: list[Colour] = [(41, 128, 185), (192, 57, 43), (39, 174, 96), (142, 68, 173)]
GRID: Colour = (220, 220, 220)
TEXT: Colour = (90, 90, 90)


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def _axes(
    pdf: FPDF, x: float, y: float, w: float, h: float, top: float, fmt: Callable[[float], str]
) -> None:
    pdf.set_font(size=6)
    pdf.set_text_color(*TEXT)
    for i in range(5):
        gy = y + h - h * i / 4
        pdf.set_draw_color(*GRID)
        pdf.line(x, gy, x + w, gy)
        pdf.set_xy(x - 14, gy - 1.5)
        pdf.cell(13, 3, fmt(top * i / 4), align="R")
    pdf.set_draw_color(*TEXT)
    pdf.line(x, y + h, x + w, y + h)


def _labels(pdf: FPDF, x: float, y: float, slot: float, labels: Sequence[str]) -> None:
    every = max(1, math.ceil(len(labels) * 12 / max(1.0, slot * len(labels))))
    pdf.set_font(size=6)
    for i, label in enumerate(labels):
        if i % every == 0:
            pdf.set_xy(x + i * slot, y + 1)
            pdf.cell(slot * every, 3, label)


def legend(pdf: FPDF, x: float, y: float, names: Sequence[str], colours: Sequence[Colour]) -> None:
    pdf.set_font(size=7)
    for name, colour in zip(names, colours, strict=True):
        pdf.set_fill_color(*colour)
        pdf.rect(x, y + 0.8, 3, 3, style="F")
        pdf.set_xy(x + 4, y)
        pdf.cell(pdf.get_string_width(name) + 2, 4.5, name)
        x += pdf.get_string_width(name) + 9


def stacked_bars(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    h: float,
    labels: Sequence[str],
    stacks: dict[str, Sequence[float]],
    colours: dict[str, Colour] | None = None,
) -> None:
    colours = colours or PALETTE
    n = len(labels)
    totals = [sum(s[i] for s in stacks.values()) for i in range(n)]
    top = nice_top(max(totals, default=0))
    _axes(pdf, x, y, w, h, top, lambda v: f"{v:g}")
    if n == 0:
        return
    slot = w / n
    bar = slot * 0.75
    for i in range(n):
        base = y + h
        for name, values in stacks.items():
            height = h * values[i] / top
            if height > 0:
                pdf.set_fill_color(*colours.get(name, SERIES[0]))
                pdf.rect(x + i * slot + (slot - bar) / 2, base - height, bar, height, style="F")
                base -= height
    _labels(pdf, x, y + h, slot, labels)
    names = [k for k in stacks if any(stacks[k])]
    legend(pdf, x, y - 6, names, [colours.get(k, SERIES[0]) for k in names])


def lines(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    h: float,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> None:
    values = [v for s in series.values() for v in s if v is not None]
    top = nice_top(max(values, default=0))
    _axes(pdf, x, y, w, h, top, fmt)
    n = len(labels)
    if n == 0:
        return
    slot = w / n
    colours = SERIES[: len(series)]
    pdf.set_line_width(0.5)
    for colour, points in zip(colours, series.values(), strict=False):
        pdf.set_draw_color(*colour)
        pdf.set_fill_color(*colour)
        last: tuple[float, float] | None = None
        for i, v in enumerate(points):
            if v is None:
                last = None
                continue
            px, py = x + (i + 0.5) * slot, y + h - h * v / top
            if last is not None:
                pdf.line(last[0], last[1], px, py)
            pdf.ellipse(px - 0.6, py - 0.6, 1.2, 1.2, style="F")
            last = (px, py)
    pdf.set_line_width(0.2)
    _labels(pdf, x, y + h, slot, labels)
    legend(pdf, x, y - 6, list(series), colours)
