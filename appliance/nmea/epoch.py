"""Epochs: the sentences a receiver sends for one fix, assembled into a :class:`Fix`.

NMEA 0183 has no "end of fix" marker. A receiver sends a burst of sentences
per fix (its *epoch*, usually once a second), the timed sentences of one
epoch all carrying the same UTC time of day. Facts and rules used here:

- RMC, ZDA, GGA, GNS, GLL (and u-blox ``$PUBX,04``) carry the time of day;
  GSA and GSV carry none and belong to the epoch they arrive in. A timed
  sentence with a new time of day starts a new epoch and closes the last one.
- Only RMC (``ddmmyy``), ZDA (``dd,mm,yyyy``) and ``$PUBX,04`` carry a date;
  ZDA's is preferred (four-digit year), and its year becomes the pivot of
  later two-digit years (:func:`~appliance.nmea.rollover.expand_year`); every
  date then goes through the :class:`~appliance.nmea.rollover.RolloverPolicy`.
  An epoch without one (GGA-only receivers, a first epoch where GGA arrives
  alone) takes the date of the last *valid* dated epoch, choosing the day
  that puts it closest to that epoch plus the local time elapsed since: this
  crosses midnight forwards (23:59:59 then 00:00:00 is the next day) and
  survives gaps of up to 12 hours.
- Validity, per sentence: RMC status ``A`` (with a 2.3 mode indicator other
  than ``N``), GGA quality 1-6 (0 is no fix, 7 manual input, 8 simulator),
  GNS any constellation letter in ``ADPRFE`` (``N`` is no fix, ``M``/``S``
  manual and simulator), GLL status ``A``. An epoch is valid when some
  sentence says valid and none says invalid: receivers that disagree with
  themselves serve no time. ZDA and ``$PUBX,04`` say nothing about validity:
  an epoch of them alone is not valid, unless the receiver's line chose only
  them (ntpd's ``mode 8`` or ``512``, ``trust_unrated``): then, as ntpd
  ("no quality: assume best"), it is, as a 2D fix.
- Fix mode: the best GSA fix type (2D/3D) when there is one, else 3D when
  GGA/GNS give an altitude, else 2D; NONE when the epoch is invalid,
  UNKNOWN when no sentence says (a ZDA alone).
- Satellites used: GGA/GNS's count, else the PRNs of the GSAs; in view: per
  talker the GSV total, summed over talkers. The satellites one by one
  (azimuth, elevation, signal, used or not) from the epoch's complete GSV
  groups and its GSAs: :mod:`~appliance.nmea.sky` (None when the epoch has
  no complete group; groups counted ``sky_groups`` and ``sky_groups_dropped``).
- Epochs end when the next begins, a second late. Like gpsd, we learn the
  sentence that ends the epoch (the last one, by address and occurrence,
  of two epochs in a row) and report the epoch as soon as it arrives. If a
  sentence ever comes after it (a receiver that adds GSV every fifth
  second), those late sentences are counted ``unplaced`` and that ender is
  never trusted again: from then on its epochs end when the next begins.

A :class:`Fix` keeps the arrival time of the epoch's first byte
(``arrival_ns``): the serial driver's local timestamp of the epoch.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from appliance.nmea.counters import Tally
from appliance.nmea.rollover import RolloverPolicy, expand_year
from appliance.nmea.sentence import Gga, Gll, Gns, Gsa, Gsv, NmeaDate, Pubx04, Rmc, Sentence, Zda
from appliance.nmea.sky import Satellite, sky_of
from appliance.timebase import NS_PER_S

DAY_NS = 86_400 * NS_PER_S
_HALF_DAY_NS = DAY_NS // 2
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_GGA_VALID = range(1, 7)
_GNS_VALID = frozenset("ADPRFE")

EpochKey = tuple[str, int]  # (address such as "GPZDA", occurrence in the epoch from 1)


class FixMode(enum.IntEnum):
    """Fix dimension, numbered as gpsd's TPV ``mode``."""

    UNKNOWN = 0  # no sentence of the epoch says
    NONE = 1
    TWO_D = 2
    THREE_D = 3


