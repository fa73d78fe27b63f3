"""A snapshot as text for people: ``stratum1 status``, ``stratum1 peers`` and the login line (pure).

- :func:`status_text`: an ntpstat-like first line ("synchronised to reference clock (NMEA(0), refid PPS)
  at stratum 1"), then the time served, the GPS (fix, satellites, PPS, NMEA delay), holdover, the
  leap-second table, clients served per second, and every alarm with what to do about it;
- :func:`peers_text`: ntpq's billboard (``ntpq -p``), one line per source, tally code first;
- :func:`health_line`: one line for the login message (update-motd).

``rate`` arguments are requests per second measured by the caller from two snapshots (:func:`rates`).
"""

from __future__ import annotations

import datetime

from appliance.status.snapshot import GpsStatus, Snapshot, SourceStatus
from appliance.timebase import NS_PER_S

_BASIS_WORDS = {
    "refclock": "reference clock",
    "holdover": "reference clock (holdover)",
    "upstream": "NTP server",
    "local": "local clock",
    "unsynchronised": "nothing",
}


def _utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "never"
    return datetime.datetime.fromtimestamp(t_ns // NS_PER_S, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _us(d_ns: float) -> str:
    return f"{d_ns / 1000:.1f} us" if abs(d_ns) < 10_000_000 else f"{d_ns / 1e6:.1f} ms"


def synchronised_line(snap: Snapshot) -> str:
    """ntpstat's first line, in the appliance's words."""
    s = snap.system
    if s.leap == 3 or s.stratum >= 16:
        return "unsynchronised"
    peer = snap.system_peer
    what = _BASIS_WORDS.get(s.basis, s.basis)
    if peer is not None and s.basis != "holdover":  # in holdover nothing steers: the peer is not the reason
        what += f" ({peer.name}" + (f", refid {peer.refid})" if peer.kind != "server" else ")")
    return f"synchronised to {what} at stratum {s.stratum}"


def leap_words(leap: int) -> str | None:
    """What a served leap indicator of 1 or 2 announces, in words (None for 0 and 3)."""
    if leap == 1:
        return "a leap second is due: 23:59:60 UTC is inserted at the end of this UTC day"
    if leap == 2:
        return "a leap second is due: 23:59:59 UTC is left out at the end of this UTC day"
    return None


def health_line(snap: Snapshot) -> str:
    """One line: OK/WARNING/CRITICAL, what is served, the worst alarm."""
    level = "OK"
    if any(a.severity == "critical" for a in snap.alarms):
        level = "CRITICAL"
    elif snap.alarms:
        level = "WARNING"
    line = f"stratum1 {level}: {synchronised_line(snap)}, estimated error {_us(snap.system.error_ns)}"
    if snap.alarms:
        worst = sorted(snap.alarms, key=lambda a: a.severity != "critical")[0]
        line += f"; {worst.message}"
    return line


def rates(old: Snapshot | None, new: Snapshot) -> dict[str, float]:
    """Requests per second by outcome between two snapshots (empty when there is no earlier one)."""
    if old is None or new.time_ns <= old.time_ns:
        return {}
    dt = (new.time_ns - old.time_ns) / NS_PER_S
    a, b = old.counters, new.counters
    return {
        "served": (b.served - a.served) / dt,
        "kod": (b.kod - a.kod) / dt,
        "rate_limited": (b.rate_limited - a.rate_limited) / dt,
        "refused": (b.refused - a.refused) / dt,
        "dropped": (b.dropped - a.dropped) / dt,
    }


def lock_break_line(previous: Snapshot | None, snap: Snapshot) -> str | None:
    """The log line for a GPS lock broken since ``previous`` (the receiver's seconds jumped), or None."""
    old = previous.gps if previous is not None else None
    new = snap.gps
    if new is None or old is None or new.lock_breaks <= old.lock_breaks:
        return None
    n = new.lock_breaks - old.lock_breaks
    what = "the lock broke" if n == 1 else f"the lock broke {n} times"
    return (
        f"GPS: its seconds jumped (an epoch that does not follow on from the last): {what}, "
        f"{new.lock_breaks} since the start; pulses are numbered again once its seconds follow on"
    )


def receiver_words(g: GpsStatus) -> str | None:
    """Why the receiver is not heard (its serial link), in a few words; None while it talks NMEA."""
    device = g.device or "its port"
    rate = f" at {g.baud} baud" if g.baud is not None else ""
    if g.link == "gone":
        return f"receiver gone ({device}: {g.link_why})" if g.link_why else f"receiver gone ({device})"
    if g.link == "silent":
        return f"receiver silent (no bytes on {device}{rate})"
    if g.link == "unknown-rate":
        searching = ", searching the rate" if g.searching else ""
        return f"receiver talks at an unknown rate (no NMEA on {device}{rate}{searching})"
    return None


#: The counts ``stratum1 status`` shows when they are not zero: what was dropped, repaired, or went wrong.
SHOWN_COUNTS = (
    "bad_checksum",
    "no_checksum",
    "truncated",
    "too_long",
    "decode_error",
    "garbage_bytes",
    "undated_epochs",
    "rollover_repaired",
    "rollover_refused",
    "losses",
    "open_failures",
    "baud_switches",
    "baud_searches",
)


def counts_line(g: GpsStatus) -> str:
    """The decoder's and the serial port's counts that are not zero, by name ("" when all are)."""
    shown = [f"{name} {getattr(g.counters, name)}" for name in SHOWN_COUNTS if getattr(g.counters, name)]
    return f"counts: {', '.join(shown)}" if shown else ""


def leap_jump_line(previous: Snapshot | None, snap: Snapshot) -> str | None:
    """The log line for a leap second the receiver took and the clock did not (since ``previous``), or None."""
    old = previous.gps.leap_jumps if previous is not None and previous.gps is not None else 0
    new = snap.gps.leap_jumps if snap.gps is not None else 0
    if new <= old:
        return None
    return (
        "GPS: the receiver's UTC moved by a leap second at midnight that the clock did not take (the leap-second "
        "file had not announced it): the lock holds and the clock is corrected by that second now; install a "
        "current leap-seconds.list (tzdata) so that the next one is served on time"
    )


def rollover_line(previous: Snapshot | None, snap: Snapshot) -> str | None:
    """The log line for the first GPS week-rollover repair (counted since ``previous``), or None."""
    old = previous.gps.counters.rollover_repaired if previous is not None and previous.gps is not None else 0
    new = snap.gps.counters.rollover_repaired if snap.gps is not None else 0
    if old or not new:
        return None
    return (
        "GPS: the receiver has the GPS week rollover bug (its dates are whole 1024-week cycles behind); its dates are "
        "repaired ('stratum1 status' counts them: rollover_repaired)"
    )


def status_text(snap: Snapshot, rate: dict[str, float] | None = None) -> str:
    """``stratum1 status`` (see the module docstring)."""
    s = snap.system
    lines = [synchronised_line(snap)]
    if s.leap != 3:
        bound = s.root_delay_ns / 2 + s.root_dispersion_ns
        lines.append(f"   time correct to within {_us(bound)} (root distance); estimated error {_us(s.error_ns)}")
        lines.append(f"   polling every {1 << s.poll} s")
    lines.append(
        f"served:    stratum {s.stratum}, refid {s.refid}, leap {s.leap}, basis {s.basis},"
        f" reference {_utc(s.reference_ns)}"
    )
    lines.append(
        f"clock:     offset {_us(s.offset_ns)}, frequency {s.frequency_ppb / 1000:+.3f} ppm"
        f" (+/- {s.frequency_sd_ppb / 1000:.3f}), jitter {_us(s.clock_jitter_ns)}, loop {s.discipline}"
    )
    g = snap.gps
    if g is not None:
        sats = "?" if g.satellites_used is None or not g.fix else str(g.satellites_used)
        view = "?" if g.satellites_in_view is None else str(g.satellites_in_view)
        delay = "unknown" if g.nmea_delay_ns is None else f"{g.nmea_delay_ns / 1e6:.0f} ms"
        heard = receiver_words(g)
        told = f"fix {g.fix_mode if g.fix else 'none'}, satellites {sats} used / {view} in view"
        lines.append(
            f"gps:       {told if heard is None else heard},"
            f" PPS {'ok' if g.pps else 'missing'}, {'locked' if g.locked else 'not locked'}, NMEA delay {delay}"
        )
        breaks = f", {g.lock_breaks} lock breaks (its seconds jumped)" if g.lock_breaks else ""
        lines.append(
            f"           last fix {_utc(g.last_fix_ns)}, pulses {g.pulses} ({g.pulses_unpaired} unpaired){breaks}"
        )
        counts = counts_line(g)
        if counts:
            lines.append(f"           {counts}")
    if s.basis == "holdover":
        lines.append(f"holdover:  estimated error {_us(s.error_ns)} and growing")
    if snap.leap is not None:
        lines.append(
            f"leap:      TAI-UTC {snap.leap.tai_offset_s} s, table {snap.leap.path},"
            f" expires {_utc(snap.leap.expires_ns)}"
        )
    due = leap_words(s.leap)
    if due:
        lines.append(f"{'leap:' if snap.leap is None else '':<11}{due}")
    c = snap.counters
    per_s = f" ({c.served_per_s:.1f}/s served)"
    if rate:
        per_s = f" ({rate['served']:.1f}/s served, {rate['kod'] + rate['rate_limited']:.1f}/s limited)"
    lines.append(
        f"clients:   {c.served} served, {c.kod} KoD, {c.rate_limited} rate limited, {c.refused} refused,"
        f" {c.dropped} dropped{per_s}"
    )
    if c.authenticated or c.crypto_nak:
        lines.append(f"           {c.authenticated} signed with a key, {c.crypto_nak} crypto-NAK (a key not trusted)")
    if c.interleaved:
        lines.append(f"           {c.interleaved} in interleaved mode (clients with xleave)")
    if c.queue_drops:
        lines.append(f"           {c.queue_drops} lost in the kernel's receive queue (more than it can answer)")
    up = (snap.time_ns - snap.started_ns) // NS_PER_S
    clock = f"{up % 86400 // 3600:02d}:{up % 3600 // 60:02d}:{up % 60:02d}"
    lines.append(f"uptime:    {up // 86400}d {clock}, {snap.version}")
    if snap.alarms:
        lines.append("alarms:")
        for a in snap.alarms:
            lines.append(f"  {a.severity.upper()} {a.code}: {a.message}")
            lines.append(f"      what to do: {a.action}")
    else:
        lines.append("alarms:    none")
    return "\n".join(lines) + "\n"


PEERS_HEADER = (
    "     remote           refid      st t when poll reach   delay   offset   jitter\n"
    "==============================================================================="
)


def _when(s: SourceStatus, now_ns: int) -> str:
    if s.updated_ns is None:
        return "-"
    age = max(0, (now_ns - s.updated_ns) // NS_PER_S)
    if age < 2048:
        return str(age)
    if age < 2048 * 60:
        return f"{age // 60}m"
    return f"{age // 3600}h"


def peer_line(s: SourceStatus, now_ns: int) -> str:
    """One billboard line, as ntpq -p prints it (delay, offset, jitter in ms)."""
    refid = s.refid if s.kind == "server" and s.stratum > 1 else f".{s.refid}."
    kind = "u" if s.kind == "server" else "l"
    return (
        f"{s.tally}{s.name[:15]:<15} {refid[:15]:<15} {s.stratum:>2} {kind} {_when(s, now_ns):>4} {1 << s.poll:>4}"
        f"  {s.reach:>3o} {s.delay_ns / 1e6:>8.4f} {s.offset_ns / 1e6:>8.4f} {s.jitter_ns / 1e6:>8.4f}"
    )


def peers_text(snap: Snapshot) -> str:
    """``stratum1 peers``: the billboard, and why each unusable source is not used."""
    lines = [PEERS_HEADER]
    notes = []
    for s in snap.sources:
        lines.append(peer_line(s, snap.time_ns))
        if s.why:
            notes.append(f"  {s.name}: {s.why}")
    if notes:
        lines.append("not usable:")
        lines.extend(notes)
    return "\n".join(lines) + "\n"
