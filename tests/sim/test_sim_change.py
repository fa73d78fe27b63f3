"""The change detector: no false alarm on a quiet oscillator, an alarm within a minute of a +0.5 ppm step.

A false alarm restarts the estimate from a few samples and can give a
one-second excursion; a missed step leaves the loop behind the crystal.
"""

from __future__ import annotations

import pytest

from appliance.clock.simulated import FrequencyStep
from appliance.sim.harness import Scenario, run
from appliance.timebase import NS_PER_S

S = NS_PER_S
STEP_AT = 30 * 60 * S + S // 3


@pytest.mark.parametrize("jitter_ns", [1_000.0, 100.0])
def test_no_alarm_in_50_seeds_without_a_frequency_step(jitter_ns: float) -> None:
    alarms = {}
    for seed in range(1, 51):
        trace = run(
            Scenario(
                seed=seed,
                duration_ns=3600 * S,
                wander_ppb_per_sqrt_s=1.0,
                pps_jitter_ns=jitter_ns,
                initial_offset_ns=100_000_000,
            )
        )
        if trace.final.changes:
            alarms[seed] = trace.final.changes
    assert alarms == {}


@pytest.mark.parametrize("jitter_ns", [1_000.0, 100.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_half_ppm_step_raises_the_alarm_within_a_minute(jitter_ns: float, seed: int) -> None:
    def changes(after_s: int) -> int:
        scenario = Scenario(
            seed=seed,
            duration_ns=STEP_AT + after_s * S,
            wander_ppb_per_sqrt_s=1.0,
            pps_jitter_ns=jitter_ns,
            frequency_steps=(FrequencyStep(STEP_AT, 500.0),),
        )
        return run(scenario).final.changes

    assert changes(-5) == 0  # quiet before the step
    assert changes(60) >= 1
