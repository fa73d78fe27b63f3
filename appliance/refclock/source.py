"""The generic refclock source: what a ``refclock``/``server 127.127.t.u`` line says, applied to a driver's output.

Pure (the time is passed in), after chrony's ``refclock.c`` and
``samplefilt.c``. One :class:`RefclockSource` per configured reference
clock, whatever its driver (:mod:`appliance.refclock.driver`). It takes the
driver's :class:`~appliance.refclock.sample.Sample` and
:class:`~appliance.refclock.sample.Pulse` values as they come and, once per
poll interval, hands up one filtered sample (:class:`RefclockUpdate`) or
nothing. What it applies:

- **Offsets** (ntpd's ``time1``/``time2``, chrony's ``offset``): added to a
  sample's offset (reference minus local), ``pulse_offset_ns`` for PULSE
  samples and pulses, ``time_offset_ns`` for TIME samples
  (:func:`appliance.refclock.driver.offsets_ns` says which ntpd fudge is
  which for each driver). Positive when the local timestamps are taken late.
- **Sample checks**, each dropped and counted (:class:`Verdict`): a local
  time after ``now`` (FUTURE), older than two poll intervals (STALE), not
  after the last sample of its kind taken (NOT_NEWER: duplicates,
  reordering; gpsd's edge of a second may come after its serial time), a leap
  indicator of 3 (UNSYNCHRONISED: the reference says it has no time; gpsd
  writes that before its receiver has a fix), a kind the line does not take
  (WRONG_KIND).
- **Pulses** (a bare edge marks the start of *some* second): the offset is
  the distance to the nearest whole second, wrapped into [-0.5, 0.5) s, then
  - with ``lock`` (chrony's ``lock``, the PPS line numbered by another
    refclock): moved by whole seconds to the lock source's last sample's
    offset; refused when that sample is missing (NO_LOCK_SAMPLE), is
    ``max_lock_age`` seconds or more away from the pulse (LOCK_TOO_OLD), or
    disagrees with the pulse by 0.2 s or more counting both dispersions
    (LOCK_MISMATCH); the leap indicator is the lock source's;
  - without ``lock`` (ntpd's ATOM, a PPS numbered by whatever is selected):
    the caller passes the system's synchronisation (:class:`SystemSync`);
    unsynchronised, or a root distance of 0.5 s or more, refuses the pulse
    and forgets the samples of this poll (SYSTEM_UNSYNCHRONISED).
- **The median filter of one poll** (chrony's): at most ``filter_length``
  samples are kept (the oldest go first; never more than the driver polls
  in one interval). When the poll ends and at least ``min_samples`` are
  there: with more than 4, those with a dispersion above 1.5 times the
  smallest are left out (unless fewer than 4 would remain); the rest are
  sorted by offset and the outermost are dropped so that the middle
  ``combine_percent`` (60 %) remain, at least one from each end once there
  are 3 or more; the remaining offsets and local times are averaged. The
  result's dispersion is the larger of the spread of the offsets used (their
  sample standard deviation) and their mean dispersion; a spread above
  ``max_dispersion_ns`` drops the poll (TOO_DISPERSED). Too few samples: no
  update this poll; they stay for the next one while they are fresh.
- **Stratum, refid, prefer, noselect**: carried on each update, untouched.
- **Reach**: an 8-bit register shifted at each poll, with a 1 when the poll
  produced an update.

A clock step (:meth:`RefclockSource.clock_stepped`) restates the stored
samples' local times in the new timescale, so no sample is lost across it.

Left to the timekeeper, as chrony leaves them to ``sources.c``: which source
is selected, and the stratum of an unlocked PPS that is itself the system
peer (chrony's ``pps_stratum``: it keeps the stratum of the source that
numbered it before).

How the timekeeper consumes it: :func:`appliance.refclock.setup.refclock_lines`
makes one ``RefclockSettings`` per refclock line, :mod:`appliance.build`
one ``RefclockSource`` and one driver per line, registered with
:meth:`appliance.sources.timekeeper.Timekeeper.add_refclock`; each driver's
samples go to :meth:`~RefclockSource.add_sample` and its pulses to
:meth:`~RefclockSource.add_pulse` (with the ``lock`` source's
:attr:`~RefclockSource.last_sample`, or the timekeeper's
:class:`SystemSync`) through ``Timekeeper.on_sample``/``on_pulse``; the
timekeeper calls :meth:`~RefclockSource.poll` every ``poll_interval_ns``
(a line polling every second or faster as soon as it holds the samples it
needs) and turns each :class:`RefclockUpdate` into a ``SourceSample`` for
the source named ``update.name``. A poll without an update is an
unreachable poll for that source.

>>> src = RefclockSource(RefclockSettings(name="SHM(0)", refid="SHM", poll=2, min_samples=3))
>>> for t in range(1, 5):
...     _ = src.add_sample(Sample(local_ns=t * NS_PER_S, reference_ns=t * NS_PER_S + 1_000), now_ns=t * NS_PER_S)
>>> update = src.poll(now_ns=4 * NS_PER_S)
>>> update.sample.offset_ns, update.samples_used, f"{update.reach:03o}"
(1000, 2, '001')
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

from appliance.ntp.packet import LEAP_UNSYNC
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.timebase import NS_PER_S

#: A pulse must be this close to its lock source's sample (chrony's 0.2 s at one pulse per second).
LOCK_TOLERANCE_NS = NS_PER_S // 5
#: A PPS without ``lock`` is numbered only while the system's root distance is under this.
MAX_SYSTEM_DISTANCE_NS = NS_PER_S // 2
#: Samples kept when none is given: chrony's default ``filter`` length.
DEFAULT_FILTER_LENGTH = 64


class Verdict(enum.Enum):
    """What the source did with one sample or pulse."""

    ACCEPTED = "accepted"
    FUTURE = "future"
    STALE = "stale"
    NOT_NEWER = "not_newer"
    UNSYNCHRONISED = "unsynchronised"
    WRONG_KIND = "wrong_kind"
    NO_LOCK_SAMPLE = "no_lock_sample"
    LOCK_TOO_OLD = "lock_too_old"
    LOCK_MISMATCH = "lock_mismatch"
    SYSTEM_UNSYNCHRONISED = "system_unsynchronised"


@dataclass(frozen=True, slots=True)
class SystemSync:
    """What numbers a PPS without ``lock``: is the system synchronised, and how far can it be off (ns)."""

    synchronised: bool
    root_distance_ns: int
    leap: int = 0


@dataclass(frozen=True, slots=True)
class RefclockSettings:
    """What one refclock line says (times in ns, intervals in log2 seconds).

    ``stratum`` is the reference's own (0 for a primary reference: the
    appliance then serves stratum 1), as ntpd's ``fudge ... stratum``.
    ``filter_length`` is capped at the samples one poll can hold,
    ``2**(poll - driver_poll)``; ``min_samples`` (default ``min(4,
    filter_length)``) are needed for an update. ``kinds`` are the sample
    kinds the line takes (gpsd's JSON gives both; NTPsec's ``mode 1`` is
    pulses only). ``max_lock_age`` is in seconds.
    """

    name: str
    refid: str = "REFC"
    stratum: int = 0
    poll: int = 4
    driver_poll: int = 0
    filter_length: int = DEFAULT_FILTER_LENGTH
    min_samples: int | None = None
    combine_percent: int = 60
    pulse_offset_ns: int = 0
    time_offset_ns: int = 0
    precision: int = -20
    prefer: bool = False
    noselect: bool = False
    lock: str | None = None
    max_lock_age: int = 2
    max_dispersion_ns: int | None = None
    kinds: frozenset[SampleKind] = frozenset(SampleKind)

    def __post_init__(self) -> None:
        if not -10 <= self.driver_poll <= self.poll <= 17:
            raise ValueError(f"{self.name}: need -10 <= driver_poll <= poll <= 17")
        if self.filter_length < 1:
            raise ValueError(f"{self.name}: filter length must be at least 1")
        if self.min_samples is not None and self.min_samples < 1:
            raise ValueError(f"{self.name}: min_samples must be at least 1")
        if not 0 <= self.combine_percent <= 100:
            raise ValueError(f"{self.name}: combine_percent must be 0..100")
        if not 0 <= self.stratum <= 15:
            raise ValueError(f"{self.name}: stratum must be 0..15")
        if self.max_lock_age < 1:
            raise ValueError(f"{self.name}: max_lock_age must be at least 1 s")
        if not self.kinds:
            raise ValueError(f"{self.name}: takes no kind of sample")

    @property
    def capacity(self) -> int:
        """Samples kept for one poll: ``filter_length``, at most the driver polls of one interval."""
        return max(1, min(self.filter_length, 1 << (self.poll - self.driver_poll)))

    @property
    def needed(self) -> int:
        """Samples needed for an update."""
        wanted = self.min_samples if self.min_samples is not None else min(4, self.capacity)
        return min(wanted, self.capacity)


@dataclass(frozen=True, slots=True)
class RefclockUpdate:
    """One poll's filtered sample, with what the line says of the source."""

    name: str
    refid: str
    stratum: int
    sample: Sample
    samples_used: int
    reach: int
    prefer: bool
    noselect: bool


