"""The clock discipline: offset samples and time in, clock operations out (pure).

Algorithm: a two-state Kalman filter (phase and frequency) on the
*free-running* offset, with chrony-style bookkeeping of the corrections,
a robust jitter estimate and a change detector that restarts the estimate
from recent samples, like chrony's regression dropping old samples.

The free-running offset. Every correction the discipline orders (a step, an
accrued offset, a frequency change) is known exactly, so it keeps their sum
``K``: how far its corrections have moved the clock by the time it reads
``u`` (accrued offsets count at once, as chrony's "cooked" time does: the
caller passes the clock's pending slew with each sample). ``K`` is kept on
the clock's own time, not the samples' reference time: a frequency acts on
the oscillator's ticks (``K`` grows by ``f`` times the free-running time
``u - K``), from the moment it is ordered (the caller passes the clock's
reading then, ``now_ns``), and a sample is measured against the corrections
in force at its local time. A pulse handed in late (read a millisecond
after its edge, numbered by a sentence 0.35 s later, an NTP reply) thus
meets the corrections of its own time; counted on the reference time from
the sample's time, a fast slew misplaced by the clock's offset and the
delay put a millisecond of false phase into ``z``, which read as wander and
kept the loop wide. A sample's offset plus ``K`` at its local time is
``z``, the offset the clock would show had the discipline never touched
it: reference minus free-running clock. ``z`` is a straight line
(the oscillator's frequency error) plus wander plus measurement jitter,
whatever the discipline did, so the estimator never has to undo its own
actions (chrony achieves the same by slewing its stored samples,
``SST_SlewSamples``).

The estimator. State ``[Z, dZ/dt]`` (ns, ppb). Between samples, the
frequency wanders as a random walk with diffusion ``D = wander**2``,
measured by how well loops of each bandwidth predict the samples
(:class:`_WanderBank`: one filter per ``D`` from 1e-11 to 10 ppb^2/s; the
narrowest whose likelihood is within 2 nats of the best is followed, its
estimate taken as the loop's: on a quiet oscillator that is a line through
every sample since the start, and a wandering one makes the narrow loops
fall behind and lose at once), so the prediction adds process noise
``D * [[dt^3/3, dt^2/2], [dt^2/2, dt]]``. Each sample is a measurement of
``Z`` with variance ``R = jitter**2``. In steady state this filter is the
optimal type-2 phase-locked loop for white phase noise plus random-walk FM
(the loop RFC 5905 section 12 / ntpd's kernel PPS discipline approximate with
fixed gains), with a time constant ``(R / D)**(1/4)``: about 24 s for 1 us
PPS jitter and a Pi crystal's wander, 8 s for 100 ns, and the whole record
for a quiet oscillator, from the measured jitter and wander. (The Allan
variance of ``z``, :class:`~appliance.clock.allan.WanderEstimator`, was
the measure before: at 1 us of jitter its long lags need hours to tell a
quiet oscillator from a Pi crystal, so the loop stayed wide for the
first half hour.)

The jitter is measured, not configured: each sample's deviation from the
chord through its neighbours (a second difference of ``z``, normalised to
unit variance) is kept for the last :data:`JITTER_MEMORY` samples and the
jitter is their median absolute value / 0.6745 (robust to a frequency step
or an outlier), worked out again every :data:`JITTER_REFRESH` samples, so
it changes slowly; the last ``history`` deviations' median is taken
instead when it is more than :data:`JITTER_JUMP` times off (a real change).
Until 8 deviations exist, ``initial_jitter_ns`` stands in. When the
estimate changes, the samples already taken are reweighed to it (the
covariance scaled by the ratio of the variances, ``reweigh``): on a quiet
oscillator the loop is then the least-squares line through every sample,
each weighed alike, not by the jitter estimated in its day.

Changes (a temperature step of the crystal, a phase jump): a two-sided
CUSUM on the normalised innovations (drift ``change_drift`` 1.5 sigma,
threshold ``change_threshold`` 12 sigma: no false alarm in 50 hour-long
seeds of a quiet oscillator with the measured wander, where drift 0.5 / threshold 8 raised 51, and
a +0.5 ppm step is still caught in about 15 s at 1 us jitter; innovations clipped to ``innovation_clip`` sigma so a
single outlier neither drags the estimate nor raises the alarm). On an
alarm the state is re-estimated by least squares over the samples since the
CUSUM excursion began, with the regression's covariance, and the filter goes
on from there.

Corrections. After each sample the clock gets the estimated frequency,
initial + ``dZ/dt`` (``SetFrequency``, absolute, limited to +-500 ppm), and
the remaining phase ``Z - K`` is removed in one of two ways
(:class:`PhaseCorrection`):

- ``FREQUENCY`` (default): the phase is slewed through the frequency, which
  is raised by ``phase / T`` for ``T``, the interval since the previous
  sample limited to 1..4 s, and the total never beyond ``maxslewrate``
  (83,333 ppm, chrony's default: 0.1 s is closed in about 1.2 s). ``T`` is
  stretched to end on the caller's next :meth:`Discipline.tick` (it runs
  about once a second), which ends the extra rate if no sample came, and
  slews back within one tick whatever a late tick let the slew overrun.
  This is how chrony slews on Linux (its generic driver slews by frequency,
  ``sys_linux.c`` puts the whole 100 ppm into ``tick``); it uses only the
  frequency, so every backend behaves alike (the kernel's ``ADJ_FREQUENCY``
  resolves 0.015 ppb).
- ``SLEW``: ``AccrueOffset(phase)``, keeping the clock's pending slew within
  ``max_pending_ns``. How fast the clock works it off is up to the backend:
  at once for a 500 ppm ``adjtime``-like slew, over ~4 s for the kernel PLL,
  whose lag then adds to the error (``bench/discipline.py``, 100 ns PPS: 55 ns
  RMS with the fast slew, 210 ns with the kernel PLL's, from its slow tail
  after the initial frequency acquisition).

With ``cautious`` (the timekeeper's upstream loops), while a loop that was
not primed rests on one or two samples, the phase is corrected only to
within its 1-sigma uncertainty of zero, from the side the error is on: one
queued network sample must not slew the clock past zero, nor the first
two-point frequency carry it past zero for a whole poll.

A step is ordered instead when the offset exceeds ``step_threshold_ns``
(128 ms, ntpd's "step threshold") during the first ``step_limit`` updates
(chrony's ``makestep``).

Holdover: without samples the clock keeps the last frequency;
:meth:`Discipline.error_estimate_ns` grows with the filter's predicted phase
variance (frequency uncertainty times elapsed time plus the wander's
``D t^3 / 3``, with ``D`` never below the configured wander: an hour's
measurement can read low, and the estimate must not), and :meth:`Discipline.tick`, which the caller runs when a
sample is missing (at the latest by :meth:`Discipline.deadline_ns`), ends
any phase slew and reports the grown error to the clock. The next sample
after a gap carries its full weight again, because the predicted variance
has grown.

All times are POSIX ns; offsets follow :class:`appliance.refclock.sample.Sample`
(reference minus local, positive: the clock is behind); frequencies are ppb
with positive meaning the clock runs faster. The time axis of the filter is
the samples' reference time, which does not jump when the clock is stepped.
"""

