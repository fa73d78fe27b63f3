"""Fast, bounded slewing: an offset under the step threshold is closed in seconds, never above ``maxslewrate``.

The simulated clock records every frequency the discipline orders; the
slew rate (the ordered frequency) must stay within the configured
``maxslewrate`` in every second of every scenario, and the clock's phase
may not move faster than that rate plus the oscillator's own error.
"""

from __future__ import annotations

import random

import pytest

from appliance.clock.discipline import Discipline, DisciplineConfig
from appliance.clock.simulated import Oscillator, SimulatedClock
from appliance.clock.soft import SoftClock
from appliance.sim.harness import PpsSource, play
from appliance.sim.metrics import convergence_index
from appliance.timebase import NS_PER_S

S = NS_PER_S
START = 1_704_067_200 * S


class RecordingClock(SimulatedClock):
    """A simulated clock that keeps every frequency it was asked for (before its own clamp)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ordered: list[float] = []

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        self.ordered.append(frequency_ppb)
        super().set_frequency_ppb(frequency_ppb)


@pytest.mark.parametrize("max_slew_ppm", [83_333.333, 10_000.0, 1_000.0])
@pytest.mark.parametrize("offset_ns", [100_000_000, -120_000_000, 2_000_000])
def test_slew_rate_never_exceeds_maxslewrate_and_the_offset_closes_in_seconds(
    max_slew_ppm: float, offset_ns: int
) -> None:
    limit = max_slew_ppm * 1000.0
    clock = RecordingClock(
        random.Random(3),
        Oscillator(frequency_error_ppb=25_000.0, wander_ppb_per_sqrt_s=1.0),
        start_ns=START,
        initial_offset_ns=offset_ns,
        max_slew_rate_ppb=limit,
    )
    discipline = Discipline(DisciplineConfig(max_slew_rate_ppb=limit))
    pps = PpsSource(random.Random(4), 1_000.0, START + S)
    trace = play(clock, discipline, [pps], START, START + 300 * S)
    assert clock.ordered and max(abs(f) for f in clock.ordered) <= limit
    errors = trace.time_error_ns
    for a, b in zip(errors, errors[1:], strict=False):
        assert abs(b - a) <= (limit + 25_100.0) * 1e-9 * S + 5_000  # one second at the limit, plus jitter
    converged = convergence_index(errors, 10_000.0)
    # what the limit allows: the offset at maxslewrate, plus a few seconds to learn the frequency
    assert converged is not None and converged <= abs(offset_ns) / (limit * 1e-9) / S + 30


def test_soft_clock_slews_by_frequency_up_to_its_maxslewrate() -> None:
    base = [0]
    clock = SoftClock(lambda: base[0], max_slew_rate_ppb=50_000_000.0)
    clock.set_frequency_ppb(80_000_000.0)
    assert clock.frequency_ppb() == 50_000_000.0
    base[0] = S
    assert clock.now_ns() == S + 50_000_000  # 50,000 ppm for one second: 50 ms
    with pytest.raises(ValueError, match="maxslewrate"):
        SoftClock(lambda: 0, max_slew_rate_ppb=1e3)