class DateSource(enum.Enum):
    """Where a fix's date came from."""

    NONE = "none"
    ZDA = "ZDA"
    PUBX = "PUBX04"
    RMC = "RMC"
    CARRIED = "carried"  # from an earlier epoch (GGA/GNS/GLL-only epochs)


@dataclass(frozen=True, slots=True)
class Fix:
    """What a receiver said in one epoch. Times are int ns (POSIX, UTC)."""

    #: Local time (POSIX ns) of the first byte of the epoch's first sentence.
    arrival_ns: int
    #: UTC time of day as labelled by the receiver, ns since midnight; 86400 s
    #: and more during a leap second (second 60).
    time_of_day_ns: int
    #: UTC as POSIX ns (a leap second reads as the next day's 00:00:00), or
    #: None when no date is known or the rollover policy refused it.
    utc_ns: int | None
    #: The receiver says it has a fix (see the module docstring).
    valid: bool
    mode: FixMode
    date_source: DateSource = DateSource.NONE
    #: 1024-week steps added by the rollover policy (0 normally).
    rollover_steps: int = 0
    sats_used: int | None = None
    sats_in_view: int | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    alt_m: float | None = None  # above mean sea level
    #: GPS-UTC in seconds, when the receiver says (u-blox ``$PUBX,04``).
    leap_seconds: int | None = None
    #: False when the receiver says its UTC is provisional (leap seconds not
    #: yet known from the almanac), None when it does not say.
    utc_valid: bool | None = None
    #: Addresses of the sentences of the epoch, in order ("GPRMC", "PUBX04"...).
    sentences: tuple[str, ...] = ()
    #: The satellites of the epoch's complete GSV groups, used or not (GSA); None: no complete group.
    satellites: tuple[Satellite, ...] | None = None

    @property
    def has_time(self) -> bool:
        """True when this fix numbers a second: valid, 2D or 3D, and dated."""
        return self.valid and self.mode >= FixMode.TWO_D and self.utc_ns is not None


@dataclass(slots=True)
class _Epoch:
    tod_ns: int
    arrival_ns: int
    sentences: list[Sentence] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    last_key: EpochKey | None = None
    reported: bool = False

    def note(self, s: Sentence) -> EpochKey:
        """Count ``s`` among the epoch's sentences (placed or late) and return its key."""
        addr = address(s)
        n = self.counts.get(addr, 0) + 1
        self.counts[addr] = n
        self.last_key = (addr, n)
        return self.last_key


def address(s: Sentence) -> str:
    """Return the sentence's address: talker and type ("GNRMC"), or "PUBX04"."""
    return s.talker + s.KIND


