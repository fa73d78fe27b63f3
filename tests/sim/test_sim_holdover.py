"""An honest holdover estimate: an hour after the last pulse, the discipline's bound is not below the true error.

The bound is what the clock is told as its maximum error (``SyncStatus``:
three times the 1-sigma estimate plus the dispersion); the 1-sigma estimate
itself is below the true error in some seeds, as a 1-sigma value must be.

Why not "at or above the true error and within 3x of it in every seed":
an hour after the last pulse the error is the oscillator's random walk since
then (plus the frequency error at the loss), which nothing in holdover
observes, so the estimate is (nearly) the same in every seed while the true
error is not: over seeds 1..20 it ranged from 0.5 us (seed 16, a walk that
came back through zero) to 294 us against an estimate of 217 us in each.
No estimate that does not know the realised walk can be within 3x of both.
What is checked instead is that the 1-sigma value is calibrated: at or above
the true error in most seeds (a calibrated 1-sigma: about two thirds), and
the typical (median) seed's error within 3x of it.
"""

from __future__ import annotations

from appliance.sim.harness import Scenario, run
from appliance.timebase import NS_PER_S

S = NS_PER_S
GPS_S = 3600


def test_holdover_bound_is_never_below_the_true_error_after_one_hour() -> None:
    seen = []
    ratios = []
    for seed in range(1, 21):
        trace = run(
            Scenario(
                seed=seed,
                duration_ns=(2 * GPS_S + 1) * S,
                wander_ppb_per_sqrt_s=1.0,
                pps_jitter_ns=1_000.0,
                initial_offset_ns=100_000_000,
                pps_outages=((GPS_S * S, (2 * GPS_S + 10) * S),),
            )
        )
        i = GPS_S - 1 + GPS_S  # one hour after the last pulse
        error, estimate = abs(trace.time_error_ns[i]), trace.est_error_ns[i]
        seen.append(error)
        ratios.append(estimate / max(error, 1.0))
        assert 3 * estimate >= error, f"seed {seed}: bound {3 * estimate:.0f} ns below the error {error:.0f} ns"
        # the estimate grew through the hour: it started near the tracking error
        assert trace.est_error_ns[GPS_S] < estimate / 100
    assert max(seen) > 50_000  # the scenario does drift: the check is not vacuous
    # a 1-sigma estimate: below the true error in at most a third of the seeds, not inflated past 3x typically
    below = sum(r < 1 for r in ratios)
    assert below <= len(ratios) // 3, f"the 1-sigma estimate was below the error in {below} of {len(ratios)} seeds"
    ratios.sort()
    median = (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
    assert 1 <= median <= 3, f"median estimate / error {median:.2f}"
