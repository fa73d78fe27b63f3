"""What the serial port hears of the receiver, and what that means (pure: the time is passed in).

Before a receiver can say it has no fix it must be heard. The serial driver
(:class:`appliance.io.serial.SerialGps`) describes its port as a
:class:`SerialLink` (open or not and why, the rate, when bytes and when NMEA
lines last arrived); :func:`link_state` turns that into one of four words,
so that status says what is true:

- ``gone``: the port is closed: the device vanished (a USB receiver
  unplugged) or cannot be opened; the driver retries it;
- ``silent``: the port is open and no byte has come for :data:`QUIET_NS`
  (no power to the receiver, its TX wire, the wrong UART);
- ``unknown-rate``: bytes come but no NMEA line is recognised among them
  for :data:`QUIET_NS`: the receiver talks at another rate than the port's
  (a wrong rate reads as noise), or ``baud auto`` is still searching;
- ``talking``: NMEA lines arrive (or the port was opened less than
  :data:`QUIET_NS` ago): only now does "no fix" mean the receiver says so.

>>> link = SerialLink("/dev/serial0", is_open=True, baud=9600, opened_ns=0, bytes_ns=9 * 10**9, nmea_ns=2 * 10**9)
>>> link_state(link, 10 * 10**9).value
'unknown-rate'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.nmea.counters import NmeaCounters
from appliance.timebase import NS_PER_S

#: How long without a byte (silent), or without an NMEA line (unknown rate), before the link is judged so.
QUIET_NS = 5 * NS_PER_S


class LinkState(enum.Enum):
    TALKING = "talking"
    GONE = "gone"
    SILENT = "silent"
    UNKNOWN_RATE = "unknown-rate"


@dataclass(frozen=True, slots=True)
class SerialLink:
    """A receiver's serial port as its driver sees it; times are local ns on the clock's scale now (None: never).

    ``baud`` is the port's rate (with ``baud auto``, the one being tried while ``searching``); ``opened_ns``
    when the port was last opened; ``bytes_ns`` when bytes last arrived; ``nmea_ns`` when a chunk last
    brought a recognised NMEA line; ``closed_why`` why a closed port is closed (the loss or the open error).
    ``nmea`` is the decoder's counts; ``losses`` (the port failed while open), ``open_failures``,
    ``baud_switches`` (rates tried) and ``baud_searches`` (a locked rate went quiet) the driver's.
    """

    path: str
    is_open: bool
    baud: int
    autobaud: bool = False
    searching: bool = False
    opened_ns: int | None = None
    bytes_ns: int | None = None
    nmea_ns: int | None = None
    closed_why: str = ""
    nmea: NmeaCounters = NmeaCounters()
    losses: int = 0
    open_failures: int = 0
    baud_switches: int = 0
    baud_searches: int = 0


def link_state(link: SerialLink, now_ns: int) -> LinkState:
    """What ``link`` means at ``now_ns`` (see the module docstring)."""
    if not link.is_open:
        return LinkState.GONE
    opened = link.opened_ns if link.opened_ns is not None else now_ns
    if now_ns - _latest(opened, link.bytes_ns) >= QUIET_NS:
        return LinkState.SILENT
    if now_ns - _latest(opened, link.nmea_ns) >= QUIET_NS:
        return LinkState.UNKNOWN_RATE
    return LinkState.TALKING


def _latest(opened_ns: int, t_ns: int | None) -> int:
    return opened_ns if t_ns is None else max(opened_ns, t_ns)
