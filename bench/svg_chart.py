"""A line chart as a standalone SVG file, written by hand: the bench needs no plotting library.

One x axis (logarithmic by default: group sizes 10, 100, 1,000), one y axis from zero, one
polyline per series with a marker at each point, and a legend on the right. A point whose
value is NaN is not drawn, and the line breaks there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 420
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 210, 40, 56
FONT = "font-family='sans-serif' font-size='12'"


@dataclass(frozen=True)
class Series:
    """One line: its legend label, its points ``(x, y)``, its colour and dash pattern."""

    label: str
    points: tuple[tuple[float, float], ...]
    color: str
    dash: str = ""  # an SVG stroke-dasharray, "" for a solid line


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 4, 5, 6, 8 × 10^k that is at least ``value`` (1 for nothing)."""
    if not value > 0 or math.isinf(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 8.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10.0 * power


# Intervals for a top of 1, 2, 2.5, 4, 5, 6 or 8 times 10^k, so every tick is a round number.
_INTERVALS = {1.0: 5, 2.0: 4, 2.5: 5, 4.0: 4, 5.0: 5, 6.0: 6, 8.0: 4}


def y_ticks(top: float) -> list[float]:
    """Round, evenly spaced ticks from 0 to ``top`` (a value of :func:`nice_ceiling`)."""
    leading = round(top / 10.0 ** math.floor(math.log10(top)), 6)
    count = _INTERVALS.get(leading, 5)
    return [top * i / count for i in range(count + 1)]


def _tick_label(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:g}"


class _Axes:
    """Maps data to pixels inside the plot area."""

    def __init__(self, x_ticks: Sequence[float], y_top: float, log_x: bool) -> None:
        self.log_x = log_x
        self.x_lo, self.x_hi = self._x(min(x_ticks)), self._x(max(x_ticks))
        self.y_top = y_top
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def _x(self, x: float) -> float:
        return math.log10(x) if self.log_x else x

    def px(self, x: float) -> float:
        span = self.x_hi - self.x_lo
        share = (self._x(x) - self.x_lo) / span if span else 0.5
        pad = 24  # keep the first and last points off the axes
        return self.left + pad + share * (self.right - self.left - 2 * pad)

    def py(self, y: float) -> float:
        return self.bottom - y / self.y_top * (self.bottom - self.top)


def _segments(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive drawable points: a NaN value breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isnan(y):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[float],
    log_x: bool = True,
) -> str:
    """The whole SVG document."""
    values = [y for s in series for _, y in s.points if not math.isnan(y)]
    axes = _Axes(x_ticks, nice_ceiling(max(values, default=0.0)), log_x)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}'>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
        f"<text x='{WIDTH / 2 - MARGIN_RIGHT / 2:.0f}' y='22' text-anchor='middle' "
        f"font-family='sans-serif' font-size='14' font-weight='bold'>{escape(title)}</text>",
    ]
    for tick in y_ticks(axes.y_top):
        y = axes.py(tick)
        out.append(
            f"<line x1='{axes.left}' y1='{y:.1f}' x2='{axes.right}' y2='{y:.1f}' stroke='#e4e4e4'/>"
        )
        out.append(
            f"<text x='{axes.left - 6}' y='{y + 4:.1f}' text-anchor='end' {FONT}>"
            f"{_tick_label(tick)}</text>"
        )
    for tick in x_ticks:
        x = axes.px(tick)
        out.append(
            f"<line x1='{x:.1f}' y1='{axes.bottom}' x2='{x:.1f}' y2='{axes.bottom + 5}' "
            "stroke='black'/>"
        )
        out.append(
            f"<text x='{x:.1f}' y='{axes.bottom + 19}' text-anchor='middle' {FONT}>"
            f"{_tick_label(tick)}</text>"
        )
    out += [
        f"<line x1='{axes.left}' y1='{axes.bottom}' x2='{axes.right}' y2='{axes.bottom}' "
        "stroke='black'/>",
        f"<line x1='{axes.left}' y1='{axes.top}' x2='{axes.left}' y2='{axes.bottom}' "
        "stroke='black'/>",
        f"<text x='{(axes.left + axes.right) / 2:.0f}' y='{HEIGHT - 14}' "
        f"text-anchor='middle' {FONT}>{escape(x_label)}</text>",
        f"<text x='16' y='{(axes.top + axes.bottom) / 2:.0f}' text-anchor='middle' {FONT} "
        f"transform='rotate(-90 16 {(axes.top + axes.bottom) / 2:.0f})'>{escape(y_label)}</text>",
    ]
    for index, one in enumerate(series):
        out += _series(one, axes)
        out += _legend_entry(one, index)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _series(one: Series, axes: _Axes) -> list[str]:
    dash = f" stroke-dasharray='{one.dash}'" if one.dash else ""
    out = []
    for run in _segments(one.points):
        path = " ".join(f"{axes.px(x):.1f},{axes.py(y):.1f}" for x, y in run)
        out.append(
            f"<polyline points='{path}' fill='none' stroke='{one.color}' stroke-width='2'{dash}/>"
        )
        out += [
            f"<circle cx='{axes.px(x):.1f}' cy='{axes.py(y):.1f}' r='3.5' fill='{one.color}'>"
            f"<title>{escape(one.label)}: {y:.2f}</title></circle>"
            for x, y in run
        ]
    return out


def _legend_entry(one: Series, index: int) -> list[str]:
    x, y = WIDTH - MARGIN_RIGHT + 20, MARGIN_TOP + 8 + 20 * index
    dash = f" stroke-dasharray='{one.dash}'" if one.dash else ""
    return [
        f"<line x1='{x}' y1='{y}' x2='{x + 28}' y2='{y}' stroke='{one.color}' "
        f"stroke-width='2'{dash}/>",
        f"<circle cx='{x + 14}' cy='{y}' r='3.5' fill='{one.color}'/>",
        f"<text x='{x + 36}' y='{y + 4}' {FONT}>{escape(one.label)}</text>",
    ]