from __future__ import annotations

import enum
import itertools
import math
import statistics
from collections import deque
from dataclasses import dataclass

from appliance.clock.allan import PI_CRYSTAL_WANDER_PPB
from appliance.clock.base import (
    DEFAULT_MAX_SLEW_RATE_PPB,
    MAX_FREQUENCY_PPB,
    AccrueOffset,
    ClockOp,
    SetFrequency,
    SetSyncStatus,
    Step,
    SyncStatus,
    check_max_slew_rate,
)
from appliance.refclock.sample import Sample
from appliance.timebase import NS_PER_S


class PhaseCorrection(enum.Enum):
    """How the discipline removes a phase error: through the frequency, or with ``AccrueOffset``."""

    FREQUENCY = "frequency"
    SLEW = "slew"


#: The diffusions (ppb^2/s) the wander is chosen from: decades from 1e-11 (with 100 ns PPS a loop time constant
#: of about 1.5 h: a line through every pulse of the hour) to 1e-7, half-decades from there to a wandering 10.
WANDER_GRID: tuple[float, ...] = (1e-11, 1e-10, 1e-9, 1e-8) + tuple(float(10.0 ** (k / 2)) for k in range(-14, 3))
#: The likelihoods' memory, in samples.
WANDER_MEMORY = 1000
#: A loop is as good as the best when its log-likelihood is within this (nats).
WANDER_MARGIN = 2.0
#: Changes of the ordered frequency remembered, so a late sample meets the corrections of its own time.
_ANCHORS = 64
#: The jitter the samples are weighed by is the median of this many deviations (over an hour of PPS), worked out
#: afresh every :data:`JITTER_REFRESH` samples: the last ``history``'s median swings by +-20 % from one sample to
#: the next, and each swing reweighs the samples, which on a quiet oscillator moves the loop off the least-squares
#: line through them (59 ns RMS at 1 us of PPS jitter, against the line's 49 ns, in the same 10 seeds).
JITTER_MEMORY = 4096
#: How often (in samples) the long median is worked out again once ``history`` samples are in.
JITTER_REFRESH = 64
#: The last ``history`` deviations' jitter is taken instead when it is this many times off the long one (a real
#: change of the jitter, which the long median would follow only after half its memory).
JITTER_JUMP = 2.0
#: Median absolute deviation of a unit normal: sigma = MAD / 0.6745.
_MAD_TO_SIGMA = 1.0 / 0.6745