@dataclass(frozen=True, slots=True)
class RefclockCounters:
    """A snapshot of one source's counts (each dropped sample under its :class:`Verdict`)."""

    samples: int = 0
    pulses: int = 0
    accepted: int = 0
    future: int = 0
    stale: int = 0
    not_newer: int = 0
    unsynchronised: int = 0
    wrong_kind: int = 0
    no_lock_sample: int = 0
    lock_too_old: int = 0
    lock_mismatch: int = 0
    system_unsynchronised: int = 0
    #: Samples the oldest-first rule pushed out of a full filter.
    overflowed: int = 0
    polls: int = 0
    updates: int = 0
    #: Polls that ended with fewer than the samples needed.
    too_few: int = 0
    #: Polls whose samples spread more than ``max_dispersion_ns``.
    too_dispersed: int = 0


_COUNTERS = tuple(f.name for f in fields(RefclockCounters))


class RefclockSource:
    """One configured reference clock; see the module docstring."""

    __slots__ = ("_settings", "_pending", "_last", "_newest", "_reach", "_counts", "_precision_ns")

    def __init__(self, settings: RefclockSettings) -> None:
        self._settings = settings
        self._pending: list[Sample] = []
        self._last: Sample | None = None
        self._newest: dict[SampleKind, int] = {}  # local time of the last sample taken, by kind
        self._reach = 0
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._precision_ns = _ns_from_log2(settings.precision)

    @property
    def settings(self) -> RefclockSettings:
        return self._settings

    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def poll_interval_ns(self) -> int:
        """How often :meth:`poll` is called (``2**poll`` s)."""
        return _ns_from_log2(self._settings.poll)

    @property
    def driver_poll_interval_ns(self) -> int:
        """How often the driver is polled (``2**driver_poll`` s)."""
        return _ns_from_log2(self._settings.driver_poll)

    @property
    def last_sample(self) -> Sample | None:
        """The last sample taken (offsets applied): what a PPS line locked to this one is numbered by."""
        return self._last

    @property
    def pending(self) -> tuple[Sample, ...]:
        """The samples taken in this poll so far (offsets applied)."""
        return tuple(self._pending)

    @property
    def reach(self) -> int:
        return self._reach

    @property
    def counters(self) -> RefclockCounters:
        return RefclockCounters(**self._counts)

    # -- input -------------------------------------------------------------------------------------

    def add_sample(self, sample: Sample, now_ns: int) -> Verdict:
        """Take a driver's sample at ``now_ns``; return what became of it."""
        self._counts["samples"] += 1
        s = self._settings
        if sample.kind not in s.kinds:
            return self._count(Verdict.WRONG_KIND)
        if sample.leap == LEAP_UNSYNC:
            return self._count(Verdict.UNSYNCHRONISED)
        verdict = self._check_time(sample.local_ns, now_ns, sample.kind)
        if verdict is not Verdict.ACCEPTED:
            return self._count(verdict)
        offset = s.pulse_offset_ns if sample.kind is SampleKind.PULSE else s.time_offset_ns
        cooked = Sample(
            local_ns=sample.local_ns,
            reference_ns=sample.reference_ns + offset,
            leap=sample.leap,
            dispersion_ns=sample.dispersion_ns + self._precision_ns,
            kind=sample.kind,
        )
        return self._take(cooked)

    def add_pulse(
        self, pulse: Pulse, now_ns: int, *, lock_sample: Sample | None = None, system: SystemSync | None = None
    ) -> Verdict:
        """Number a bare edge by the ``lock`` source's last sample, or by the system (see the module docstring)."""
        self._counts["pulses"] += 1
        s = self._settings
        if SampleKind.PULSE not in s.kinds:
            return self._count(Verdict.WRONG_KIND)
        verdict = self._check_time(pulse.local_ns, now_ns, SampleKind.PULSE)
        if verdict is not Verdict.ACCEPTED:
            return self._count(verdict)
        offset = _wrap_second(-(pulse.local_ns % NS_PER_S) + s.pulse_offset_ns)
        dispersion = self._precision_ns
        if s.lock is not None:
            if lock_sample is None:
                return self._count(Verdict.NO_LOCK_SAMPLE)
            if abs(pulse.local_ns - lock_sample.local_ns) >= s.max_lock_age * NS_PER_S:
                return self._count(Verdict.LOCK_TOO_OLD)
            ref_offset = lock_sample.offset_ns
            offset += _round_div(ref_offset - offset, NS_PER_S) * NS_PER_S
            if abs(ref_offset - offset) + lock_sample.dispersion_ns + dispersion >= LOCK_TOLERANCE_NS:
                return self._count(Verdict.LOCK_MISMATCH)
            leap = lock_sample.leap
        else:
            if system is None or not system.synchronised or system.root_distance_ns >= MAX_SYSTEM_DISTANCE_NS:
                self._pending.clear()
                return self._count(Verdict.SYSTEM_UNSYNCHRONISED)
            leap = system.leap
        cooked = Sample(
            local_ns=pulse.local_ns,
            reference_ns=pulse.local_ns + offset,
            leap=leap,
            dispersion_ns=dispersion,
            kind=SampleKind.PULSE,
        )
        return self._take(cooked)

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate the stored local times."""
        self._pending = [_shifted(x, step_ns) for x in self._pending]
        if self._last is not None:
            self._last = _shifted(self._last, step_ns)
        self._newest = {kind: t + step_ns for kind, t in self._newest.items()}

    def reset(self) -> None:
        """Forget every stored sample (the device was reopened, the timescale is unknown)."""
        self._pending.clear()
        self._last = None
        self._newest.clear()

    # -- the poll ----------------------------------------------------------------------------------

    def poll(self, now_ns: int) -> RefclockUpdate | None:
        """The poll interval ended at ``now_ns``: the filtered sample of its samples, or None."""
        s = self._settings
        self._counts["polls"] += 1
        oldest = now_ns - 2 * self.poll_interval_ns
        self._pending = [x for x in self._pending if x.local_ns >= oldest]
        update = None
        if len(self._pending) < s.needed:
            self._counts["too_few"] += 1
        else:
            used = select(self._pending, s.combine_percent)
            sample, spread = combine(used)
            if s.max_dispersion_ns is not None and spread > s.max_dispersion_ns:
                self._counts["too_dispersed"] += 1
            else:
                self._counts["updates"] += 1
                update = sample, len(used)
            self._pending.clear()
        self._reach = ((self._reach << 1) | (update is not None)) & 0xFF
        if update is None:
            return None
        return RefclockUpdate(
            name=s.name,
            refid=s.refid,
            stratum=s.stratum,
            sample=update[0],
            samples_used=update[1],
            reach=self._reach,
            prefer=s.prefer,
            noselect=s.noselect,
        )

    # -- helpers -----------------------------------------------------------------------------------

    def _check_time(self, local_ns: int, now_ns: int, kind: SampleKind) -> Verdict:
        if local_ns > now_ns:
            return Verdict.FUTURE
        if now_ns - local_ns > 2 * self.poll_interval_ns:
            return Verdict.STALE
        newest = self._newest.get(kind)
        if newest is not None and local_ns <= newest:
            return Verdict.NOT_NEWER
        return Verdict.ACCEPTED

    def _take(self, sample: Sample) -> Verdict:
        self._newest[sample.kind] = sample.local_ns
        self._pending.append(sample)
        if len(self._pending) > self._settings.capacity:
            del self._pending[0]
            self._counts["overflowed"] += 1
        self._last = sample
        return self._count(Verdict.ACCEPTED)

    def _count(self, verdict: Verdict) -> Verdict:
        self._counts[verdict.value] += 1
        return verdict


def select(samples: list[Sample], combine_percent: int = 60) -> list[Sample]:
    """chrony's selection for one poll: the low-dispersion ones, then the middle of them by offset, oldest first.

    >>> xs = [Sample(t, t + off) for t, off in enumerate([5, -900, 7, 6, 800])]
    >>> [x.offset_ns for x in select(xs)]
    [5, 7, 6]
    """
    if len(samples) > 4:
        floor = min(x.dispersion_ns for x in samples)
        chosen = [x for x in samples if 2 * x.dispersion_ns <= 3 * floor]
        if len(chosen) < 4:
            chosen = list(samples)
    else:
        chosen = list(samples)
    by_offset = sorted(chosen, key=lambda x: x.offset_ns)
    j = len(by_offset)
    cut = 0
    if j > 2:
        cut = min(max(1, j * (100 - combine_percent) // 200), (j - 1) // 2)
    middle = by_offset[cut : j - cut]
    return sorted(middle, key=lambda x: x.local_ns)


def combine(samples: list[Sample]) -> tuple[Sample, int]:
    """The mean of the selected samples (local time and offset) and the spread of their offsets (ns).

    The dispersion is the larger of the spread (the sample standard
    deviation, 0 for one sample) and the mean dispersion; the leap
    indicator is the newest sample's; the kind is PULSE only when every
    sample is a pulse.

    >>> sample, spread = combine([Sample(10, 110, dispersion_ns=1), Sample(20, 130, dispersion_ns=3)])
    >>> sample.local_ns, sample.offset_ns, spread, sample.dispersion_ns
    (15, 105, 7, 7)
    """
    n = len(samples)
    if n == 0:
        raise ValueError("combine() needs at least one sample")
    offsets = [x.offset_ns for x in samples]
    mean_offset = _round_div(sum(offsets), n)
    mean_local = _round_div(sum(x.local_ns for x in samples), n)
    mean_dispersion = _round_div(sum(x.dispersion_ns for x in samples), n)
    spread = 0
    if n >= 2:
        # sum of squared deviations, exactly: n * sum(x^2) - (sum x)^2, over n, over n - 1
        total = sum(offsets)
        squares = n * sum(o * o for o in offsets) - total * total
        spread = math.isqrt(_round_div(squares, n * (n - 1)))
    newest = max(samples, key=lambda x: x.local_ns)
    kind = SampleKind.PULSE if all(x.kind is SampleKind.PULSE for x in samples) else SampleKind.TIME
    sample = Sample(
        local_ns=mean_local,
        reference_ns=mean_local + mean_offset,
        leap=newest.leap,
        dispersion_ns=max(spread, mean_dispersion),
        kind=kind,
    )
    return sample, spread


def _wrap_second(offset_ns: int) -> int:
    """``offset_ns`` moved by whole seconds into [-0.5 s, 0.5 s)."""
    return (offset_ns + NS_PER_S // 2) % NS_PER_S - NS_PER_S // 2


def _round_div(a: int, b: int) -> int:
    """a / b rounded to the nearest integer, halves away from zero (b > 0)."""
    q, r = divmod(abs(a), b)
    if 2 * r >= b:
        q += 1
    return q if a >= 0 else -q


def _ns_from_log2(log2_s: int) -> int:
    return NS_PER_S << log2_s if log2_s >= 0 else NS_PER_S >> -log2_s


def _shifted(sample: Sample, step_ns: int) -> Sample:
    return Sample(
        local_ns=sample.local_ns + step_ns,
        reference_ns=sample.reference_ns,
        leap=sample.leap,
        dispersion_ns=sample.dispersion_ns,
        kind=sample.kind,
    )
