"""``stratum1 plot``: offset, jitter and frequency over a span, from the loopstats files, to SVG (or PNG).

Reads ``statsdir/loopstats.YYYYMMDD`` for the days the span covers (and ``statsdir/loopstats`` itself when
it is a plain file, ``filegen ... type none``), keeps the lines inside the span and draws them
(:mod:`appliance.status.plot`: SVG, no dependency; PNG through matplotlib when it is installed).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import sys
import time
from collections.abc import Sequence

from appliance.status.plot import SERIES, svg
from appliance.status.statsfiles import LoopPoint, parse_loopstats
from appliance.usage import OneLineParser, number_in

DEFAULT_STATSDIR = "/var/log/stratum1"
_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def span_seconds(text: str) -> int:
    """``30m``, ``6h``, ``2d`` -> seconds (argparse type)."""
    m = _SPAN.match(text)
    if m is None or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a span such as 30m, 6h or 2d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


#: The latest --end whose day and the next are dates (9999-12-30 23:59:59 UTC).
END_MAX_S = 253_402_214_399


def end_seconds(text: str) -> float:
    """``--end``: POSIX seconds from 0 to the year 9999 (argparse type; not nan or inf)."""
    return number_in(text, 0, END_MAX_S, "a time in POSIX seconds")


def load(statsdir: str, start: float, end: float) -> list[LoopPoint]:
    """The loopstats points between ``start`` and ``end`` (POSIX seconds), in time order."""
    names = set()
    day = datetime.datetime.fromtimestamp(start, datetime.UTC).date()
    last = datetime.datetime.fromtimestamp(end, datetime.UTC).date()
    while day <= last:
        names.add(f"loopstats.{day:%Y%m%d}")
        day += datetime.timedelta(days=1)
    plain = os.path.join(statsdir, "loopstats")
    if os.path.isfile(plain) and not os.path.islink(plain):
        names.add("loopstats")
    points: list[LoopPoint] = []
    for name in sorted(names):
        try:
            with open(os.path.join(statsdir, name), encoding="ascii", errors="replace") as f:
                points.extend(p for p in parse_loopstats(f.read()) if start <= p.t <= end)
        except FileNotFoundError:
            continue
    return sorted(points, key=lambda p: p.t)


def _png(points: list[LoopPoint], title: str, path: str) -> None:
    try:  # imported by name: optional, and not on the image by default (see appliance.status.plot)
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError as e:
        raise SystemExit(
            "stratum1 plot: PNG needs matplotlib (apt install python3-matplotlib); .svg needs nothing"
        ) from e
    fig, axes = plt.subplots(len(SERIES), 1, sharex=True, figsize=(9, 7))
    times = [datetime.datetime.fromtimestamp(p.t, datetime.UTC) for p in points]
    for ax, (name, unit, value) in zip(axes, SERIES, strict=True):
        ax.plot(times, [value(p) for p in points], linewidth=0.8)
        ax.set_ylabel(f"{name} ({unit})")
        ax.grid(True, alpha=0.3)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Sequence[str]) -> int:
    p = OneLineParser(prog="stratum1 plot", description="offset, jitter, frequency from loopstats")
    p.add_argument("-o", "--output", required=True, help="FILE.svg (no dependency) or FILE.png (needs matplotlib)")
    p.add_argument("--statsdir", default=DEFAULT_STATSDIR, help=f"where the loopstats files are ({DEFAULT_STATSDIR})")
    p.add_argument("--span", type=span_seconds, default=86400, help="how far back: 30m, 6h, 1d (default 1d)")
    p.add_argument("--end", type=end_seconds, help="the span's end, POSIX seconds (default now)")
    args = p.parse_args(list(argv))
    end = args.end if args.end is not None else time.time()
    start = end - args.span
    if not os.path.isdir(args.statsdir):
        print(
            f"stratum1 plot: no directory {args.statsdir}: the daemon writes loopstats files there when ntp.conf "
            f"has 'statsdir {args.statsdir}/' and 'statistics loopstats' (docs/status.md); or give --statsdir",
            file=sys.stderr,
        )
        return 1
    points = load(args.statsdir, start, end)
    if not points:
        print(f"stratum1 plot: no loopstats lines in {args.statsdir} for that span", file=sys.stderr)
        return 1
    t0 = datetime.datetime.fromtimestamp(points[0].t, datetime.UTC)
    title = f"stratum1 loopstats from {t0:%Y-%m-%d %H:%M} UTC, {len(points)} points"
    if args.output.endswith(".png"):
        _png(points, title, args.output)
    elif args.output.endswith(".svg"):
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(svg(points, title))
    else:
        print("stratum1 plot: the output must end in .svg or .png", file=sys.stderr)
        return 2
    print(f"{args.output}: {len(points)} points", file=sys.stderr)
    return 0
