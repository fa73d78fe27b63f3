"""The discipline on virtual time: a simulated clock, sample sources and the loop, hours in seconds.

:func:`run` plays a :class:`Scenario`: a :class:`~appliance.clock.simulated.SimulatedClock`
(frequency error, random-walk wander, temperature steps), sources that hand
:class:`~appliance.refclock.sample.Sample` values to the
:class:`~appliance.clock.discipline.Discipline`, and the clock operations
the discipline returns applied to the clock, the way the daemon wires them.
It returns a :class:`Trace`: the clock's true time error once per second.

Sources implement :class:`SampleSource`: "when is your next sample due (true
time)?" and "take it now". :class:`PpsSource` is a GPS PPS paired with its
NMEA second: at each true second edge it reads the local clock, adds
Gaussian timestamping jitter and reports the edge as the reference time.
An upstream NTP server would be another source, due at its poll interval.

Everything random comes from ``random.Random`` instances seeded from the
scenario's seed (one per component), so a seed gives the same trace on any
machine.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass, field
from typing import Protocol

from appliance.clock.allan import PI_CRYSTAL_WANDER_PPB
from appliance.clock.base import apply
from appliance.clock.discipline import Discipline, DisciplineConfig, DisciplineStatus
from appliance.clock.simulated import DEFAULT_START_NS, FrequencyStep, Oscillator, SimulatedClock
from appliance.clock.slew import SlewModel
from appliance.refclock.sample import Sample
from appliance.timebase import NS_PER_S


class SampleSource(Protocol):
    """A source of samples on virtual time."""

    def next_due_ns(self) -> int | None:
        """The true time (POSIX ns) of the next sample, or None when there will be none."""
        ...

    def take(self, clock: SimulatedClock) -> Sample | None:
        """Take the sample due now (``clock.true_ns == next_due_ns()``); None if it is missing."""
        ...


class PpsSource:
    """A PPS edge every ``interval_ns`` of true time, paired with its second (a perfect NMEA lock).

    The local timestamp is the clock's reading at the edge plus Gaussian
    jitter of ``jitter_ns`` (1 sigma). No pulses during ``outages``
    (half-open [start, end) intervals of true time, POSIX ns).
    """

    def __init__(
        self,
        rng: random.Random,
        jitter_ns: float,
        first_ns: int,
        *,
        interval_ns: int = NS_PER_S,
        outages: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self._rng = rng
        self._jitter_ns = jitter_ns
        self._next = first_ns
        self._interval = interval_ns
        self._outages = outages

    def next_due_ns(self) -> int | None:
        return self._next

    def take(self, clock: SimulatedClock) -> Sample | None:
        edge = self._next
        self._next += self._interval
        noise = round(self._rng.gauss(0.0, self._jitter_ns)) if self._jitter_ns > 0 else 0
        if any(start <= edge < end for start, end in self._outages):
            return None
        return Sample(local_ns=clock.now_ns() + noise, reference_ns=edge)


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to simulate. Times in ``frequency_steps`` and ``pps_outages`` count from the start (ns).

    - ``frequency_error_ppb``: the oscillator's initial error (+: fast);
      ``wander_ppb_per_sqrt_s`` its random-walk FM (default: a Pi crystal);
      ``frequency_steps``: temperature steps.
    - ``initial_offset_ns``: the clock's error at the start (clock minus true).
    - ``pps_jitter_ns``: 1-sigma timestamping jitter of the PPS.
    - ``drift_ppb``: a drift file's frequency applied at start, or None (cold start).
    - ``slew``: the clock's slew model (default: 500 ppm rate-limited).
    """

    seed: int = 1
    duration_ns: int = 3600 * NS_PER_S
    frequency_error_ppb: float = 25_000.0
    wander_ppb_per_sqrt_s: float = PI_CRYSTAL_WANDER_PPB
    frequency_steps: tuple[FrequencyStep, ...] = ()
    initial_offset_ns: int = 0
    pps_jitter_ns: float = 1_000.0
    pps_outages: tuple[tuple[int, int], ...] = ()
    drift_ppb: float | None = None
    config: DisciplineConfig = field(default_factory=DisciplineConfig)
    slew: SlewModel | None = None
    start_ns: int = DEFAULT_START_NS


