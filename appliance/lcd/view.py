"""Where an :class:`~appliance.lcd.pages.LcdView` comes from: the status snapshot, mode 6, or NTP (pure).

Three ways, best first; the display process takes the first that answers, and reads the host's address
and load itself:

1. the daemon's status snapshot from its status socket (:func:`view_from_snapshot`: stratum, refid, the
   timekeeper's basis with holdover, the discipline's offset and jitter, the GPS fix and satellites, the
   alarms), when this user may read the socket (group ``stratum1``: ``stratum1 lcd`` run by hand);
2. mode 6 on loopback, what ``ntpq -c rv`` and ``ntpq -c cv`` read (:func:`view_from_mode6`): stratum,
   refid, leap, the appliance's clock, offset and jitter, the system status word's clock source and the
   system peer (so the basis, holdover included: a satellite source with no system peer is the clock
   running on alone), and the GPS clock's fix, satellites and PPS. This is how the shipped unit reads, as a
   user in groups i2c and gpio alone: the shipped ``restrict 127.0.0.1`` answers mode 6 to any local
   process. The alarms are the ones these variables show (not synchronised, holdover, local clock, the
   receiver gone, silent or at an unknown rate, no fix, no PPS); the leap-file and falseticker alarms are
   the status socket's alone;
3. NTP on loopback (:func:`view_from_ntp`): stratum, refid, leap and the offset against this host's
   clock; not the GPS fix, the satellites or the basis, which the pages then show as ``--``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from appliance.lcd.pages import LcdView
from appliance.ntp.exchange import Measurement
from appliance.ntp.mode6client import ntp_time_ns
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
        return ("NTP: no answer",)
    alarms = []
    if not m.synchronised:
        alarms.append("Not synchronised")
    elif m.stratum >= LOCAL_STRATUM:
        alarms.append(f"Local clock, S{m.stratum}")
    if m.leap in (1, 2):
        alarms.append(LEAP_DUE)
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
#: What the pages say while a leap second is due (the served leap indicator 1 or 2), whichever way they read.
LEAP_DUE = "Leap second due"
#: Alarms in the few words a display line holds (the alarm's code; the message when the code is not here).
_ALARM_WORDS = {
    "unsynchronised": "Not synchronised",
    "holdover": "Holdover: no GPS",
    "local-clock": "Local clock only",
    "gps-no-fix": "GPS: no fix",
    "gps-gone": "GPS: device gone",
    "gps-silent": "GPS: silent",
    "gps-unknown-rate": "GPS: wrong baud",
    "gps-unselected": "GPS: mode bits",
    "pps-missing": "GPS: no PPS",
    "gps-not-locked": "GPS: locking",
    "falseticker": "A falseticker",
    "leapfile-expiry": "Leapfile expired",
}


def view_from_snapshot(snap: Snapshot, *, ip_address: str | None = None, load: float | None = None) -> LcdView:
    """The view from one status snapshot: the time it was taken, the served stratum and refid, the basis
    (``holdover`` included), the clock's offset and jitter, the GPS fix and satellites, the alarms.

    The offset is the snapshot's, reference minus local, with the sign ``stratum1 status``, the web page,
    the exporter and ntpq give it (+: the appliance's clock is behind). The jitter is the discipline's
    (what ``stratum1 status`` calls the clock's jitter).
    """
    s = snap.system
    unsynchronised = s.leap == 3 or s.stratum >= 16
    basis = "unsynchronised" if unsynchronised else _SNAPSHOT_BASIS.get(s.basis, s.basis)
    g = snap.gps
    heard = g is not None and g.link == "talking"  # a receiver not heard has no fix we know of: "--"
    fix = None if g is None or not heard else _FIX.get(g.fix_mode, "none") if g.fix else "none"
    return LcdView(
        utc_ns=snap.time_ns,
        stratum=s.stratum,
        refid=s.refid,
        basis=basis,
        offset_ns=None if unsynchronised else s.offset_ns,
        jitter_ns=None if unsynchronised else s.clock_jitter_ns,
        fix=fix,
        satellites=None if g is None or not g.fix or not heard else g.satellites_used,
        satellites_seen=None if g is None or not heard else g.satellites_in_view,
        ip_address=ip_address,
        load=load,
        alarms=tuple(_ALARM_WORDS.get(a.code, a.message) for a in snap.alarms)
        + ((LEAP_DUE,) if s.leap in (1, 2) else ()),
    )


#: The system status word's clock source (RFC 9327 section 2.1, as appliance.ntp.mode6 sets it) as a basis.
_MODE6_SOURCES = {1: "gps", 4: "gps", 5: "local", 6: "upstream"}


def view_from_mode6(
    system: dict[str, str],
    status_word: int,
    clock: dict[str, str] | None,
    *,
    now_ns: int,
    ip_address: str | None = None,
    load: float | None = None,
) -> LcdView:
    """The view from mode 6: the system variables and status word (READVAR 0), the clock's (READCLOCK 0).

    ``now_ns`` (this host's clock) chooses the NTP era of the appliance's ``clock`` variable and stands in
    when there is none. ``offset`` is reference minus local in ms, as ntpd's, and the pages show it so (the
    sign of ``stratum1 status`` and ntpq). A satellite clock source with no system peer (``peer=0``) is
    holdover: the timekeeper serves its own clock on, as mode6.py encodes it.
    """
    leap, stratum = _int(system.get("leap")), _int(system.get("stratum"))
    unsynchronised = leap == 3 or stratum is None or stratum >= 16
    source = (status_word >> 8) & 0x3F
    basis = "unsynchronised" if unsynchronised else _MODE6_SOURCES.get(source)
    if basis == "gps" and _int(system.get("peer")) == 0:
        basis = "holdover"
    offset_ms, jitter_ms = _float(system.get("offset")), _float(system.get("clk_jitter"))
    g = clock if clock is not None and "satellites" in clock else None  # a GPS clock (cv adds these)
    fix = None
    used = seen = None
    pps: bool | None = None
    if g is not None:
        fix = {"three_d": "3D", "two_d": "2D"}.get(g.get("fix", ""), "none")
        used, seen = _int(g.get("satellites")), _int(g.get("satellites_in_view"))
        used = None if used is None or used < 0 or fix == "none" else used
        seen = None if seen is None or seen < 0 else seen
        pps = g.get("pps") == "1"
        link = g.get("receiver", "talking")  # an older daemon does not say: taken as heard
        if link != "talking":  # not heard: its fix is unknown, and the alarm says why
            fix, used, seen = None, None, None
    alarms = []
    if unsynchronised:
        alarms.append(_ALARM_WORDS["unsynchronised"])
    elif basis == "holdover":
        alarms.append(_ALARM_WORDS["holdover"])
    elif basis == "local":
        alarms.append(_ALARM_WORDS["local-clock"])
    if g is not None and f"gps-{link}" in _ALARM_WORDS:
        alarms.append(_ALARM_WORDS[f"gps-{link}"])
    elif fix == "none":
        alarms.append(_ALARM_WORDS["gps-no-fix"])
    elif g is not None and not pps:
        alarms.append(_ALARM_WORDS["pps-missing"])
    elif g is not None and g.get("locked") == "0":
        alarms.append(_ALARM_WORDS["gps-not-locked"])
    if leap in (1, 2):
        alarms.append(LEAP_DUE)  # as view_from_ntp says it
    return LcdView(
        utc_ns=ntp_time_ns(system.get("clock", ""), now_ns) or now_ns,
        stratum=stratum,
        refid=system.get("refid", ""),
        basis=basis,
        offset_ns=None if unsynchronised or offset_ms is None else round(offset_ms * 1e6),
        jitter_ns=None if unsynchronised or jitter_ms is None else round(jitter_ms * 1e6),
        fix=fix,
        satellites=used,
        satellites_seen=seen,
        ip_address=ip_address,
        load=load,
        alarms=tuple(alarms),
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text or "", 10)
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None