class EpochAssembler:
    """Groups decoded sentences into epochs and reports each as a :class:`Fix`.

    Feed sentences in arrival order with :meth:`add`; call :meth:`flush` at
    the end of a stream to report the epoch still open.
    """

    __slots__ = (
        "_policy",
        "_tally",
        "_epoch",
        "_ender",
        "_prev_last",
        "_spoiled",
        "_anchor",
        "_year4",
        "_trust_unrated",
    )

    def __init__(self, policy: RolloverPolicy, tally: Tally, *, trust_unrated: bool = False) -> None:
        self._policy = policy
        self._tally = tally
        self._trust_unrated = trust_unrated  # an epoch no sentence rates is valid (see the module docstring)
        self._epoch: _Epoch | None = None
        self._ender: EpochKey | None = None  # learned last sentence of an epoch
        self._prev_last: EpochKey | None = None  # last sentence of the previous epoch
        self._spoiled: set[EpochKey] = set()  # enders that sentences once came after
        self._anchor: tuple[int, int] | None = None  # (utc_ns, arrival_ns) of the last valid dated fix
        self._year4: int | None = None  # the last four-digit year seen, the two-digit pivot

    def add(self, s: Sentence) -> list[Fix]:
        """Take the next sentence; return the fixes it completes (zero or one, rarely two)."""
        out: list[Fix] = []
        timed = not isinstance(s, Gsa | Gsv)
        tod = time_of_day(s)
        if timed and tod is None:
            self._tally.add("unplaced")  # a timed sentence with an empty time field
            return out
        if tod is not None and (self._epoch is None or tod != self._epoch.tod_ns):
            out += self._close()
            self._epoch = _Epoch(tod, s.arrival_ns)
        ep = self._epoch
        if ep is None:
            self._tally.add("unplaced")  # untimed, before the first time of day
            return out
        key = ep.note(s)
        if ep.reported:
            self._tally.add("unplaced")  # late: the epoch was reported already
            return out
        ep.sentences.append(s)
        self._tally.add("placed")
        if key == self._ender:
            ep.reported = True
            out.append(self._report(ep))
        return out

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns``: the open epoch's arrival and the date anchor move with it."""
        if self._epoch is not None:
            self._epoch.arrival_ns += step_ns
        if self._anchor is not None:
            self._anchor = (self._anchor[0], self._anchor[1] + step_ns)

    def flush(self) -> list[Fix]:
        """Close the open epoch (end of stream) and return its fix, if not yet reported."""
        return self._close()

    def _close(self) -> list[Fix]:
        ep, self._epoch = self._epoch, None
        if ep is None:
            return []
        if ep.reported and ep.last_key != self._ender and self._ender is not None:
            self._spoiled.add(self._ender)
        learned = ep.last_key == self._prev_last and ep.last_key not in self._spoiled
        self._ender = ep.last_key if learned else None
        self._prev_last = ep.last_key
        return [] if ep.reported else [self._report(ep)]

    def _report(self, ep: _Epoch) -> Fix:
        ss = ep.sentences
        valid, said = _validity(ss)
        trusted = self._trust_unrated and not said
        valid = valid or trusted
        utc_ns, source, steps = self._utc(ep, valid)
        leap = next((s for s in ss if isinstance(s, Pubx04)), None)
        self._tally.add("epochs")
        if utc_ns is None:
            self._tally.add("undated_epochs")
        sky = sky_of(ss)
        self._tally.add("sky_groups", sky.groups)
        self._tally.add("sky_groups_dropped", sky.dropped)
        return Fix(
            arrival_ns=ep.arrival_ns,
            time_of_day_ns=ep.tod_ns,
            utc_ns=utc_ns,
            valid=valid,
            mode=FixMode.TWO_D if trusted else _mode(ss) if valid else (FixMode.NONE if said else FixMode.UNKNOWN),
            date_source=source,
            rollover_steps=steps,
            sats_used=_sats_used(ss),
            sats_in_view=_sats_in_view(ss),
            lat_deg=_first(ss, "lat_deg"),
            lon_deg=_first(ss, "lon_deg"),
            alt_m=_first(ss, "alt_m"),
            leap_seconds=leap.leap_s if leap else None,
            utc_valid=(not leap.leap_is_default) if leap and leap.leap_s is not None else None,
            sentences=tuple(address(s) for s in ss),
            satellites=sky.satellites,
        )

    def _utc(self, ep: _Epoch, valid: bool) -> tuple[int | None, DateSource, int]:
        """Return (UTC ns or None, where the date came from, rollover steps)."""
        utc_ns, source = self._dated(ep)
        if utc_ns is None:
            return None, source, 0
        repaired, steps = self._policy.repair(utc_ns)
        if steps:
            self._tally.add("rollover_repaired" if repaired is not None else "rollover_refused")
        if repaired is not None and valid:
            self._anchor = (repaired, ep.arrival_ns)
        return repaired, source, steps

    def _dated(self, ep: _Epoch) -> tuple[int | None, DateSource]:
        for kind, source in ((Zda, DateSource.ZDA), (Pubx04, DateSource.PUBX), (Rmc, DateSource.RMC)):
            for s in ep.sentences:
                if isinstance(s, kind) and s.date is not None:
                    day = self._day_number(s.date)
                    if day is not None:
                        return day * DAY_NS + ep.tod_ns, source
        if self._anchor is None:
            return None, DateSource.NONE
        return _carry(self._anchor, ep.tod_ns, ep.arrival_ns), DateSource.CARRIED

    def _day_number(self, date: NmeaDate) -> int | None:
        """Return days since 1970-01-01 of ``date``, resolving a two-digit year; None if no date."""
        year = date.year
        if date.two_digit:
            year = expand_year(year, self._year4 or self._policy.pivot_year)
        else:
            self._year4 = year
        try:
            return dt.date(year, date.month, date.day).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None