@dataclass(frozen=True, slots=True)
class Trace:
    """One point per second of true time from ``start_ns``: index ``i`` is ``start_ns + i`` seconds.

    ``time_error_ns``: clock minus true time (ns), read just before that
    second's sample is processed; ``est_error_ns``: the discipline's own
    error estimate then; ``frequency_ppb``: the clock's frequency correction.
    """

    start_ns: int
    time_error_ns: array[float]
    est_error_ns: array[float]
    frequency_ppb: array[float]
    final: DisciplineStatus

    def index(self, since_start_ns: int) -> int:
        """The index of the point ``since_start_ns`` after the start."""
        return since_start_ns // NS_PER_S


def run(scenario: Scenario) -> Trace:
    """Play ``scenario`` on virtual time and return its trace."""
    start = scenario.start_ns
    oscillator = Oscillator(
        frequency_error_ppb=scenario.frequency_error_ppb,
        wander_ppb_per_sqrt_s=scenario.wander_ppb_per_sqrt_s,
        steps=tuple(FrequencyStep(start + s.at_ns, s.delta_ppb) for s in scenario.frequency_steps),
    )
    clock = SimulatedClock(
        random.Random(f"clock:{scenario.seed}"),
        oscillator,
        start_ns=start,
        initial_offset_ns=scenario.initial_offset_ns,
        slew=scenario.slew,
    )
    discipline = Discipline(scenario.config, frequency_ppb=scenario.drift_ppb)
    if scenario.drift_ppb is not None:
        clock.set_frequency_ppb(scenario.drift_ppb)  # as the daemon does when it reads the drift file
    outages = tuple((start + a, start + b) for a, b in scenario.pps_outages)
    sources: list[SampleSource] = [
        PpsSource(random.Random(f"pps:{scenario.seed}"), scenario.pps_jitter_ns, start + NS_PER_S, outages=outages)
    ]
    return play(clock, discipline, sources, start, start + scenario.duration_ns)


def play(clock: SimulatedClock, discipline: Discipline, sources: list[SampleSource], start: int, end: int) -> Trace:
    """Run ``discipline`` on ``clock`` with ``sources`` from true time ``start`` to ``end`` (ns).

    The daemon's wiring: each sample goes to :meth:`Discipline.update` with
    the clock's pending slew, and its operations are applied to the clock; a
    second without a sample (or a passed :meth:`Discipline.deadline_ns`)
    runs :meth:`Discipline.tick`. The clock must stand at ``start``.
    """
    errors: array[float] = array("d")
    estimates: array[float] = array("d")
    frequencies: array[float] = array("d")
    next_point = start
    while True:
        dues = [d for d in (s.next_due_ns() for s in sources) if d is not None]
        now = min([next_point, *dues])
        if now >= end:
            break
        clock.advance_to(now)
        point = now == next_point
        if point:
            errors.append(clock.time_error_ns())
            estimates.append(float(discipline.error_estimate_ns(clock.now_ns())))
            frequencies.append(clock.frequency_ppb())
            next_point += NS_PER_S
        sampled = False
        for source in sources:
            if source.next_due_ns() == now:
                sample = source.take(clock)
                if sample is not None:
                    apply(clock, discipline.update(sample, clock.offset_correction_ns()))
                    sampled = True
        deadline = discipline.deadline_ns()
        if point and not sampled or deadline is not None and clock.now_ns() >= deadline:
            # the daemon's once-a-second timer when no sample came
            apply(clock, discipline.tick(clock.now_ns()))
    return Trace(start, errors, estimates, frequencies, discipline.status(clock.now_ns()))