@dataclass(frozen=True, slots=True)
class DisciplineConfig:
    """Tuning of :class:`Discipline`; the defaults suit a PPS-disciplined Raspberry Pi.

    - ``phase_correction``: see :class:`PhaseCorrection`.
    - ``step_threshold_ns``: step instead of slewing when the offset is larger (128 ms).
    - ``step_limit``: steps are allowed during this many first updates; -1: always, 0: never.
    - ``max_frequency_ppb``: the frequency estimate is limited to +- this (500 ppm).
    - ``max_slew_rate_ppb``: chrony's ``maxslewrate``: the frequency ordered while a phase error
      is slewed away (estimate plus slew) never exceeds +- this (83,333 ppm); it must not exceed
      the clock's own limit.
    - ``max_pending_ns``: with ``SLEW``, the clock's pending slew is kept within +- this
      (the kernel's 0.5 s).
    - ``min_correction_ns`` / ``max_correction_ns``: with ``FREQUENCY``, the phase is slewed over
      the last sample interval limited to this range (1 s .. 4 s: an offset is closed in seconds,
      at up to ``max_slew_rate_ppb``, not over a 64 s poll).
    - ``wander_ppb_per_sqrt_s``: the oscillator's random-walk FM, ``sqrt(D)`` (ppb/sqrt(s)): the
      rated wander, the least the holdover estimate assumes; with ``measure_wander`` (the default)
      the loop follows the measured one (:class:`_WanderBank`, from the first sample on), without
      it, this one.
    - ``initial_jitter_ns``: the measurement jitter assumed until it has been measured.
    - ``min_jitter_ns``: floor of the measured jitter.
    - ``cold_frequency_sd_ppb`` / ``warm_frequency_sd_ppb``: the uncertainty of the
      initial frequency without / with a drift file.
    - ``change_drift`` / ``change_threshold`` / ``innovation_clip``: the CUSUM (sigma units).
    - ``history``: samples kept for a re-estimate after a change, and for the jitter.
    - ``reweigh``: when the measured jitter changes, the samples taken so far count as if they had
      had the new one (their jitter does not change: a PPS); off for samples whose noise changes
      with the network (an upstream server's, whose early samples may be truly worse).
    - ``cautious``: while a loop that was not primed has one or two samples, the phase is corrected
      only to within its 1-sigma uncertainty of zero, from the side the error is on (for sparse
      network samples: one queued sample must not slew the clock past zero, nor set the first
      frequency that then carries it further for a whole poll).
    - ``holdover_after_ns``: with no sample for this long (and for twice the interval between the last two
      samples, when that is longer) the discipline reports holdover.
    - ``unsync_error_ns``: the clock is reported unsynchronised when the error estimate exceeds this.
    """

    phase_correction: PhaseCorrection = PhaseCorrection.FREQUENCY
    step_threshold_ns: int = 128_000_000
    step_limit: int = 3
    max_frequency_ppb: float = MAX_FREQUENCY_PPB
    max_slew_rate_ppb: float = DEFAULT_MAX_SLEW_RATE_PPB
    max_pending_ns: int = 500_000_000
    min_correction_ns: int = NS_PER_S
    max_correction_ns: int = 4 * NS_PER_S
    wander_ppb_per_sqrt_s: float = PI_CRYSTAL_WANDER_PPB
    measure_wander: bool = True
    initial_jitter_ns: float = 1_000.0
    min_jitter_ns: float = 1.0
    cold_frequency_sd_ppb: float = 100_000.0
    warm_frequency_sd_ppb: float = 1_000.0
    change_drift: float = 1.5
    change_threshold: float = 12.0
    innovation_clip: float = 5.0
    history: int = 64
    reweigh: bool = True
    cautious: bool = False
    holdover_after_ns: int = 10 * NS_PER_S
    unsync_error_ns: int = 100_000_000

    def __post_init__(self) -> None:
        if self.step_threshold_ns <= 0 or self.max_pending_ns <= 0:
            raise ValueError("step threshold and pending limit must be positive")
        if not 0 < self.max_frequency_ppb <= MAX_FREQUENCY_PPB:
            raise ValueError(f"max frequency must be in (0, {MAX_FREQUENCY_PPB}] ppb")
        check_max_slew_rate(self.max_slew_rate_ppb)
        if self.wander_ppb_per_sqrt_s < 0 or self.initial_jitter_ns <= 0 or self.min_jitter_ns <= 0:
            raise ValueError("wander must be >= 0 and jitters > 0")
        if not 0 < self.min_correction_ns <= self.max_correction_ns:
            raise ValueError("correction interval must satisfy 0 < min <= max")
        if self.history < 8:
            raise ValueError("history must hold at least 8 samples")


class Mode(enum.Enum):
    """What the discipline is doing."""

    UNSYNCHRONISED = "unsynchronised"  # no sample yet
    TRACKING = "tracking"
    HOLDOVER = "holdover"  # no sample for holdover_after_ns


@dataclass(frozen=True, slots=True)
class DisciplineStatus:
    """A snapshot for status pages: mode, the frequency estimate (ppb, +: faster) and its
    1-sigma uncertainty, the last offset seen (ns, +: clock behind), the measured jitter, the
    error estimate (ns), the number of updates, the reference time of the last one and the
    number of changes (frequency steps, phase jumps) detected."""

    mode: Mode
    frequency_ppb: float
    frequency_sd_ppb: float
    offset_ns: float
    jitter_ns: float
    est_error_ns: int
    updates: int
    last_update_ns: int | None
    changes: int


class _Filter:
    """The Kalman filter on the free-running offset ``Z`` (ns) and its rate (ppb)."""

    __slots__ = ("t", "z", "rate", "p00", "p01", "p11")

    def __init__(self, t: int, z: float, rate: float, var_z: float, var_rate: float) -> None:
        self.t = t
        self.z = z
        self.rate = rate
        self.p00 = var_z
        self.p01 = 0.0
        self.p11 = var_rate

    def predicted(self, t: int, d: float) -> tuple[float, float, float, float, float]:
        """Return (z, rate, p00, p01, p11) predicted to ``t`` with diffusion ``d`` (ppb^2/s)."""
        dt = (t - self.t) / NS_PER_S
        z = self.z + self.rate * dt
        p00 = self.p00 + 2.0 * self.p01 * dt + self.p11 * dt * dt + d * dt**3 / 3.0
        p01 = self.p01 + self.p11 * dt + d * dt * dt / 2.0
        p11 = self.p11 + d * dt
        return z, self.rate, p00, p01, p11

    def predict(self, t: int, d: float) -> None:
        self.z, self.rate, self.p00, self.p01, self.p11 = self.predicted(t, d)
        self.t = t

    def update(self, innovation: float, r: float) -> None:
        s = self.p00 + r
        k0 = self.p00 / s
        k1 = self.p01 / s
        self.z += k0 * innovation
        self.rate += k1 * innovation
        self.p11 -= k1 * self.p01
        self.p00 *= r / s
        self.p01 *= r / s


