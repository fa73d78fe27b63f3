"""Offset, jitter and frequency over time as an SVG drawing, from loopstats points (pure: points in, text out).

Why SVG drawn here rather than matplotlib: the plots are three line charts, which take ~150 lines of code,
while matplotlib on the SD-card image costs about 70 MB installed with what it pulls in (Debian 12:
python3-matplotlib 19 MB, its data 9 MB, numpy 26 MB, fonttools 6 MB, LAPACK 7 MB, Pillow 2 MB) and seconds
of start-up on a Pi. The SVG opens in every browser and scales without loss. ``stratum1 plot -o FILE.png``
uses matplotlib when it is installed (``apt install python3-matplotlib``) and says so when it is not.

:func:`svg` draws one panel per series (offset and jitter in microseconds, frequency in ppm) over a shared
UTC time axis, each with its own min/max-scaled y axis and a zero line where zero is in range.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from appliance.status.statsfiles import LoopPoint

WIDTH = 900
PANEL_HEIGHT = 200
LEFT, RIGHT, TOP, GAP = 80, 20, 40, 50

#: (title, unit, value of a point) for each panel.
SERIES: tuple[tuple[str, str, Callable[[LoopPoint], float]], ...] = (
    ("offset", "us", lambda p: p.offset * 1e6),
    ("jitter", "us", lambda p: p.jitter * 1e6),
    ("frequency", "ppm", lambda p: p.frequency),
)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _time_label(t: float, span: float) -> str:
    d = datetime.datetime.fromtimestamp(t, datetime.UTC)
    return d.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")


def svg(points: Sequence[LoopPoint], title: str) -> str:
    """The SVG document (see the module docstring); ``points`` in time order. An empty list says so in the drawing."""
    height = TOP + len(SERIES) * (PANEL_HEIGHT + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="24" font-size="16">{escape(title)}</text>',
    ]
    if not points:
        out.append(f'<text x="{LEFT}" y="{TOP + 40}">no loopstats lines in this span</text></svg>')
        return "\n".join(out) + "\n"
    t0, t1 = points[0].t, points[-1].t
    span = max(t1 - t0, 1.0)
    plot_w = WIDTH - LEFT - RIGHT
    for i, (name, unit, value) in enumerate(SERIES):
        y0 = TOP + i * (PANEL_HEIGHT + GAP)
        values = [value(p) for p in points]
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:
            lo, hi = lo - 1, hi + 1
        pad = (hi - lo) * 0.05
        lo, hi = lo - pad, hi + pad

        def x(t: float) -> float:
            return LEFT + (t - t0) / span * plot_w

        def y(v: float, lo: float = lo, hi: float = hi, y0: int = y0) -> float:
            return y0 + PANEL_HEIGHT - (v - lo) / (hi - lo) * PANEL_HEIGHT

        out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{LEFT}" y="{y0 - 6}">{name} ({unit})</text>')
        for v in _ticks(lo, hi):
            out.append(f'<line x1="{LEFT - 4}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        if lo < 0 < hi:
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999"/>')
        for t in _ticks(t0, t1, 6):
            out.append(
                f'<text x="{x(t):.1f}" y="{y0 + PANEL_HEIGHT + 16}" text-anchor="middle">{_time_label(t, span)}</text>'
            )
        path = " ".join(f"{x(p.t):.1f},{y(v):.1f}" for p, v in zip(points, values, strict=True))
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="1.2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
