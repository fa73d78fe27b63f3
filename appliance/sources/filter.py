"""The clock filter of one source (RFC 5905 section 10), pure: samples in, the best estimate out.

We keep RFC 5905's filter rather than chrony's regression: the discipline
(:mod:`appliance.clock.discipline`) already fits phase and frequency to the
selected offsets, so the per-source stage only has to reject the samples that
a long network path spoiled and say how good the rest are. The filter is an
8-stage shift register of ``(t, theta, delta, epsilon)`` tuples (arrival
time, offset, delay, dispersion), newest first:

- every stage's dispersion grows with its age at PHI = 15 ppm
  (:data:`~appliance.state.PHI_PPB`), the frequency tolerance;
- on each new sample the stages are sorted by delay (empty and dummy stages
  last, ties to the lower dispersion, so the newest of equal-delay refclock
  samples comes first); the first is the *best* sample. The source's offset
  and delay are taken from it only if it is newer than the one used last
  (RFC 5905's "use a sample only once and never an older one");
- the source's dispersion is ``epsilon = sum(epsilon_i / 2**(i+1))`` over
  the sorted stages, so a dummy stage (``MAXDISP`` = 16 s) weighs in. RFC
  5905 counts the stages not filled yet at MAXDISP too, so a source needs
  four samples before its distance falls below MAXDIST (1.5 s), which is what
  ``iburst`` is for: 192 s at a 64 s poll without it. With
  ``count_empty=False`` (the NTP servers' filters,
  :mod:`appliance.sources.source`) the sum runs over the samples there are,
  as chrony's selection does: how many samples a source needs before it is
  selected is then the owner's rule (chrony's three, for its regression),
  not an artefact of the empty stages;
- the source's jitter is the RMS of the differences between the valid
  samples' offsets and the best one's, never below ``jitter_floor_ns``
  (the local clock's precision). Like epsilon it is recomputed at every
  sample, whether or not the offset moves.

Timeouts: when three polls in a row bring nothing the owner calls
:meth:`ClockFilter.add_dummy`, which shifts in a ``MAXDISP`` stage, so the
dispersion of a silent source climbs and it loses selection before its reach
register runs out (RFC 5905 section 10.1, "timeout handling").

All values are int ns; square roots are :func:`math.isqrt`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from appliance.state import PHI_PPB
from appliance.timebase import NS_PER_S

#: Stages of the shift register (RFC 5905 "NSTAGE").
NSTAGES = 8
#: The dispersion of an empty or dummy stage (RFC 5905 "MAXDISP", 16 s).
MAXDISP_NS = 16 * NS_PER_S


def phi_growth(age_ns: int) -> int:
    """Dispersion in ns that ``age_ns`` adds at PHI (15 ppm); 0 for a negative age."""
    return max(0, age_ns) * PHI_PPB // NS_PER_S


@dataclass(frozen=True, slots=True)
class Stage:
    """One filter stage: a sample's local time, offset, delay and dispersion (at ``time_ns``), in ns."""

    time_ns: int
    offset_ns: int
    delay_ns: int
    dispersion_ns: int

    @property
    def dummy(self) -> bool:
        """True for the stage shifted in by a timeout (or an empty one)."""
        return self.dispersion_ns >= MAXDISP_NS

    def dispersion_at(self, now_ns: int) -> int:
        return min(MAXDISP_NS, self.dispersion_ns + phi_growth(now_ns - self.time_ns))


@dataclass(frozen=True, slots=True)
class FilterOutput:
    """What the filter says after its last run.

    ``offset_ns``, ``delay_ns`` and ``jitter_ns`` come from the best sample,
    taken at ``sample_ns``. ``dispersion_ns`` (epsilon) was computed at
    ``run_ns``, the arrival of the newest sample; it grows at PHI from there.
    """

    sample_ns: int
    run_ns: int
    offset_ns: int
    delay_ns: int
    dispersion_ns: int
    jitter_ns: int

    def dispersion_at(self, now_ns: int) -> int:
        """Epsilon at ``now_ns``: the value at the last run plus PHI times the time since."""
        return self.dispersion_ns + phi_growth(now_ns - self.run_ns)


