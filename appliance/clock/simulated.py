"""A simulated clock: a virtual oscillator on virtual time, the fake behind the clock interface.

True time advances only when the simulation calls :meth:`SimulatedClock.advance`.
The clock reads ``true time + phase error``; the phase error integrates the
clock's rate error, which is the sum of

- the oscillator's intrinsic frequency error (:class:`Oscillator`: an
  initial error in ppb, positive = runs fast, plus scheduled steps such as a
  temperature change, :class:`FrequencyStep`);
- a random-walk frequency wander: once per tick (1 s) the frequency takes a
  Gaussian step of ``wander * sqrt(tick)`` ppb, drawn from the
  ``random.Random`` passed in (no global generator);
- the frequency correction set through the clock interface (positive: faster),
  up to ``max_slew_rate_ppb`` (chrony's ``maxslewrate``, 83,333 ppm by default),
  acting on the oscillator's time as the kernel's does (it scales the
  oscillator's ticks): ``f`` on an oscillator ``y`` fast gives ``y + f + y f``
  (the product is 0.6 ppb for 25 ppm corrected);
- the slew of accrued offsets, worked off by a :mod:`appliance.clock.slew`
  model. The default is :class:`~appliance.clock.slew.RateLimitedSlew` at
  500 ppm, a PLL-less slew like Linux ``adjtime()``; pass
  :class:`~appliance.clock.slew.ExponentialSlew` to mimic the kernel PLL
  that :mod:`appliance.clock.kernel` drives.

Random-walk frequency modulation and the Allan deviation: if the frequency
diffuses with coefficient ``D`` (its variance grows by ``D`` per second;
here ``D = wander**2``, fractional units ``wander * 1e-9``), the Allan
variance is ``sigma_y^2(tau) = D * tau / 3``. So
``wander = adev(tau) * 1e9 * sqrt(3 / tau)`` ppb/sqrt(s), and a Raspberry
Pi crystal with ADEV 1e-8 at 100 s has ``wander = sqrt(3) = 1.73``
(:data:`PI_CRYSTAL_WANDER_PPB`, :mod:`appliance.clock.allan`). The unit tests estimate the ADEV from the
simulated phase and check this relation.

Leap seconds are executed as the kernel executes them
(:func:`~appliance.clock.base.leap_schedule`): once armed with
:meth:`SimulatedClock.set_leap`, the clock's reading steps back one second
when it reaches midnight UTC (insert: 23:59:59 shows twice) or forwards one
second when it reaches 23:59:59 (delete). True time is the elapsed-time
scale and has no leap seconds: after an inserted second the clock reads one
second less than ``true_ns`` (plus its phase error). The executed steps are
kept apart from the phase error, so :meth:`SimulatedClock.time_error_ns`
stays the oscillator's and the discipline's error, and
:meth:`SimulatedClock.leap_offset_ns` says how far the leaps moved the
reading. A harness whose reference follows UTC subtracts the world's leap
seconds from ``true_ns`` the same way.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from appliance.clock.allan import PI_CRYSTAL_WANDER_PPB, wander_for_adev
from appliance.clock.base import (
    DEFAULT_MAX_SLEW_RATE_PPB,
    SyncStatus,
    arm_leap,
    check_leap,
    check_max_slew_rate,
    clamp_frequency,
)
from appliance.clock.slew import RateLimitedSlew, SlewModel
from appliance.ntp.packet import LEAP_NONE
from appliance.timebase import NS_PER_S

#: 2024-01-01T00:00:00Z, where simulated time starts unless told otherwise (POSIX ns).
DEFAULT_START_NS = 1_704_067_200 * NS_PER_S

__all__ = [
    "DEFAULT_START_NS",
    "PI_CRYSTAL_WANDER_PPB",
    "FrequencyStep",
    "Oscillator",
    "SimulatedClock",
    "wander_for_adev",
]


@dataclass(frozen=True, slots=True)
class FrequencyStep:
    """At true time ``at_ns`` (POSIX ns) the oscillator's frequency changes by ``delta_ppb`` (+: faster)."""

    at_ns: int
    delta_ppb: float


