"""Where an :class:`~appliance.lcd.pages.LcdView` comes from: the status snapshot, else an NTP query (pure).

The display process reads the daemon's status snapshot from its status
socket (:func:`view_from_snapshot`: stratum, refid, the timekeeper's basis
with holdover, the discipline's offset and jitter, the GPS fix and
satellites, the alarms) and reads the host's address and load itself. When
the socket is not there (the daemon runs without one, or this user may not
read it) it asks the appliance for its time over NTP on loopback
(:func:`view_from_ntp`): NTP says stratum, refid, leap and the offset
against this host's clock; it does not say the GPS fix, the satellites or
the basis, which the pages then show as ``--``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from appliance.lcd.pages import LcdView
from appliance.ntp.exchange import Measurement
from appliance.status.snapshot import Snapshot

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


#: The snapshot's basis (appliance.sources.timekeeper.Basis values) as the pages name it.
_SNAPSHOT_BASIS = {"refclock": "gps"}
#: The fix as the pages show it, from :class:`~appliance.status.snapshot.GpsStatus` ``fix_mode``.
_FIX = {"three_d": "3D", "two_d": "2D"}
#: Alarms in the few words a display line holds (the alarm's code; the message when the code is not here).
_ALARM_WORDS = {
    "unsynchronised": "Not synchronised",
    "holdover": "GPS lost: holdover",
    "local-clock": "Local clock only",
    "gps-no-fix": "GPS: no fix",
    "pps-missing": "GPS: no PPS",
    "falseticker": "A falseticker",
    "leapfile-expiry": "Leap file expired",
}


def view_from_snapshot(snap: Snapshot, *, ip_address: str | None = None, load: float | None = None) -> LcdView:
    """The view from one status snapshot: the time it was taken, the served stratum and refid, the basis
    (``holdover`` included), the clock's offset and jitter, the GPS fix and satellites, the alarms.

    The snapshot's offset is reference minus local; the pages show the appliance minus the reference, so
    the sign turns. The jitter is the discipline's (what ``stratum1 status`` calls the clock's jitter).
    """
    s = snap.system
    unsynchronised = s.leap == 3 or s.stratum >= 16
    basis = "unsynchronised" if unsynchronised else _SNAPSHOT_BASIS.get(s.basis, s.basis)
    g = snap.gps
    fix = None if g is None else _FIX.get(g.fix_mode, "none") if g.fix else "none"
    return LcdView(
        utc_ns=snap.time_ns,
        stratum=s.stratum,
        refid=s.refid,
        basis=basis,
        offset_ns=None if unsynchronised else -s.offset_ns,
        jitter_ns=None if unsynchronised else s.clock_jitter_ns,
        fix=fix,
        satellites=None if g is None or not g.fix else g.satellites_used,
        satellites_seen=None if g is None else g.satellites_in_view,
        ip_address=ip_address,
        load=load,
        alarms=tuple(_ALARM_WORDS.get(a.code, a.message) for a in snap.alarms),
    )