class ClockFilter:
    """RFC 5905's clock filter; see the module docstring.

    ``jitter_floor_ns`` is the smallest jitter reported (the precision of
    the local clock: two readings cannot be told apart below it);
    ``count_empty`` whether the stages not filled yet count at MAXDISP in
    epsilon (RFC 5905) or not at all (chrony).
    """

    def __init__(self, jitter_floor_ns: int = 1, *, count_empty: bool = True) -> None:
        self.jitter_floor_ns = max(1, jitter_floor_ns)
        self.count_empty = count_empty
        self._stages: deque[Stage] = deque(maxlen=NSTAGES)
        self._output: FilterOutput | None = None

    @property
    def output(self) -> FilterOutput | None:
        """The estimate of the last run that found a usable sample, or None before any."""
        return self._output

    @property
    def valid_samples(self) -> int:
        """How many stages hold a real sample (not a timeout's dummy)."""
        return sum(1 for s in self._stages if not s.dummy)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The register, newest first (fewer than NSTAGES until it has filled)."""
        return tuple(self._stages)

    def clear(self) -> None:
        """Forget every sample (after the clock was stepped, RFC 5905 "clear")."""
        self._stages.clear()
        self._output = None

    def add(self, time_ns: int, offset_ns: int, delay_ns: int, dispersion_ns: int) -> bool:
        """Shift in a sample taken at local time ``time_ns``; return True if the best sample changed.

        ``offset_ns`` is reference minus local (positive: the local clock is
        behind); ``delay_ns`` the round-trip delay (0 for a refclock,
        negative values count as 0); ``dispersion_ns`` the sample's own
        error bound at ``time_ns``.
        """
        dispersion = min(MAXDISP_NS - 1, max(0, dispersion_ns))
        self._stages.appendleft(Stage(time_ns, offset_ns, max(0, delay_ns), dispersion))
        return self._run(time_ns)

    def shift(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate every stage on the new scale.

        A stored offset (reference minus local) falls by the step and its
        local time rises by it, so the samples stay usable (chrony slews its
        stored samples the same way) instead of being thrown away.
        """
        self._stages = deque(
            (Stage(s.time_ns + step_ns, s.offset_ns - step_ns, s.delay_ns, s.dispersion_ns) for s in self._stages),
            maxlen=NSTAGES,
        )
        o = self._output
        if o is not None:
            self._output = FilterOutput(
                o.sample_ns + step_ns,
                o.run_ns + step_ns,
                o.offset_ns - step_ns,
                o.delay_ns,
                o.dispersion_ns,
                o.jitter_ns,
            )

    def slewed(self, moved_ns: Callable[[int], int]) -> None:
        """The clock's phase was slewed: each stored offset less ``moved_ns(t)``, what the slews moved the
        clock since that sample's time ``t``, so the stages say where the clock stands now.

        Chrony restates its stored samples at every clock change likewise. Left as measured, samples from
        before a fast slew (tens of ms in a second) disagree with those after it by the slew: a server
        looks that far off, its jitter swells with it, and selection outvotes the source that is right.
        """
        self._stages = deque(
            (
                s if s.dummy else Stage(s.time_ns, s.offset_ns - moved_ns(s.time_ns), s.delay_ns, s.dispersion_ns)
                for s in self._stages
            ),
            maxlen=NSTAGES,
        )
        o = self._output
        if o is not None:
            self._output = FilterOutput(
                o.sample_ns, o.run_ns, o.offset_ns - moved_ns(o.sample_ns), o.delay_ns, o.dispersion_ns, o.jitter_ns
            )

    def add_dummy(self) -> None:
        """Shift in a timeout stage (MAXDISP): the source's dispersion rises.

        It takes no time: the dummy is dated like the newest stage and the
        filter runs again as of its last run, so callers on another clock
        (the NTP client schedules on the monotonic clock) can use it.
        """
        when = self._output.run_ns if self._output is not None else 0
        self._stages.appendleft(Stage(self._stages[0].time_ns if self._stages else when, 0, 0, MAXDISP_NS))
        self._run(when)

    def _run(self, now_ns: int) -> bool:
        """Sort, recompute epsilon, and take the best sample if it is new (RFC 5905 section 10.2/10.3)."""
        aged = [(s, s.dispersion_at(now_ns)) for s in self._stages]
        aged.sort(key=lambda sd: (sd[0].dummy or sd[1] >= MAXDISP_NS, sd[0].delay_ns, sd[1]))
        # RFC 5905: empty stages beyond the filled ones count as MAXDISP too
        dispersions = [d for _, d in aged] + [MAXDISP_NS] * ((NSTAGES - len(aged)) if self.count_empty else 0)
        epsilon = sum(d >> (i + 1) for i, d in enumerate(dispersions))
        valid = [s for s, d in aged if not s.dummy and d < MAXDISP_NS]
        old = self._output
        if not valid:
            if old is not None:
                self._output = FilterOutput(old.sample_ns, now_ns, old.offset_ns, old.delay_ns, epsilon, old.jitter_ns)
            return False
        best = valid[0]
        jitter = 0
        if len(valid) > 1:
            squares = sum((s.offset_ns - best.offset_ns) ** 2 for s in valid[1:])
            jitter = math.isqrt(squares // (len(valid) - 1))
        jitter = max(jitter, self.jitter_floor_ns)
        if old is not None and best.time_ns <= old.sample_ns:
            # the best is a sample used before (or older): dispersion and jitter move on, not the offset
            self._output = FilterOutput(old.sample_ns, now_ns, old.offset_ns, old.delay_ns, epsilon, jitter)
            return False
        self._output = FilterOutput(best.time_ns, now_ns, best.offset_ns, best.delay_ns, epsilon, jitter)
        return True