@dataclass(frozen=True, slots=True)
class Oscillator:
    """The free-running oscillator: initial error (ppb, +: fast), wander (ppb/sqrt(s)), steps."""

    frequency_error_ppb: float = 0.0
    wander_ppb_per_sqrt_s: float = 0.0
    steps: tuple[FrequencyStep, ...] = ()

    def __post_init__(self) -> None:
        if self.wander_ppb_per_sqrt_s < 0:
            raise ValueError("wander must be >= 0")


class SimulatedClock:
    """A :class:`~appliance.clock.base.Clock` on virtual time; see the module docstring.

    >>> import random
    >>> clock = SimulatedClock(random.Random(1), Oscillator(frequency_error_ppb=1000.0), start_ns=0)
    >>> clock.advance(NS_PER_S)
    >>> clock.now_ns()  # 1 ppm fast: 1 us ahead after 1 s
    1000001000
    """

    def __init__(
        self,
        rng: random.Random,
        oscillator: Oscillator | None = None,
        *,
        start_ns: int = DEFAULT_START_NS,
        initial_offset_ns: int = 0,
        slew: SlewModel | None = None,
        tick_ns: int = NS_PER_S,
        max_slew_rate_ppb: float = DEFAULT_MAX_SLEW_RATE_PPB,
    ) -> None:
        if tick_ns <= 0:
            raise ValueError("tick must be positive")
        self._max_slew_ppb = check_max_slew_rate(max_slew_rate_ppb)
        osc = oscillator if oscillator is not None else Oscillator()
        self._rng = rng
        self._slew: SlewModel = slew if slew is not None else RateLimitedSlew()
        self._tick_ns = tick_ns
        self._wander_step_ppb = osc.wander_ppb_per_sqrt_s * math.sqrt(tick_ns / NS_PER_S)
        self._steps = sorted(osc.steps, key=lambda s: s.at_ns)
        self._next_step = 0
        self._true_ns = start_ns
        self._next_tick_ns = start_ns + tick_ns
        self._phase_ns = float(initial_offset_ns)
        self._intrinsic_ppb = osc.frequency_error_ppb
        self._wander_ppb = 0.0
        self._frequency_ppb = 0.0
        self._pending_ns = 0.0
        self._leap = LEAP_NONE
        self._leap_offset_ns = 0  # the steps of executed leap seconds
        # an armed leap not executed yet: from the (pre-leap) reading _leap_at on, add _leap_step
        self._leap_at: int | None = None
        self._leap_step = 0
        self._sync = SyncStatus()
        self._apply_due_steps()

    # --- verbs for simulations and tests ---------------------------------------------------------

    @property
    def true_ns(self) -> int:
        """The true (reference) time, POSIX ns."""
        return self._true_ns

    def time_error_ns(self) -> float:
        """The clock's error now: clock minus true time, ns (float: sub-ns resolution for traces)."""
        return self._phase_ns

    def oscillator_ppb(self) -> float:
        """The oscillator's intrinsic frequency error now (ppb, +: fast), wander and steps included."""
        return self._intrinsic_ppb + self._wander_ppb

    def shift_frequency(self, delta_ppb: float) -> None:
        """Change the oscillator's frequency by ``delta_ppb`` now (a temperature step; +: faster)."""
        self._intrinsic_ppb += delta_ppb

    @property
    def leap(self) -> int:
        """The leap indicator last set; it stays set after the leap has happened until set to 0."""
        return self._leap

    def leap_offset_ns(self) -> int:
        """How far executed leap seconds have moved the reading, ns: -1 s per insertion, +1 s per deletion."""
        return self._leap_offset_ns

    def leap_pending(self) -> bool:
        """True while an armed leap second has not happened yet."""
        return self._leap_at is not None

    def _reading(self) -> int:
        """The reading before a pending leap: true time, phase error and the leaps already executed."""
        return self._true_ns + round(self._phase_ns) + self._leap_offset_ns

    def _execute_due_leap(self) -> None:
        if self._leap_at is not None and self._reading() >= self._leap_at:
            self._leap_offset_ns += self._leap_step
            self._leap_at = None

    @property
    def sync_status(self) -> SyncStatus:
        """The sync status last set."""
        return self._sync

    def advance(self, duration_ns: int) -> None:
        """Let ``duration_ns`` >= 0 of true time pass."""
        if duration_ns < 0:
            raise ValueError("virtual time only moves forwards")
        end = self._true_ns + duration_ns
        while True:
            stop = min(end, self._next_tick_ns)
            if self._next_step < len(self._steps):
                stop = min(stop, self._steps[self._next_step].at_ns)
            self._run(stop - self._true_ns)
            self._true_ns = stop
            if stop == self._next_tick_ns:
                self._wander_ppb += self._rng.gauss(0.0, self._wander_step_ppb)
                self._next_tick_ns += self._tick_ns
            self._apply_due_steps()
            if stop == end:
                self._execute_due_leap()
                return

    def advance_to(self, true_ns: int) -> None:
        """Let true time pass until ``true_ns`` (not before now)."""
        self.advance(true_ns - self._true_ns)

    def _run(self, dt_ns: int) -> None:
        if dt_ns <= 0:
            return
        oscillator_ppb = self._intrinsic_ppb + self._wander_ppb
        rate_ppb = oscillator_ppb + self._frequency_ppb * (1.0 + oscillator_ppb * 1e-9)
        self._phase_ns += rate_ppb * 1e-9 * dt_ns
        if self._pending_ns:
            done = self._slew.applied(self._pending_ns, dt_ns)
            self._phase_ns += done
            self._pending_ns -= done

    def _apply_due_steps(self) -> None:
        while self._next_step < len(self._steps) and self._steps[self._next_step].at_ns <= self._true_ns:
            self._intrinsic_ppb += self._steps[self._next_step].delta_ppb
            self._next_step += 1

    # --- the clock interface -----------------------------------------------------------------------

    def now_ns(self) -> int:
        """Read the clock: true time plus the phase error plus executed leap seconds, POSIX ns."""
        return self._reading()

    def frequency_ppb(self) -> float:
        """The frequency correction in effect, ppb (+: faster)."""
        return self._frequency_ppb

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        """Set the frequency correction, ppb (+: faster), clamped to +-``max_slew_rate_ppb``."""
        self._frequency_ppb = clamp_frequency(frequency_ppb, self._max_slew_ppb)

    def accrue_offset_ns(self, offset_ns: int) -> None:
        """Add ``offset_ns`` to the pending slew (+: forwards), worked off by the slew model."""
        self._pending_ns += offset_ns

    def offset_correction_ns(self) -> int:
        """The slew still pending, ns (+: the clock will still move forwards)."""
        return round(self._pending_ns)

    def step_ns(self, offset_ns: int) -> None:
        """Jump by ``offset_ns`` now (+: forwards); the pending slew is kept. A jump past an armed leap executes it."""
        self._phase_ns += offset_ns
        self._execute_due_leap()

    def set_leap(self, leap: int) -> None:
        """Arm (1 insert, 2 delete) a leap second at the next midnight UTC of this clock, or disarm (0).

        Setting the value already set changes nothing (an executed leap is
        not repeated until the clock is disarmed and armed again); ValueError
        for anything but 0, 1, 2.
        """
        if check_leap(leap) == self._leap:
            return
        self._leap = leap
        self._leap_at, self._leap_step = arm_leap(leap, self._reading())

    def set_sync_status(self, synchronised: bool, est_error_ns: int, max_error_ns: int) -> None:
        """Record the sync status and error estimates (ns)."""
        self._sync = SyncStatus(synchronised, est_error_ns, max_error_ns)