def time_of_day(s: Sentence) -> int | None:
    """A sentence's time of day (ns since midnight); None for GSA/GSV, which carry none."""
    return None if isinstance(s, Gsa | Gsv) else s.tod_ns


def _carry(anchor: tuple[int, int], tod_ns: int, arrival_ns: int) -> int:
    """Return the UTC of ``tod_ns`` on the day nearest the anchor plus local time elapsed."""
    anchor_utc, anchor_arrival = anchor
    expected = anchor_utc + (arrival_ns - anchor_arrival)
    t = (expected // DAY_NS) * DAY_NS + tod_ns
    if t - expected > _HALF_DAY_NS:
        t -= DAY_NS
    elif expected - t > _HALF_DAY_NS:
        t += DAY_NS
    return t


def _validity(ss: list[Sentence]) -> tuple[bool, bool]:
    """Return (valid, said): valid when some sentence says so and none says not."""
    yes = no = False
    for s in ss:
        vote = _vote(s)
        yes |= vote is True
        no |= vote is False
    return yes and not no, yes or no


def _vote(s: Sentence) -> bool | None:
    """Return what one sentence says about the fix: True valid, False not, None nothing."""
    if isinstance(s, Rmc | Gll):
        if s.status not in ("A", "V"):
            return None
        return s.status == "A" and s.mode != "N"
    if isinstance(s, Gga):
        return None if s.quality is None else s.quality in _GGA_VALID
    if isinstance(s, Gns):
        if not s.mode:
            return None
        return any(c in _GNS_VALID for c in s.mode)
    return None


def _mode(ss: list[Sentence]) -> FixMode:
    """Return the dimension of a valid epoch's fix."""
    types = [s.fix_type for s in ss if isinstance(s, Gsa) and s.fix_type in (2, 3)]
    if types:
        return FixMode(max(types))
    if any(isinstance(s, Gga | Gns) and s.alt_m is not None for s in ss):
        return FixMode.THREE_D
    return FixMode.TWO_D


def _sats_used(ss: list[Sentence]) -> int | None:
    for s in ss:
        if isinstance(s, Gga | Gns) and s.sats_used is not None:
            return s.sats_used
    gsas = [s for s in ss if isinstance(s, Gsa)]
    return sum(len(s.prns) for s in gsas) if gsas else None


def _sats_in_view(ss: list[Sentence]) -> int | None:
    """Return the sum over talkers of the largest in-view count of their GSV messages."""
    per_talker: dict[str, int] = {}
    for s in ss:
        if isinstance(s, Gsv) and s.in_view is not None:
            per_talker[s.talker] = max(per_talker.get(s.talker, 0), s.in_view)
    return sum(per_talker.values()) if per_talker else None


def _first(ss: list[Sentence], name: str) -> float | None:
    """Return the first non-None ``name`` among GGA/GNS, then RMC/GLL."""
    for kinds in ((Gga, Gns), (Rmc, Gll)):
        for s in ss:
            if isinstance(s, kinds):
                v: float | None = getattr(s, name, None)
                if v is not None:
                    return v
    return None
