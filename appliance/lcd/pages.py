"""What the display shows: pages of text from an :class:`LcdView`, for 16x2, 20x4 and the 21x8 OLED (pure).

:class:`LcdView` is this module's own input, frozen: the facts a glance at
the box needs. It is filled from the daemon's status snapshot, or from an NTP
query of the appliance when there is none, and the host
(:mod:`appliance.lcd.view`).

The pages, in order (:func:`pages`):

=========  ======================================================
``alarm``  the alarms, first while any is on (absent otherwise)
``time``   UTC time, stratum and refid, what the time comes from
``offset`` offset and jitter
``gps``    fix and satellites (used/in view on a 16x2)
``net``    IP address and load
=========  ======================================================

:func:`render` lays a page out for a display's columns and rows: every
line exactly ``columns`` wide, exactly ``rows`` lines. Offsets are the
appliance's clock minus the reference (positive: the appliance is ahead).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
PAGE_NAMES = ("alarm", "time", "offset", "gps", "net")

#: What the time comes from, as the timekeeper names it (appliance.sources.timekeeper.Basis values).
BASIS_TEXT = {
    "gps": "Locked to GPS",
    "holdover": "Holdover: no GPS",
    "upstream": "From NTP servers",
    "local": "Local clock only",
    "unsynchronised": "Not synchronised",
}
_BASIS_SHORT = {
    "gps": "locked",
    "holdover": "holdover",
    "upstream": "NTP",
    "local": "local",
    "unsynchronised": "unsync",
}


@dataclass(frozen=True, slots=True)
class LcdView:
    """The facts the display shows; None where a fact is unknown (shown as ``--``)."""

    utc_ns: int
    stratum: int | None = None  # 1..15, 16 = unsynchronised, None = no answer
    refid: str = ""
    basis: str | None = None  # a BASIS_TEXT key
    offset_ns: int | None = None
    jitter_ns: int | None = None
    fix: str | None = None  # "3D", "2D", "none"
    satellites: int | None = None  # used in the fix
    satellites_seen: int | None = None
    ip_address: str | None = None
    load: float | None = None  # one-minute load average
    alarms: tuple[str, ...] = ()

    @property
    def synchronised(self) -> bool:
        return self.stratum is not None and 0 < self.stratum < 16 and self.basis != "unsynchronised"


@dataclass(frozen=True, slots=True)
class Layout:
    columns: int
    rows: int


LCD_16X2 = Layout(16, 2)
LCD_20X4 = Layout(20, 4)
OLED_128X64 = Layout(21, 8)


def pages(view: LcdView) -> tuple[str, ...]:
    """The page names to cycle through, the alarm page first while an alarm is on."""
    return PAGE_NAMES if view.alarms else PAGE_NAMES[1:]


def format_ns(ns: int | None, *, signed: bool = True) -> str:
    """A time difference in at most 9 characters: ``+0.012ms``, ``+123.4ms``, ``+1.25s``; ``--`` when unknown."""
    if ns is None:
        return "--"
    sign = ("+" if ns >= 0 else "-") if signed else ("" if ns >= 0 else "-")
    ms = abs(ns) / 1e6
    if ms < 100:
        return f"{sign}{ms:.3f}ms"
    if ms < 1000:
        return f"{sign}{ms:.1f}ms"
    s = ms / 1000
    return f"{sign}{s:.2f}s" if s < 100 else f"{sign}{s:.0f}s"


def _basis(view: LcdView) -> str:
    if view.stratum is None:
        return "unknown"
    if view.basis is None:
        return "unsynchronised" if not view.synchronised else "upstream" if view.stratum > 1 else "gps"
    return view.basis


def _stratum(view: LcdView) -> str:
    return "--" if view.stratum is None else str(view.stratum)


def _refid(view: LcdView) -> str:
    return view.refid[:15] if view.refid else "--"


def _fitting(width: int, *lines: str) -> str:
    """The first of ``lines`` that fits ``width`` columns whole; else the last, cut."""
    return next((line for line in lines if len(line) <= width), lines[-1])


def _stratum_line(view: LcdView, width: int = 20) -> str:
    """Stratum and refid, shortened before an address is cut (``127.100.2`` would read as another address)."""
    st, refid = _stratum(view), _refid(view)
    return _fitting(width, f"Stratum {st:<3}refid {refid}", f"Stratum {st:<3}{refid}", f"S{st} {refid}")


def _utc(view: LcdView) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(view.utc_ns // NS_PER_S, datetime.UTC)


def _time_page(view: LcdView, wide: bool) -> list[str]:
    t = _utc(view)
    basis = _basis(view)
    if not wide:
        if basis not in _BASIS_SHORT:
            return [f"{t:%H:%M:%S} UTC", "NTP: no answer"]
        st, refid, short = _stratum(view), _refid(view), _BASIS_SHORT[basis]
        # a code (PPS, LOCL) and the basis; an upstream's address alone, whole, when it fits (the stratum
        # says it is an NTP server); never an address cut short, which would read as another address
        return [f"{t:%H:%M:%S} UTC", _fitting(16, f"S{st} {refid:<4} {short}", f"S{st} {refid}", f"S{st} {short}")]
    return [
        f"{t:%Y-%m-%d %H:%M:%S}",
        _stratum_line(view),
        BASIS_TEXT.get(basis, "NTP: no answer"),
        "No alarms" if not view.alarms else f"{len(view.alarms)} alarm{'s' if len(view.alarms) > 1 else ''}",
    ]


def _offset_page(view: LcdView, wide: bool) -> list[str]:
    offset, jitter = format_ns(view.offset_ns), format_ns(view.jitter_ns, signed=False)
    if not wide:
        return [f"Offset {offset}", f"Jitter  {jitter}"]
    return [f"Offset  {offset}", f"Jitter  {jitter}", _stratum_line(view), ""]


def _gps_page(view: LcdView, wide: bool) -> list[str]:
    fix = view.fix or "--"
    used = "--" if view.satellites is None else str(view.satellites)
    seen = "--" if view.satellites_seen is None else str(view.satellites_seen)
    if not wide:
        return [f"GPS fix {fix}", f"Satellites {used}/{seen}"]  # 15 characters at most: 12/24
    return [f"GPS fix {fix}", f"Satellites used {used}", f"Satellites seen {seen}", BASIS_TEXT.get(_basis(view), "")]


def _net_page(view: LcdView, wide: bool) -> list[str]:
    ip = view.ip_address or "no address"
    load = "--" if view.load is None else f"{view.load:.2f}"
    if not wide:
        return [ip, f"Load {load}"]
    return ["IP address", ip, f"Load {load}", ""]


def _alarm_page(view: LcdView, wide: bool) -> list[str]:
    n = len(view.alarms)
    title = "ALARM" if n == 1 else f"{n} ALARMS"
    return [title, *view.alarms]


_PAGES = {"alarm": _alarm_page, "time": _time_page, "offset": _offset_page, "gps": _gps_page, "net": _net_page}


def render(name: str, view: LcdView, layout: Layout) -> tuple[str, ...]:
    """Page ``name`` of ``view`` as ``layout.rows`` lines of exactly ``layout.columns`` characters."""
    wide = layout.columns >= 20 and layout.rows >= 4
    lines = _PAGES[name](view, wide)
    if layout.rows > 4:  # the OLED: a title bar, then the 20x4 page
        lines = [f"{name.upper():-^{layout.columns}}", *lines]
    lines = [line[: layout.columns].ljust(layout.columns) for line in lines[: layout.rows]]
    return tuple(lines + [" " * layout.columns] * (layout.rows - len(lines)))
