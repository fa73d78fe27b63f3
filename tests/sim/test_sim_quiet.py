"""A quiet oscillator: the loop is the least-squares line through every pulse since the start.

With white PPS jitter and no wander, the best estimate of the clock's phase
is the least-squares line through all the pulses so far (all equally
noisy). The loop gets there only if it weighs every pulse alike: its
measured jitter, from a few deviations at first and then a median over
many, changes as it goes, and the pulses taken before a change must count
as the new estimate says, not as the one of their day. Checked on the bare
loop (:func:`appliance.sim.harness.play`): the clock error follows the
exact least-squares line's error (computed from the pulses' own jitter)
closely, second by second.
"""

from __future__ import annotations

import math
import random

import pytest

from appliance.clock.discipline import Discipline, DisciplineConfig
from appliance.clock.simulated import Oscillator, SimulatedClock
from appliance.refclock.sample import Sample
from appliance.sim.harness import PpsSource, play
from appliance.sim.metrics import rms
from appliance.timebase import NS_PER_S

S = NS_PER_S
START = 1_704_067_200 * S
FIRST = 20  # the line from the 20th pulse on (the first ones are the initial lock)


class NoisyPps(PpsSource):
    """A :class:`PpsSource` that records each pulse's jitter (its stamp minus the clock's reading at the edge)."""

    def __init__(self, seed: int, jitter_ns: float) -> None:
        super().__init__(random.Random(seed), jitter_ns, START + S)
        self.noise: list[float] = []

    def take(self, clock: SimulatedClock) -> Sample | None:
        reading = clock.now_ns()
        sample = super().take(clock)
        assert sample is not None
        self.noise.append(float(sample.local_ns - reading))
        return sample


def least_squares_errors(noise: list[float], until: int) -> list[float]:
    """The clock error, second ``i`` (1..until-1), of a clock set to the least-squares line through the pulses'
    stamps FIRST..i-1 (a quiet oscillator: the line's error is the line through their jitter, one second on)."""
    out = [math.nan] * until
    n = sx = sy = sxx = sxy = 0.0
    for i in range(1, until):
        k = i - 1  # pulse k (at second k + 1) is in before second i + 1
        if k >= FIRST:
            x, y = float(k), noise[k]
            n, sx, sy, sxx, sxy = n + 1, sx + x, sy + y, sxx + x * x, sxy + x * y
        if n >= 3:
            slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
            # a stamp late by the jitter reads the clock as behind: the clock is set ahead by the line's value
            out[i] = -((sy - slope * sx) / n + slope * i)  # the line one second after the last pulse
    return out


@pytest.mark.parametrize("seed", [2, 9])
@pytest.mark.parametrize("jitter_ns", [1_000.0, 100.0])
def test_the_loop_on_a_quiet_oscillator_is_the_least_squares_line(seed: int, jitter_ns: float) -> None:
    duration = 1800
    clock = SimulatedClock(
        random.Random(seed),
        Oscillator(frequency_error_ppb=25_000.0, wander_ppb_per_sqrt_s=0.0),
        start_ns=START,
        initial_offset_ns=100_000_000,
    )
    source = NoisyPps(seed + 100, jitter_ns)
    trace = play(clock, Discipline(DisciplineConfig()), [source], START, START + duration * S)
    ideal = least_squares_errors(source.noise, duration)
    window = range(300, duration)
    loop = [trace.time_error_ns[i] for i in window]
    line = [ideal[i] for i in window]
    apart = [a - b for a, b in zip(loop, line, strict=True)]
    # the loop's error is the line's, not merely as small: second by second within a fifth of it (a third to
    # a half of it when each pulse kept the weight of the jitter measured in its day)
    assert rms(apart) < 0.2 * rms(line), f"loop {rms(loop):.1f} ns, line {rms(line):.1f} ns, apart {rms(apart):.1f} ns"