def _fit(points: list[tuple[int, float]], t: int, r: float) -> tuple[float, float, float, float, float]:
    """Least-squares line through ``points`` (t ns, z ns): (z at t, rate ppb, p00, p01, p11) for variance r."""
    n = len(points)
    xs = [(pt - t) / NS_PER_S for pt, _ in points]
    x_mean = sum(xs) / n
    z_mean = sum(z for _, z in points) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    sxz = sum((x - x_mean) * (z - z_mean) for x, (_, z) in zip(xs, points, strict=True))
    rate = sxz / sxx
    z_now = z_mean - rate * x_mean
    return z_now, rate, r * (1.0 / n + x_mean * x_mean / sxx), -r * x_mean / sxx, r / sxx


class _WanderBank:
    """The oscillator's wander, measured by how well each of a range of loops predicts the samples.

    One :class:`_Filter` per diffusion ``D`` in :data:`WANDER_GRID` (a
    quiet oscillator's 1e-7 to a wandering one's 10 ppb^2/s, half a decade
    apart) runs on the same free-running offsets; each keeps the Gaussian
    log-likelihood of its innovations (clipped at ``clip`` sigma, as the
    loop clips them), forgetting with a memory of :data:`WANDER_MEMORY`
    samples. The choice is the *narrowest* loop (smallest ``D``) whose
    likelihood is within :data:`WANDER_MARGIN` of the best: a loop too
    narrow for a wandering oscillator falls behind it and its
    innovations grow, which costs it likelihood fast, while a loop too wide
    for a quiet one only loses a little precision, which the likelihood
    hardly sees; so among near-equals the narrow one is taken. With white
    phase noise and no wander the narrowest is a line through every
    sample since the start, the best that can be done.
    """

    __slots__ = ("filters", "loglik", "clip")

    def __init__(self, first: _Filter, clip: float = 5.0) -> None:
        self.filters = [_Filter(first.t, first.z, first.rate, first.p00, first.p11) for _ in WANDER_GRID]
        self.loglik = [0.0] * len(WANDER_GRID)
        self.clip = clip

    def add(self, t: int, z: float, r: float) -> None:
        keep = 1.0 - 1.0 / WANDER_MEMORY
        for i, (d, f) in enumerate(zip(WANDER_GRID, self.filters, strict=True)):
            f.predict(t, d)
            s = f.p00 + r
            limit = self.clip * math.sqrt(s)
            innovation = max(-limit, min(limit, z - f.z))
            self.loglik[i] = keep * self.loglik[i] - 0.5 * (math.log(s) + innovation * innovation / s)
            f.update(innovation, r)

    def choice(self) -> int:
        best = max(self.loglik)
        return next(i for i, ll in enumerate(self.loglik) if ll >= best - WANDER_MARGIN)

    def take(self, filt: _Filter) -> float:
        """Copy the chosen loop's estimate into ``filt``; return its ``D``."""
        i = self.choice()
        f = self.filters[i]
        filt.z, filt.rate, filt.p00, filt.p01, filt.p11 = f.z, f.rate, f.p00, f.p01, f.p11
        return WANDER_GRID[i]

    def restart(self, filt: _Filter) -> None:
        """A change was detected and ``filt`` re-estimated: every loop goes on from there (the likelihoods stay)."""
        for f in self.filters:
            f.t, f.z, f.rate, f.p00, f.p01, f.p11 = filt.t, filt.z, filt.rate, filt.p00, filt.p01, filt.p11

    def stepped(self, t: int, z: float, r: float) -> None:
        """The clock was stepped: each loop keeps its frequency and restarts its phase at ``z``."""
        for d, f in zip(WANDER_GRID, self.filters, strict=True):
            f.predict(t, d)
            f.z, f.p00, f.p01 = z, r, 0.0


