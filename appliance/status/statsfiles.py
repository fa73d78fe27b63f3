"""ntpd's statistics files from snapshots: loopstats, peerstats, clockstats (pure: lines in, lines out).

Every line starts with the Modified Julian Day and the seconds past UTC midnight (three decimals), as ntpd
writes them, so existing scripts (``ntpviz``, awk one-liners, gnuplot recipes) read them unchanged:

- ``loopstats``: ``MJD SECS OFFSET(s) FREQ(ppm) JITTER(s) WANDER(ppm) TC`` -- the clock discipline:
  offset, frequency correction, clock jitter, frequency wander (its 1-sigma uncertainty here), poll exponent;
- ``peerstats``: ``MJD SECS ADDRESS STATUS OFFSET(s) DELAY(s) DISPERSION(s) JITTER(s)`` -- one source's
  filter output; STATUS is the peer status word in hex (as mode 6 gives it);
- ``clockstats``: ``MJD SECS ADDRESS TIMECODE`` -- a reference clock's last reading; for the GPS the
  timecode is ``fix MODE sats N/M pps 0|1 locked 0|1 nmea_delay S`` (ntpd writes the driver's raw sentence).

:class:`StatsPlan` decides, snapshot by snapshot, which lines are due: a ``loopstats`` line and each
source's ``peerstats`` and ``clockstats`` line once per its poll interval, and only when something new was
measured. File names follow ``filegen``: ``NAME.YYYYMMDD`` for ``type day`` (the day of the line's time,
UTC), ``NAME`` for ``type none``. :func:`parse_loopstats` and :func:`parse_peerstats` read the files back
(for ``stratum1 plot``), skipping lines they cannot read.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from appliance.config.model import Filegen
from appliance.ntp.mode6 import peer_status_word
from appliance.status.snapshot import Snapshot, SourceStatus
from appliance.timebase import NS_PER_S

#: MJD of 1970-01-01.
MJD_UNIX_EPOCH = 40587
_DAY_NS = 86_400 * NS_PER_S


def mjd_seconds(t_ns: int) -> tuple[int, float]:
    """(MJD, seconds past UTC midnight) of POSIX time ``t_ns``."""
    days, rest = divmod(t_ns, _DAY_NS)
    return MJD_UNIX_EPOCH + days, rest / NS_PER_S


def time_from_mjd(mjd: int, seconds: float) -> float:
    """POSIX seconds of (MJD, seconds past midnight)."""
    return (mjd - MJD_UNIX_EPOCH) * 86_400.0 + seconds


def _stamp(t_ns: int) -> str:
    mjd, secs = mjd_seconds(t_ns)
    return f"{mjd} {secs:.3f}"


def loopstats_line(snap: Snapshot) -> str:
    s = snap.system
    return (
        f"{_stamp(snap.time_ns)} {s.offset_ns / 1e9:.9f} {s.frequency_ppb / 1000:.6f} {s.clock_jitter_ns / 1e9:.9f}"
        f" {s.frequency_sd_ppb / 1000:.6f} {s.poll}"
    )


def peerstats_line(t_ns: int, src: SourceStatus) -> str:
    status = peer_status_word(src.reach, src.selection_code)
    return (
        f"{_stamp(t_ns)} {src.address} {status:04x} {src.offset_ns / 1e9:.9f} {src.delay_ns / 1e9:.9f}"
        f" {src.dispersion_ns / 1e9:.9f} {src.jitter_ns / 1e9:.9f}"
    )


def clockstats_line(snap: Snapshot, src: SourceStatus) -> str | None:
    g = snap.gps
    if g is None or src.kind != "refclock":
        return None
    delay = "-" if g.nmea_delay_ns is None else f"{g.nmea_delay_ns / 1e9:.3f}"
    used = "-" if g.satellites_used is None else str(g.satellites_used)
    seen = "-" if g.satellites_in_view is None else str(g.satellites_in_view)
    mode = g.fix_mode if g.fix else "none"
    return (
        f"{_stamp(snap.time_ns)} {src.address} fix {mode} sats {used}/{seen} pps {int(g.pps)} locked {int(g.locked)}"
        f" nmea_delay {delay}"
    )


def file_name(gen: Filegen, t_ns: int) -> str:
    """The file a line at ``t_ns`` goes to, inside statsdir."""
    if gen.type == "none":
        return gen.file
    day = datetime.datetime.fromtimestamp(t_ns // NS_PER_S, datetime.UTC)
    return f"{gen.file}.{day:%Y%m%d}"


@dataclass
class StatsPlan:
    """Which lines are due as snapshots arrive (see the module docstring); keeps the times of the last lines."""

    last_loop_ns: int | None = None
    last_reference_ns: int | None = None
    last_peer: dict[str, int | None] = field(default_factory=dict)
    last_peer_line_ns: dict[str, int] = field(default_factory=dict)
    last_clock_ns: dict[str, int] = field(default_factory=dict)

    def due(self, snap: Snapshot, enabled: frozenset[str]) -> list[tuple[str, str]]:
        """(file set name, line) pairs to write for ``snap``, for the enabled file sets."""
        out: list[tuple[str, str]] = []
        now = snap.time_ns
        s = snap.system
        interval = NS_PER_S << max(0, s.poll)
        if (
            "loopstats" in enabled
            and s.reference_ns is not None
            and s.reference_ns != self.last_reference_ns
            and (self.last_loop_ns is None or now - self.last_loop_ns >= interval)
        ):
            out.append(("loopstats", loopstats_line(snap)))
            self.last_loop_ns = now
            self.last_reference_ns = s.reference_ns
        for src in snap.sources:
            every = NS_PER_S << max(0, src.poll)
            if "peerstats" in enabled and src.kind != "local" and src.updated_ns is not None:
                last = self.last_peer_line_ns.get(src.name)
                if src.updated_ns != self.last_peer.get(src.name) and (last is None or now - last >= every):
                    out.append(("peerstats", peerstats_line(now, src)))
                    self.last_peer[src.name] = src.updated_ns
                    self.last_peer_line_ns[src.name] = now
            if "clockstats" in enabled:
                last = self.last_clock_ns.get(src.name)
                if last is None or now - last >= every:
                    line = clockstats_line(snap, src)
                    if line is not None:
                        out.append(("clockstats", line))
                        self.last_clock_ns[src.name] = now
        return out


@dataclass(frozen=True, slots=True)
class LoopPoint:
    """One loopstats line: POSIX seconds, offset (s), frequency (ppm), jitter (s)."""

    t: float
    offset: float
    frequency: float
    jitter: float


@dataclass(frozen=True, slots=True)
class PeerPoint:
    """One peerstats line: POSIX seconds, source address, offset, delay, jitter (s)."""

    t: float
    address: str
    offset: float
    delay: float
    jitter: float


def parse_loopstats(text: str) -> list[LoopPoint]:
    out = []
    for line in text.splitlines():
        f = line.split()
        try:
            out.append(LoopPoint(time_from_mjd(int(f[0]), float(f[1])), float(f[2]), float(f[3]), float(f[4])))
        except (IndexError, ValueError):
            continue
    return out


def parse_peerstats(text: str) -> list[PeerPoint]:
    out = []
    for line in text.splitlines():
        f = line.split()
        try:
            t = time_from_mjd(int(f[0]), float(f[1]))
            out.append(PeerPoint(t, f[2], float(f[4]), float(f[5]), float(f[7])))
        except (IndexError, ValueError):
            continue
    return out
