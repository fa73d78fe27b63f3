"""Where an :class:`~appliance.lcd.pages.LcdView` comes from: today an NTP query of the appliance (pure).

The display process asks the appliance for its time over NTP on loopback
(:func:`view_from_ntp`) and reads the host's address and load itself. NTP
says stratum, refid, leap and the offset against this host's clock; it does
not say the GPS fix, the satellites or the timekeeper's basis, which the
pages then show as ``--``.

TODO(status socket): once the daemon publishes its status snapshot, add
``view_from_snapshot(snapshot, ip_address, load) -> LcdView`` here (the one
adapter) and make the runner prefer it; NTP stays the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from appliance.lcd.pages import LcdView
from appliance.ntp.exchange import Measurement

#: Offsets kept for the jitter (one per refresh).
JITTER_SAMPLES = 8
LOCAL_STRATUM = 10


def jitter_ns(offsets: Sequence[int]) -> int | None:
    """RMS of the differences between successive offsets (ns), as ntpd's jitter; None under two samples."""
    if len(offsets) < 2:
        return None
    diffs = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    return round(math.sqrt(sum(d * d for d in diffs) / len(diffs)))


def refid_label(m: Measurement) -> str:
    """The refid as ntpq shows it: a name (PPS, LOCL: four capitals or fewer, at any stratum) or an address."""
    return m.refid.rstrip(b"\0").decode("ascii") if m.refid.rstrip(b"\0").isalpha() else m.refid_text


def ntp_alarms(m: Measurement | None) -> tuple[str, ...]:
    """What an NTP reply (or its absence) says is wrong."""
    if m is None:
        return ("No answer from NTP",)
    alarms = []
    if not m.synchronised:
        alarms.append("Not synchronised")
    elif m.stratum >= LOCAL_STRATUM:
        alarms.append(f"Local clock, S{m.stratum}")
    if m.leap in (1, 2):
        alarms.append("Leap second due")
    return tuple(alarms)


def view_from_ntp(
    now_ns: int,
    m: Measurement | None,
    offsets: Sequence[int],
    *,
    ip_address: str | None,
    load: float | None,
) -> LcdView:
    """The view from one NTP reply ``m`` (None: no answer) received at ``now_ns`` (this host's clock, ns since
    the epoch) and the recent ``offsets``; the time shown is the appliance's."""
    if m is None:
        return LcdView(utc_ns=now_ns, ip_address=ip_address, load=load, alarms=ntp_alarms(None))
    if not m.synchronised:
        basis = "unsynchronised"
    elif m.stratum >= LOCAL_STRATUM:
        basis = "local"
    else:
        basis = "gps" if m.stratum == 1 else "upstream"
    return LcdView(
        utc_ns=now_ns + m.offset_ns,  # the appliance's time, not this host's clock (they differ on a soft clock)
        stratum=m.stratum,
        refid=refid_label(m),
        basis=basis,
        # exchange.py's offset is the server's clock minus ours; the page shows the appliance minus this host
        offset_ns=m.offset_ns,
        jitter_ns=jitter_ns(offsets),
        ip_address=ip_address,
        load=load,
        alarms=ntp_alarms(m),
    )
