"""Benchmark: how the holdover error estimate compares with the true error, seed by seed (issue 11, item 5).

The bare discipline (:func:`appliance.sim.harness.run`) on a Pi-like oscillator (random-walk wander 1 ppb per
1 s step), PPS with 1 us jitter for an hour, then an hour without; at one hour after the last pulse it prints,
per seed, the true |error|, the discipline's 1-sigma estimate, their ratio and the wander the loop measured
(``D``, ppb^2/s; the oscillator's is 1.0), then how many seeds had the estimate below the true error and above
3x of it, and the deciles of true / estimate (for a calibrated 1-sigma: |N(0,1)|'s, 0.13 0.25 0.39 0.52 0.67
0.84 1.04 1.28 1.64).

Run as ``PYTHONPATH=. python bench/holdover.py [--seeds 100]``; prints figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
from multiprocessing import Pool

from appliance.clock.discipline import Discipline
from appliance.sim.harness import Scenario, run
from appliance.timebase import NS_PER_S

S = NS_PER_S
GPS_S = 3600


def one(seed: int) -> tuple[int, float, float, float]:
    """(seed, true |error| ns, 1-sigma estimate ns, the measured diffusion) one hour after the last pulse."""
    measured: list[float] = []
    estimate = Discipline.error_estimate_ns

    def spy(self: Discipline, now_ns: int) -> int:
        measured[:] = [self._diffusion]
        return estimate(self, now_ns)

    Discipline.error_estimate_ns = spy  # type: ignore[method-assign]  # this worker process only
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
    i = GPS_S - 1 + GPS_S
    return seed, abs(trace.time_error_ns[i]), float(trace.est_error_ns[i]), measured[0] if measured else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds 1..N (default 100)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (2)")
    args = parser.parse_args()
    with Pool(args.jobs) as pool:
        results = pool.map(one, range(1, args.seeds + 1))
    print("seed  true |error| us  estimate (1 sigma) us  estimate/true  measured D")
    for seed, error, est, d in results:
        print(f"{seed:4d}  {error / 1e3:15.1f}  {est / 1e3:21.1f}  {est / max(error, 1.0):13.2f}  {d:10.3f}")
    ratios = [est / max(error, 1.0) for _, error, est, _ in results]
    n = len(ratios)
    print(
        f"estimate below the true error in {sum(r < 1 for r in ratios)} of {n} seeds, "
        f"above 3x of it in {sum(r > 3 for r in ratios)} of {n}"
    )
    deciles = statistics.quantiles([1 / r for r in ratios], n=10)
    print("true / estimate, deciles: " + " ".join(f"{q:.2f}" for q in deciles))


if __name__ == "__main__":
    main()
