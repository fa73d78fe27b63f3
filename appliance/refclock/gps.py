"""The GPS reference clock: NMEA numbers the seconds, PPS marks them (pure; the time is passed in).

A receiver sends two things. Its PPS edge marks the start of a UTC second to
a microsecond or better, but carries no number (:class:`Pulse`). Its NMEA
epoch (:class:`~appliance.nmea.epoch.Fix`) names a second, but arrives late
by a receiver-specific delay of tens to hundreds of milliseconds, with
jitter. This module pairs them (chrony's ``lock``):

- **Which second a pulse marks.** Most receivers (u-blox, MediaTek MT3339 of
  the Adafruit HAT, Quectel) send the epoch of second *T* after the pulse
  that started *T*: :attr:`Convention.CURRENT`. Some send it before the pulse
  it names: :attr:`Convention.NEXT`. The two differ by exactly one second and
  cannot be told apart from the timing alone; the hardware profile says
  which, and CURRENT, the common case, is the default.
- **The NMEA delay** (ntpd's ``time2``), calibrated automatically: for every
  fix, the time from the pulse it belongs to until the epoch's first byte.
  Its interquartile mean (the mean of the middle half: robust to outliers,
  steadier than the median) over the last :data:`CALIBRATION_WINDOW` epochs
  is the offset
  used for NMEA-only samples when PPS is lost, so nobody has to find a
  ``time2`` by hand. A configured ``time2`` is the starting value.
- **Samples.** A numbered pulse gives a PPS sample (refid ``PPS``): local =
  the pulse's local time, reference = the second it marks. A fix without a
  usable pulse gives an NMEA sample (refid ``GPS``): local = arrival minus the
  calibrated delay, reference = the labelled time, with a dispersion that
  covers the delay's jitter.
- **PPS without NMEA** is used only while the caller says the clock is
  already within 0.4 s from another source (``clock_within_0_4s``): the
  pulse then takes the nearest second of the local clock.
- **Labels with a fraction.** An epoch is labelled with the instant of its
  fix, which need not be a whole second: 10 Hz receivers label ``.0`` to
  ``.9``, some 1 Hz receivers free-run (``164517.99``, ``074150.799``). Only
  the first epoch of each new whole second of its label pairs, calibrates and
  counts for the lock (as gpsd latches only "a new time"); the second a
  pulse marks is the one in which the label's instant, plus the time from
  that pulse to the epoch's arrival, falls: the fix is sent after it is
  made, within a second (CURRENT). The NMEA delay runs from the labelled
  instant to the arrival, so NMEA-only samples keep the label's fraction.
- **Leap seconds.** A label ``23:59:60`` is the inserted second: it names no
  new POSIX second (POSIX repeats ``23:59:59``, as the kernel clock does) and
  pairs nothing. At the midnight that ends a month, the receiver's seconds
  may move by one against the local clock (a leap second the clock did not
  insert or delete: the leap file had expired): the lock holds, the pulses
  are numbered afresh from the receiver's seconds, and :attr:`GpsCounters.leap_jumps`
  counts it; the clock is then corrected by the samples, as for any offset.
- **Sanity.** A fix whose second does not follow the last one by the local
  time elapsed (a week jump, a second slip, a receiver reset) breaks the lock:
  no samples until :data:`RELOCK_EPOCHS` consecutive epochs agree again; the
  source is unusable meanwhile. A new timeline that contradicts the last
  good lock (projected by the local clock) must hold for
  :data:`JUMP_RELOCK_EPOCHS` before it is believed: a receiver that jumps
  by a week and stays there is not followed at once. Pulses are judged by
  :class:`~appliance.refclock.pps.PulseCheck`, the one pulse checker
  (duplicates, out of order, not a whole number of seconds from the last:
  rejected).
  Without fixes for :data:`FIX_TIMEOUT_NS` or pulses for
  :data:`PULSE_TIMEOUT_NS`, that part is unusable.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field, replace

from appliance.nmea.epoch import Fix
from appliance.nmea.sky import Satellite
from appliance.refclock.pps import PulseCheck, PulseCheckConfig
from appliance.refclock.pps import Verdict as PulseVerdict
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.timebase import NS_PER_S

CALIBRATION_WINDOW = 64
RELOCK_EPOCHS = 3
#: Epochs a timeline that contradicts the last lock must hold before it is believed (10 minutes).
JUMP_RELOCK_EPOCHS = 600
FIX_TIMEOUT_NS = 3 * NS_PER_S
PULSE_TIMEOUT_NS = 3 * NS_PER_S // 2
#: A pulse interval must be this close to a whole number of seconds.
PULSE_TOLERANCE_NS = NS_PER_S // 5
#: The most an epoch may lag its pulse (CURRENT) or lead it (NEXT).
MAX_NMEA_DELAY_NS = 950_000_000
#: PPS samples' own dispersion: the edge is sharp; the kernel or GPIO jitter shows in the filter.
PPS_DISPERSION_NS = 1_000
#: NMEA-only samples: the delay's jitter is unknown to a few ms; never claim better than this.
NMEA_MIN_DISPERSION_NS = 5_000_000


class Convention(enum.Enum):
    """Which second an NMEA epoch names, relative to the pulses around it."""

    CURRENT = "current"  # the second that began at the pulse before the epoch
    NEXT = "next"  # the second that begins at the pulse after the epoch


@dataclass(frozen=True, slots=True)
class GpsSettings:
    """How to pair this receiver's NMEA and PPS.

    ``nmea_delay_ns`` is the starting NMEA delay (ntpd's ``time2``; None: the
    calibration starts from nothing and NMEA-only samples wait for it).
    ``pps_offset_ns`` (ntpd's ``time1``) is added to every pulse sample's
    offset, as ntpd adds it (cable and receiver delay, positive when the edge
    is seen late): the pairing works on the edge's true time (the timestamp
    minus it), and the sample keeps the timestamp as taken, so it is never
    in the future.
    """

    convention: Convention = Convention.CURRENT
    nmea_delay_ns: int | None = None
    pps_offset_ns: int = 0


@dataclass(slots=True)
class GpsCounters:
    fixes: int = 0
    fixes_without_time: int = 0
    pulses: int = 0
    pulses_rejected: int = 0
    pps_samples: int = 0
    nmea_samples: int = 0
    lock_breaks: int = 0
    unpaired_fixes: int = 0
    #: Epochs after the first of their whole second (5 and 10 Hz receivers): counted, not paired.
    sub_second_epochs: int = 0
    #: Month-end midnights at which the receiver's seconds moved by a leap second against the local clock.
    leap_jumps: int = 0


@dataclass(frozen=True, slots=True)
class GpsStatus:
    """What the GPS clock can give now: for the status pages and for selection.

        ``fix_ok``: a fix within 3 s; ``pps_ok``: a pulse within 1.5 s, numbered yet or not (the PPS signal is
        there); ``locked``: the receiver's last epochs followed on from each other (so its seconds number the
    pulses), with a recent fix.
    """

    fix_ok: bool
    pps_ok: bool
    locked: bool
    nmea_delay_ns: int | None
    last_fix: Fix | None
    #: The satellites of the last epoch that had a complete GSV group (receivers send GSV every few seconds),
    #: and that epoch's arrival (local ns); None before the first.
    satellites: tuple[Satellite, ...] | None = None
    satellites_ns: int | None = None
    #: The arrival (local ns) of the last epoch with a fix and a time (valid, 2D or 3D, dated): the last fix,
    #: where ``last_fix`` is the last epoch heard, fix or not.
    last_timed_ns: int | None = None

    @property
    def usable(self) -> bool:
        return self.locked and (self.fix_ok or self.pps_ok)


@dataclass(slots=True)
class _Pending:
    local_ns: int  # a pulse awaiting its epoch, corrected by pps_offset


@dataclass
class GpsClock:
    """Pairs pulses with NMEA seconds; see the module docstring.

    Feed it with :meth:`on_fix` and :meth:`on_pulse`; both return the samples
    they complete. :meth:`status` says what is usable at a given time.
    """

    settings: GpsSettings = field(default_factory=GpsSettings)
    counters: GpsCounters = field(default_factory=GpsCounters)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget pulses, epochs, the calibration and the lock: start afresh (a clock step is :meth:`clock_stepped`)."""
        self._pulses: deque[_Pending] = deque(maxlen=4)
        self._delays: deque[int] = deque(maxlen=CALIBRATION_WINDOW)
        self._last_fix: Fix | None = None
        self._sky: tuple[tuple[Satellite, ...], int] | None = None  # (satellites, arrival ns)
        self._last_timed: Fix | None = None
        self._agree = 0
        self._required = RELOCK_EPOCHS
        self._anchor: tuple[int, int] | None = None  # (arrival ns, second) of the last locked epoch
        self._last_pulse_ns: int | None = None
        self.check = PulseCheck(PulseCheckConfig(tolerance_ns=PULSE_TOLERANCE_NS))
        self._last_pulse_seen: int | None = None
        self._numbered: tuple[int, int] | None = None  # (pulse local ns, second it marks)

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate every local time held.

        The lock, the numbering and the NMEA delay calibration (differences of
        local times) carry on: a step made on this receiver's own time does not
        cost the relock epochs that :meth:`reset` would (chrony likewise slews
        its refclock samples on a step rather than dropping them).
        """
        for p in self._pulses:
            p.local_ns += step_ns
        if self._last_fix is not None:
            self._last_fix = _moved(self._last_fix, step_ns)
        if self._last_timed is not None:
            self._last_timed = _moved(self._last_timed, step_ns)
        if self._sky is not None:
            self._sky = (self._sky[0], self._sky[1] + step_ns)
        if self._anchor is not None:
            self._anchor = (self._anchor[0] + step_ns, self._anchor[1])
        if self._last_pulse_ns is not None:
            self._last_pulse_ns += step_ns
        if self._last_pulse_seen is not None:
            self._last_pulse_seen += step_ns
        if self._numbered is not None:
            self._numbered = (self._numbered[0] + step_ns, self._numbered[1])
        self.check.clock_stepped(step_ns)

    # -- calibration ---------------------------------------------------------

    @property
    def nmea_delay_ns(self) -> int | None:
        """The NMEA delay in use: the interquartile mean of the calibration window, else the configured start."""
        if self._delays:
            ordered = sorted(self._delays)
            n = len(ordered)
            middle = ordered[n // 4 : n - n // 4] or ordered
            return sum(middle) // len(middle)
        return self.settings.nmea_delay_ns

    @property
    def locked(self) -> bool:
        return self._agree >= self._required

    # -- input ---------------------------------------------------------------

    def on_pulse(self, pulse: Pulse, *, clock_within_0_4s: bool = False) -> Sample | None:
        """Take a pulse; return a PPS sample when it can be numbered now."""
        c = self.counters
        c.pulses += 1
        local = pulse.local_ns - self.settings.pps_offset_ns  # when the edge really was
        # the one pulse checker (refclock/pps.py): a first pulse is held as the reference, and usable here
        verdict = self.check.check(Pulse(local, pulse.sequence))
        if verdict not in (PulseVerdict.ACCEPTED, PulseVerdict.HELD):
            c.pulses_rejected += 1
            return None
        self._last_pulse_ns = local
        self._last_pulse_seen = pulse.local_ns
        self._pulses.append(_Pending(local))
        # While locked with a recent numbered pulse, the next pulse is that second plus the seconds elapsed:
        # it is numbered at once, without waiting for its epoch (CURRENT receivers send theirs afterwards).
        if self.locked and self._numbered is not None and self._fix_recent(pulse.local_ns):
            prev_local, prev_second = self._numbered
            elapsed = round((local - prev_local) / NS_PER_S)
            second = prev_second + elapsed * NS_PER_S
            # not across a midnight where a leap second may go: that pulse waits for its epoch to number it
            if 1 <= elapsed <= 2 and not _near_month_end(second):
                return self._pps_sample(local, second)
        if clock_within_0_4s and not self._fix_recent(pulse.local_ns):
            nearest = (local + NS_PER_S // 2) // NS_PER_S * NS_PER_S
            if abs(local - nearest) < 2 * NS_PER_S // 5:
                return self._pps_sample(local, nearest, numbered=False)
        return None

    def on_fix(self, fix: Fix) -> list[Sample]:
        """Take an NMEA epoch; return the samples it completes (a numbered pulse, or an NMEA sample)."""
        c = self.counters
        c.fixes += 1
        self._last_fix = fix
        if fix.satellites is not None:
            self._sky = (fix.satellites, fix.arrival_ns)
        if not fix.has_time or fix.utc_ns is None:
            c.fixes_without_time += 1
            return []
        label = _label(fix)
        prev = self._last_timed
        if prev is not None and label // NS_PER_S == _label(prev) // NS_PER_S:
            c.sub_second_epochs += 1  # not a new second: 5/10 Hz, or the inserted 23:59:60
            return []
        self._check_continuity(fix, label)
        self._last_timed = fix
        found = self._pulse_for(fix.arrival_ns)
        if found is None:
            c.unpaired_fixes += 1
            return self._nmea_sample(fix, label)
        pulse, shift = found
        since_pulse = fix.arrival_ns - pulse.local_ns
        # the second the pulse began: the one holding the label's instant plus the time since the pulse
        marked = _ceil_second(label - since_pulse) + shift
        # the NMEA delay: from the labelled instant (as the local clock saw it) to the arrival
        self._delays.append(since_pulse - (label - marked))
        if not self.locked:
            return []
        if self._numbered is not None and self._numbered[0] == pulse.local_ns:
            return []  # numbered already on arrival
        return [self._pps_sample(pulse.local_ns, marked)]

    # -- helpers -------------------------------------------------------------

    def _pulse_for(self, arrival_ns: int) -> tuple[_Pending, int] | None:
        """The pulse before an epoch arriving at ``arrival_ns``, and what it marks relative to the named second.

        CURRENT: that pulse began the named second (shift 0). NEXT: the epoch
        precedes its own pulse, so the pulse before it began the second
        before the named one (shift -1 s).
        """
        shift = 0 if self.settings.convention is Convention.CURRENT else -NS_PER_S
        for p in reversed(self._pulses):
            if 0 <= arrival_ns - p.local_ns < MAX_NMEA_DELAY_NS:
                return p, shift
        return None

    def _check_continuity(self, fix: Fix, label: int) -> None:
        """Count epochs that follow on from the last; break the lock on a jump (see the module docstring)."""
        prev = self._last_timed
        leap = None if prev is None else _slip(prev.arrival_ns, _label(prev), fix.arrival_ns, label)
        if leap is not None:
            self._agree += 1
            if leap:
                # a leap second the local clock did not take: go on in the receiver's seconds
                self.counters.leap_jumps += 1
                self._numbered = None
                if self._anchor is not None:
                    self._anchor = (self._anchor[0], self._anchor[1] + leap)
        else:
            if self.locked:
                self.counters.lock_breaks += 1
            self._agree = 1
            self._numbered = None
            self._delays.clear()
        if self._anchor is not None:
            if _slip(*self._anchor, fix.arrival_ns, label) is not None:
                self._required = RELOCK_EPOCHS
            elif self._agree == 1:
                self._required = JUMP_RELOCK_EPOCHS
        if self.locked:
            self._anchor = (fix.arrival_ns, label)

    def _fix_recent(self, now_ns: int) -> bool:
        f = self._last_timed
        return f is not None and now_ns - f.arrival_ns < FIX_TIMEOUT_NS

    def _pps_sample(self, local_ns: int, second_ns: int, *, numbered: bool = True) -> Sample:
        self.counters.pps_samples += 1
        if numbered:
            self._numbered = (local_ns, second_ns)
        off = self.settings.pps_offset_ns  # back to the timestamp as taken; the offset gains time1
        return Sample(
            local_ns=local_ns + off,
            reference_ns=second_ns + off,
            dispersion_ns=PPS_DISPERSION_NS,
            kind=SampleKind.PULSE,
        )

    def _nmea_sample(self, fix: Fix, label: int) -> list[Sample]:
        delay = self.nmea_delay_ns
        if delay is None or not self.locked:
            return []
        self.counters.nmea_samples += 1
        spread = self._delay_spread()
        return [
            Sample(
                local_ns=fix.arrival_ns - delay,
                reference_ns=label,
                dispersion_ns=max(NMEA_MIN_DISPERSION_NS, spread),
            )
        ]

    def _delay_spread(self) -> int:
        if len(self._delays) < 4:
            return 50_000_000
        ordered = sorted(self._delays)
        return ordered[-1] - ordered[0]

    def status(self, now_ns: int) -> GpsStatus:
        """What is usable at ``now_ns``: fixes within 3 s, pulses within 1.5 s, and the lock."""
        fix_ok = self._fix_recent(now_ns)
        pps_ok = self._last_pulse_seen is not None and now_ns - self._last_pulse_seen < PULSE_TIMEOUT_NS
        sky, sky_ns = self._sky if self._sky is not None else (None, None)
        timed = self._last_timed.arrival_ns if self._last_timed is not None else None
        return GpsStatus(fix_ok, pps_ok, self.locked and fix_ok, self.nmea_delay_ns, self._last_fix, sky, sky_ns, timed)


def _moved(fix: Fix, step_ns: int) -> Fix:
    return replace(fix, arrival_ns=fix.arrival_ns + step_ns)


DAY_NS = 86400 * NS_PER_S


def _label(fix: Fix) -> int:
    """The instant an epoch is labelled with, POSIX ns: ``23:59:60.x`` reads ``23:59:59.x`` again, as POSIX
    (and the kernel clock, inserting it) repeats that second."""
    assert fix.utc_ns is not None
    return fix.utc_ns - NS_PER_S if fix.time_of_day_ns >= DAY_NS else fix.utc_ns


def _ceil_second(t_ns: int) -> int:
    return -(-t_ns // NS_PER_S) * NS_PER_S


def _slip(local_ns: int, label_ns: int, now_local_ns: int, now_label_ns: int) -> int | None:
    """How an epoch labelled ``now_label_ns``, arriving at ``now_local_ns``, goes on from one at
    (``local_ns``, ``label_ns``): 0 when the labels moved as the local clock did (within half a second);
    -1 s or +1 s when they moved a leap second less or more across the midnight that ends a month (the
    local clock did not take that leap second); None for anything else (a jump: the lock breaks)."""
    slip = (now_label_ns - label_ns) - (now_local_ns - local_ns)
    if abs(slip) < NS_PER_S // 2:
        return 0
    if abs(abs(slip) - NS_PER_S) < NS_PER_S // 2 and _month_ends_between(label_ns, now_label_ns):
        return NS_PER_S if slip > 0 else -NS_PER_S
    return None


def _month_ends_between(a_ns: int, b_ns: int) -> bool:
    """Whether the UTC midnight at the end of a month (where leap seconds go) lies in (a, b], b within 2 s of it."""
    midnight = b_ns // DAY_NS * DAY_NS
    return a_ns < midnight <= b_ns < midnight + 2 * NS_PER_S and _civil_day(midnight // DAY_NS) == 1


def _near_month_end(t_ns: int) -> bool:
    """Whether ``t_ns`` is within 2 s of the UTC midnight that ends a month."""
    midnight = (t_ns + DAY_NS // 2) // DAY_NS * DAY_NS
    return abs(t_ns - midnight) <= 2 * NS_PER_S and _civil_day(midnight // DAY_NS) == 1


def _civil_day(days: int) -> int:
    """The day of the month of ``days`` since 1970-01-01 (Howard Hinnant's civil_from_days, proleptic Gregorian)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return doy - (153 * mp + 2) // 5 + 1


#: PPS samples count as recent (NMEA-only samples are then held back) for this long.
PPS_RECENT_NS = 3 * NS_PER_S


class NmeaRefclock:
    """The ``nmea`` driver's pure part: a :class:`GpsClock` pairing whose samples go to a refclock source.

    Its serial port hands in fixes (:meth:`on_fix`) and its own PPS, if it
    has one, pulses (:meth:`on_pulse`); both return the samples to hand up.
    NMEA-only samples are held back while numbered pulses are recent (the
    pulses are a thousand times better). :meth:`why_unusable` is what the
    timekeeper asks before selecting it; :meth:`stepped` restates the
    pairing on the clock's new scale when the clock is stepped (the serial
    stream's epochs in flight are restated by their own stream:
    :meth:`appliance.nmea.stream.NmeaStream.clock_stepped`).
    """

    def __init__(self, settings: GpsSettings) -> None:
        self.gps = GpsClock(settings)
        self._last_pps_ns: int | None = None

    def on_fix(self, fix: Fix) -> list[Sample]:
        return [s for s in self.gps.on_fix(fix) if self._keep(s)]

    def on_pulse(self, pulse: Pulse, *, clock_within_0_4s: bool = False) -> list[Sample]:
        sample = self.gps.on_pulse(pulse, clock_within_0_4s=clock_within_0_4s)
        return [sample] if sample is not None and self._keep(sample) else []

    def why_unusable(self, now_ns: int) -> str | None:
        if self.gps.status(now_ns).usable:
            return None
        return "NMEA: no lock, or no recent pulses and fixes"

    def stepped(self, step_ns: int) -> None:
        self.gps.clock_stepped(step_ns)
        if self._last_pps_ns is not None:
            self._last_pps_ns += step_ns

    def _keep(self, sample: Sample) -> bool:
        if sample.kind is SampleKind.PULSE:
            self._last_pps_ns = sample.local_ns
            return True
        return self._last_pps_ns is None or sample.local_ns - self._last_pps_ns >= PPS_RECENT_NS
