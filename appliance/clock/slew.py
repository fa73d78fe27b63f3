"""How a clock works off a pending slew: the models the software and simulated clocks use.

An accrued offset is not applied at once; a backend works it off over time.
Two behaviours matter here, and both are written as closed forms of the
elapsed time so that a clock gives the same reading however its time is cut
into pieces:

- :class:`RateLimitedSlew`: the classic ``adjtime()`` (Linux
  ``ADJ_OFFSET_SINGLESHOT``): the clock runs faster or slower by a fixed
  rate, 500 ppm by default, until the whole offset is applied. Small
  corrections finish almost at once (100 ns in 0.2 ms), large ones take
  their time (128 ms in 256 s).
- :class:`ExponentialSlew`: what :mod:`appliance.clock.kernel` gets from the
  Linux kernel PLL with ``STA_FREQHOLD`` and time constant 0: each second a
  quarter of what is pending (``offset >> SHIFT_PLL``), i.e. an exponential
  decay with a time constant of about 4 s.

Offsets are float ns here: a model may apply fractions of a nanosecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from appliance.timebase import NS_PER_S


class SlewModel(Protocol):
    """A way of working off a pending offset."""

    def applied(self, pending_ns: float, elapsed_ns: int) -> float:
        """Return how much of ``pending_ns`` (signed) is applied after ``elapsed_ns`` >= 0."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimitedSlew:
    """Slew at ``rate_ppm`` until done (adjtime-like; the Linux default is 500 ppm)."""

    rate_ppm: float = 500.0

    def __post_init__(self) -> None:
        if not self.rate_ppm > 0:
            raise ValueError(f"slew rate must be positive, not {self.rate_ppm!r}")

    def applied(self, pending_ns: float, elapsed_ns: int) -> float:
        if elapsed_ns <= 0 or pending_ns == 0:
            return 0.0
        budget = self.rate_ppm * 1e-6 * elapsed_ns
        return math.copysign(min(abs(pending_ns), budget), pending_ns)


@dataclass(frozen=True, slots=True)
class ExponentialSlew:
    """Apply the pending offset exponentially with ``time_constant_ns`` (kernel PLL, tc 0: ~4 s).

    The kernel applies ``pending / 4`` per second, so the exact per-second
    factor is 3/4, a time constant of ``1 / ln(4/3)`` = 3.48 s; the default
    uses that value.
    """

    time_constant_ns: int = round(NS_PER_S / math.log(4 / 3))

    def __post_init__(self) -> None:
        if self.time_constant_ns <= 0:
            raise ValueError(f"time constant must be positive, not {self.time_constant_ns!r}")

    def applied(self, pending_ns: float, elapsed_ns: int) -> float:
        if elapsed_ns <= 0 or pending_ns == 0:
            return 0.0
        return pending_ns * -math.expm1(-elapsed_ns / self.time_constant_ns)