class Discipline:
    """The loop; see the module docstring. One instance per disciplined clock.

    ``frequency_ppb`` is the drift file's frequency (the clock runs with it
    already, or the first update sets it), or None for a cold start at 0 ppb
    with a wide uncertainty.
    """

    def __init__(self, config: DisciplineConfig | None = None, *, frequency_ppb: float | None = None) -> None:
        self._cfg = config if config is not None else DisciplineConfig()
        warm = frequency_ppb is not None
        self._freq0 = max(-self._cfg.max_frequency_ppb, min(self._cfg.max_frequency_ppb, frequency_ppb or 0.0))
        self._freq = self._freq0  # frequency ordered, phase slew included
        self._base = self._freq0  # frequency estimate, without the phase slew
        self._slew_end = 0  # FREQUENCY mode: the extra rate is due to end here
        self._slew_back = False  # the slew under way was ordered by tick(), not by a sample
        self._last_tick: int | None = None  # when tick() last ran
        self._tick_interval = 0  # between the last two ticks, ns
        self._interval = self._cfg.min_correction_ns  # the last sample interval, ns
        self._rate_sd0 = self._cfg.warm_frequency_sd_ppb if warm else self._cfg.cold_frequency_sd_ppb
        self._diffusion = self._cfg.wander_ppb_per_sqrt_s**2
        self._bank: _WanderBank | None = None  # with measure_wander, from the first sample on
        # K, the correction ordered so far (ns), against the free-running time w = u - K (u: the clock's
        # reading): piecewise linear, one anchor (w_i, K_i, frequency ordered from w_i) per change
        self._anchors: deque[tuple[float, float, float]] = deque([(0.0, 0.0, self._freq0)], maxlen=_ANCHORS)
        self._meas_local: int | None = None  # the clock reading of the last sample taken (its local time)
        self._filter: _Filter | None = None
        self._gap_ns = 0  # between the last two samples' reference times: the source's own interval
        self._updates = 0
        self._changes = 0
        self._last_offset = 0.0
        self._last_dispersion = 0
        # samples as (sequence number, t, z) for re-estimates and the jitter
        self._history: deque[tuple[int, int, float]] = deque(maxlen=self._cfg.history)
        self._deviations: deque[float] = deque(maxlen=max(JITTER_MEMORY, self._cfg.history))
        self._noted = 0  # deviations noted so far
        self._primed = False  # started from earlier samples (prime)
        self._margin = 0.0  # the phase the last sample left uncorrected (a loop's first: its uncertainty), ns
        self._weighed_jitter: float | None = None  # the jitter the last sample was weighed with
        self._long_jitter = self._cfg.initial_jitter_ns  # the median of ``_deviations`` (sigma), refreshed
        self._innovations: deque[float] = deque(maxlen=self._cfg.history)
        self._cusum_pos = 0.0
        self._cusum_neg = 0.0
        self._cusum_pos_start = 0
        self._cusum_neg_start = 0

    # --- bookkeeping of the corrections ----------------------------------------------------------

    def _correction(self, u: int) -> float:
        """K(u): how far the ordered corrections have moved the clock by the time it reads ``u``, ns.

        The ordered frequency acts on the oscillator's time, so with ``g`` the
        rate since the last change before ``u`` (at free-running time
        ``w_i``, K then ``K_i``): ``K = K_i + g (w - w_i)`` and ``u = w + K``.
        """
        anchors = self._anchors
        for i in range(len(anchors) - 1, -1, -1):
            wi, ki, fi = anchors[i]
            if wi + ki <= u or i == 0:
                g = (fi - self._freq0) * 1e-9
                return (ki + g * (u - wi)) / (1.0 + g)
        raise AssertionError("unreachable")  # pragma: no cover

    def moved_ns(self, since_ns: int, now_ns: int) -> int:
        """How far the phase slews moved the clock between its readings ``since_ns`` and ``now_ns``, ns (+: forwards).

        A measurement made at ``since_ns`` said the clock was off by some offset; by ``now_ns`` the slews
        since have moved it this much, so it says that offset minus this of the clock now (chrony restates
        every source's samples on each clock change for the same reason). What the frequency estimate
        corrects does not count: it cancels the oscillator's own drift, which the offset does not see.
        Only the corrections this loop remembers count: a reading before its oldest is taken at its oldest.
        """
        wl, kl, _ = self._anchors[0]
        since_ns = max(since_ns, round(wl + kl))
        if now_ns <= since_ns:
            return 0
        base = (self._base - self._freq0) * 1e-9  # what the frequency estimate corrects: the oscillator's own
        return round(self._correction(now_ns) - self._correction(since_ns) - base * (now_ns - since_ns))

    def _order(self, u: int, frequency_ppb: float, accrued_ns: float = 0.0) -> None:
        """The clock runs at ``frequency_ppb`` from its reading ``u`` (and ``accrued_ns`` more is corrected)."""
        wl, kl, _ = self._anchors[-1]
        u = max(u, round(wl + kl))
        k = self._correction(u)
        self._anchors.append((u - k, k + accrued_ns, frequency_ppb))
        self._freq = frequency_ppb

    def _stepped(self, step_ns: int) -> None:
        """The clock was stepped by ``step_ns``: restate the anchors (and the last sample's time) on its new scale."""
        self._anchors = deque(((w, k + step_ns, f) for w, k, f in self._anchors), maxlen=_ANCHORS)
        if self._meas_local is not None:
            self._meas_local += step_ns
        if self._last_tick is not None:
            self._last_tick += step_ns
        self._slew_end += step_ns

    def _filter_time(self, now_ns: int) -> int:
        """The filter's time (reference time) at the clock reading ``now_ns``: the last sample's plus the elapsed."""
        filt = self._filter
        assert filt is not None
        if self._meas_local is None:
            return max(now_ns, filt.t)
        return filt.t + max(0, now_ns - self._meas_local)

    # --- measurement jitter ----------------------------------------------------------------------

    def jitter_ns(self) -> float:
        """The measured jitter of the samples (1 sigma, ns), or the configured prior."""
        deviations = self._deviations
        n = len(deviations)
        if n < 8:
            return self._cfg.initial_jitter_ns
        jitter = self._long_jitter
        recent = self._cfg.history
        if n > recent:
            short = statistics.median(itertools.islice(deviations, n - recent, n)) * _MAD_TO_SIGMA
            if not jitter / JITTER_JUMP <= short <= jitter * JITTER_JUMP:
                jitter = short
        return max(self._cfg.min_jitter_ns, jitter)

    def _reweigh(self, jitter: float) -> None:
        """The samples taken so far are weighed as if they had had ``jitter`` too (with ``reweigh``).

        Their information is ``1/r`` per sample: a jitter estimate that
        changes (the first samples' from a handful of deviations, a long
        median refreshed) would leave the older samples weighed by the
        estimate of their day, so the loop's line would not be the
        least-squares line through them; scaling the covariance by the
        ratio of the variances treats the old samples as the new jitter
        says (exact for a quiet oscillator, where the covariance is ``r``
        times the samples' geometry).
        """
        old = self._weighed_jitter
        self._weighed_jitter = jitter
        if not self._cfg.reweigh or old is None or old == jitter or self._filter is None:
            return
        factor = (jitter / old) ** 2
        filters = [self._filter] + (self._bank.filters if self._bank is not None else [])
        for f in filters:
            f.p00 *= factor
            f.p01 *= factor
            f.p11 *= factor

    def _note_deviation(self, t: int, z: float) -> None:
        if len(self._history) >= 2:
            (_, t0, z0), (_, t1, z1) = self._history[-2], self._history[-1]
            span = t - t0
            if span > 0:
                wa, wb = (t - t1) / span, (t1 - t0) / span
                chord = wa * z0 + wb * z
                deviations = self._deviations
                deviations.append(abs(z1 - chord) / math.sqrt(1.0 + wa * wa + wb * wb))
                self._noted += 1
                if len(deviations) <= self._cfg.history or self._noted % JITTER_REFRESH == 0:
                    self._long_jitter = statistics.median(deviations) * _MAD_TO_SIGMA

    # --- the update ------------------------------------------------------------------------------

    def prime(self, samples: list[Sample], max_frequency_sd_ppb: float = math.inf) -> bool:
        """Start the estimate from ``samples`` taken before this loop existed, oldest first; no clock operation.

        Only before the first :meth:`update`, and only for samples taken
        while nothing steered the clock but its initial frequency (their
        offsets are then free-running offsets). A least-squares line
        through them, with the regression's covariance for the assumed
        jitter, is the starting state, as chrony's first regression over a
        new source's samples is: the next :meth:`update` then has the
        frequency too, not only the phase. Fewer than two samples, samples
        all at one time, or a line whose frequency is less certain than
        ``max_frequency_sd_ppb`` (1 sigma; samples a few seconds apart give
        mostly their jitter) leave the loop as it was. Returns whether it
        was primed.
        """
        if self._filter is not None or self._updates:
            raise RuntimeError("prime() only before the first update")
        points = [(s.reference_ns, float(s.offset_ns)) for s in samples]
        if len(points) < 2 or len({t for t, _ in points}) < 2:
            return False
        t = points[-1][0]
        self._weighed_jitter = self.jitter_ns()
        r = self._weighed_jitter**2
        z, rate, p00, p01, p11 = _fit(points, t, r)
        if math.sqrt(p11) > max_frequency_sd_ppb:
            return False
        filt = self._filter = _Filter(t, z, rate, p00, 0.0)
        filt.p01, filt.p11 = p01, p11
        self._primed = True
        for pt, pz in points:
            self._note_deviation(pt, pz)
            self._history.append((-1, pt, pz))
        return True

    def update(
        self, sample: Sample, pending_ns: int = 0, extra_noise_ns: float = 0.0, now_ns: int | None = None
    ) -> tuple[ClockOp, ...]:
        """Take one sample and return the clock operations to perform, in order.

        ``pending_ns`` is the clock's offset correction still pending (see
        :meth:`appliance.clock.base.Clock.offset_correction_ns`) read when
        the sample was taken. ``extra_noise_ns`` is what this sample may be
        off beyond the measured jitter (1 sigma, added in quadrature: half a
        network sample's delay above the path's lowest, the most a queue
        can have moved its offset), so a sample that waited in a queue
        weighs less. ``now_ns`` is the clock's reading when the
        operations are applied (None: at the sample's local time). A sample
        handed in late (a pulse read a millisecond after its edge, a pulse
        numbered by an NMEA sentence that came 0.35 s later, an NTP reply)
        is measured against the corrections in force at its local time,
        and the new ones count from ``now_ns``. Samples not newer (by
        reference time) than the last one are ignored (no operations).
        """
        t = sample.reference_ns
        filt = self._filter
        if filt is not None and t <= filt.t:
            return ()
        self._gap_ns = t - filt.t if filt is not None else 0
        cfg = self._cfg
        now = sample.local_ns if now_ns is None else max(now_ns, sample.local_ns)
        offset = sample.offset_ns - pending_ns  # against the clock once its slew is done
        z = offset + self._correction(sample.local_ns)
        self._meas_local = sample.local_ns
        jitter = self.jitter_ns()
        self._reweigh(jitter)
        r = jitter**2 + extra_noise_ns**2
        ops: list[ClockOp] = []
        may_step = cfg.step_limit < 0 or self._updates < cfg.step_limit
        stepped = may_step and abs(offset) > cfg.step_threshold_ns
        if stepped:
            ops.append(Step(offset))
            self._order(now, self._freq)
            self._stepped(offset)
            now += offset
        if filt is not None:
            self._interval = t - filt.t
        bank = self._bank
        if filt is None:
            filt = self._filter = _Filter(t, z, 0.0, r, self._rate_sd0**2)
            if self._cfg.measure_wander:
                self._bank = _WanderBank(filt)
        elif stepped:
            filt.predict(t, self._diffusion)
            filt.z, filt.p00, filt.p01 = z, r, 0.0
            self._reset_cusum()
            if bank is not None:
                bank.stepped(t, z, r)
        else:
            if bank is not None:
                bank.add(t, z, r)
            if self._estimate(filt, t, z, r) and bank is not None:
                bank.restart(filt)
            elif bank is not None:
                # the loop follows the bandwidth that predicts the samples best (the narrowest among the
                # near-best): its estimate, and its wander for the predictions to come
                self._diffusion = bank.take(filt)
        self._note_deviation(t, z)
        self._history.append((self._updates, t, z))
        self._updates += 1
        self._last_offset = float(offset)
        self._last_dispersion = sample.dispersion_ns
        # with ``cautious``, while the loop rests on one or two samples (no frequency, or one from two points;
        # nothing primed), its phase is corrected to within its own uncertainty of zero, from the side it is
        # on: not slewed past zero on one sample's noise
        young = cfg.cautious and self._updates <= 2 and not self._primed and not stepped
        margin = self._margin = math.sqrt(max(filt.p00, 0.0)) if young else 0.0
        ops.extend(self._correct(filt, now, pending_ns, margin))
        ops.append(SetSyncStatus(self._sync_status(now)))
        return tuple(ops)

    def _estimate(self, filt: _Filter, t: int, z: float, r: float) -> bool:
        """Predict and update ``filt`` with ``z``; True when a change was detected (and the state re-estimated)."""
        cfg = self._cfg
        filt.predict(t, self._diffusion)
        innovation = z - filt.z
        sigma = math.sqrt(filt.p00 + r)
        # the detector's unit: the model's sigma, or the innovations' measured spread if larger
        # (a wander the model underrates must not look like a change)
        spread = statistics.median(self._innovations) * _MAD_TO_SIGMA if len(self._innovations) >= 8 else 0.0
        self._innovations.append(abs(innovation))
        u = max(-cfg.innovation_clip, min(cfg.innovation_clip, innovation / max(sigma, spread)))
        if self._cusum(u):
            since = self._cusum_pos_start if self._cusum_pos > self._cusum_neg else self._cusum_neg_start
            points = [(pt, pz) for seq, pt, pz in self._history if seq >= since] + [(t, z)]
            self._reset_cusum()
            if len(points) >= 2:
                self._changes += 1
                filt.z, filt.rate, filt.p00, filt.p01, filt.p11 = _fit(points, t, r)
                return True
        filt.update(max(-cfg.innovation_clip * sigma, min(cfg.innovation_clip * sigma, innovation)), r)
        return False

    def _cusum(self, u: float) -> bool:
        """Feed one normalised innovation; True when a change is detected."""
        drift = self._cfg.change_drift
        if self._cusum_pos <= 0.0:
            self._cusum_pos_start = self._updates
        if self._cusum_neg <= 0.0:
            self._cusum_neg_start = self._updates
        self._cusum_pos = max(0.0, self._cusum_pos + u - drift)
        self._cusum_neg = max(0.0, self._cusum_neg - u - drift)
        return max(self._cusum_pos, self._cusum_neg) > self._cfg.change_threshold

    def _reset_cusum(self) -> None:
        self._cusum_pos = self._cusum_neg = 0.0

    def _correct(self, filt: _Filter, now: int, pending_ns: int, margin_ns: float = 0.0) -> list[ClockOp]:
        """Order the frequency estimate and the removal of the phase error, at the clock reading ``now``
        (all of it but ``margin_ns``, which stays on the side the error is on)."""
        cfg = self._cfg
        limit = cfg.max_frequency_ppb
        self._base = max(-limit, min(limit, self._freq0 + filt.rate))
        # still to correct now, ns (+: the clock is behind the estimate): the estimate carried on to now
        z_now = filt.predicted(self._filter_time(now), self._diffusion)[0]
        phase = z_now - self._correction(now)
        if margin_ns > 0.0:
            phase = math.copysign(max(0.0, abs(phase) - margin_ns), phase)
        if cfg.phase_correction is PhaseCorrection.FREQUENCY:
            period = max(cfg.min_correction_ns, min(cfg.max_correction_ns, self._interval))
            end = self._on_tick_grid(now + period, now)
            period = end - now
            slew_limit = cfg.max_slew_rate_ppb
            self._order(now, max(-slew_limit, min(slew_limit, self._base + phase * NS_PER_S / period)))
            self._slew_end = end
            self._slew_back = False
            return [SetFrequency(self._freq)]
        self._order(now, self._base)
        ops: list[ClockOp] = [SetFrequency(self._freq)]
        # keep what the clock will have pending within +-max_pending_ns
        room_hi = cfg.max_pending_ns - pending_ns
        room_lo = -cfg.max_pending_ns - pending_ns
        slew = round(max(room_lo, min(room_hi, phase)))
        if slew:
            ops.append(AccrueOffset(slew))
            self._order(now, self._freq, slew)
        return ops

    def follow_ticks(self, other: Discipline) -> None:
        """Take over ``other``'s record of when :meth:`tick` runs (a successor loop on the same timer)."""
        self._last_tick, self._tick_interval = other._last_tick, other._tick_interval

    def _on_tick_grid(self, end: int, start: int) -> int:
        """``end`` moved to the nearest expected :meth:`tick` at least half a tick after ``start`` (the
        caller ticks about once a second, and a fast slew must end at a tick, not up to a second after
        it; a sample that comes just after a tick is slewed over one tick interval, not two)."""
        interval = self._tick_interval
        if self._last_tick is None or interval <= 0 or end <= self._last_tick:
            return end
        n = max(1, round((end - self._last_tick) / interval))
        while self._last_tick + n * interval < start + interval // 2:
            n += 1
        return self._last_tick + n * interval

    # --- holdover and status -----------------------------------------------------------------------

    def error_estimate_ns(self, now_ns: int) -> int:
        """The clock's estimated error (1 sigma, ns) at ``now_ns``; grows without samples.

        Unknown (no sample yet): ``unsync_error_ns``.
        """
        filt = self._filter
        if filt is None:
            return self._cfg.unsync_error_ns
        # the wander measured over an hour can read low: the prediction never assumes less than
        # the configured (rated) wander, so the holdover estimate errs on the safe side
        diffusion = max(self._diffusion, self._cfg.wander_ppb_per_sqrt_s**2)
        z, _, p00, _, _ = filt.predicted(self._filter_time(now_ns), diffusion)
        gap = abs(z - self._correction(now_ns))
        return round(math.sqrt(max(p00, 0.0)) + gap)

    def _sync_status(self, now_ns: int) -> SyncStatus:
        est = self.error_estimate_ns(now_ns)
        synchronised = self._filter is not None and est < self._cfg.unsync_error_ns
        return SyncStatus(synchronised, est, 3 * est + self._last_dispersion)

    def deadline_ns(self) -> int | None:
        """When :meth:`tick` must run if no sample has come by then (POSIX ns), or None.

        With ``PhaseCorrection.FREQUENCY`` this is the end of the current
        phase slew; otherwise there is no deadline.
        """
        return self._slew_end if self._freq != self._base else None

    def tick(self, now_ns: int) -> tuple[ClockOp, ...]:
        """The operations for a moment without a sample (holdover): run it when a sample is missing.

        Ends a phase slew that is due to end (the clock goes on with the
        frequency estimate, as it does through holdover) and reports the
        grown error estimate (``SetSyncStatus``). Running it more often than
        needed is harmless.
        """
        ops: list[ClockOp] = []
        since_tick = now_ns - self._last_tick if self._last_tick is not None else 0
        if since_tick > 0:
            self._tick_interval = since_tick
        self._last_tick = now_ns
        filt = self._filter
        early = since_tick // 8  # a tick this close before the end ends the slew (a little early)
        if filt is not None and self._freq != self._base and now_ns >= self._slew_end - early:
            self._order(now_ns, self._base)
            # the slew ran on until this tick: slew what it overran back within one tick interval, once
            # (a slew-back that itself ran on, ticks sparser than it lasts, is not slewed back again: the
            # chain grew threefold per tick with 16 s ticks in holdover; the next sample corrects it)
            phase = filt.predicted(self._filter_time(now_ns), self._diffusion)[0] - self._correction(now_ns)
            phase = math.copysign(max(0.0, abs(phase) - self._margin), phase)  # what the sample left, stays
            cfg = self._cfg
            period = max(cfg.min_correction_ns, min(cfg.max_correction_ns, since_tick))
            again = self._slew_back
            self._slew_back = False
            if abs(phase) > cfg.min_jitter_ns and since_tick > 0 and not again:
                limit = cfg.max_slew_rate_ppb
                self._order(now_ns, max(-limit, min(limit, self._base + phase * NS_PER_S / period)))
                self._slew_end = now_ns + period
                self._slew_back = True
            ops.append(SetFrequency(self._freq))
        ops.append(SetSyncStatus(self._sync_status(now_ns)))
        return tuple(ops)

    @property
    def frequency_ppb(self) -> float:
        """The frequency estimate, ppb (+: faster), without any phase slew: what a drift file records."""
        return self._base

    def mode(self, now_ns: int) -> Mode:
        """UNSYNCHRONISED before the first sample; HOLDOVER when no sample came for ``holdover_after_ns`` and
        for twice the interval between the last two (an upstream server polled every 64 s is not missed
        between its replies; one that misses two is)."""
        if self._filter is None:
            return Mode.UNSYNCHRONISED
        if now_ns - self._filter.t > max(self._cfg.holdover_after_ns, 2 * self._gap_ns):
            return Mode.HOLDOVER
        return Mode.TRACKING

    def status(self, now_ns: int) -> DisciplineStatus:
        """A snapshot of the discipline at ``now_ns``."""
        filt = self._filter
        return DisciplineStatus(
            mode=self.mode(now_ns),
            frequency_ppb=self._base,
            frequency_sd_ppb=math.sqrt(filt.p11) if filt is not None else self._rate_sd0,
            offset_ns=self._last_offset,
            jitter_ns=self.jitter_ns(),
            est_error_ns=self.error_estimate_ns(now_ns),
            updates=self._updates,
            last_update_ns=filt.t if filt is not None else None,
            changes=self._changes,
        )
