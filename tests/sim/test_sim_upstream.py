"""Upstream only, without ``iburst``: the server is used from its third sample, with the frequency they show.

One stratum-1 server polled every 64 s (``minpoll 6 maxpoll 6``), the clock
2 ms ahead and its oscillator 25 ppm fast (issue 11's scenario). RFC 5905's
filter would keep the server unselectable until its fourth sample (192 s:
the empty stages count at 16 s of dispersion each) and the loop would then
start without a frequency; chrony selects with its third (128 s) from a
regression over the three. Checked here: selection with the third sample,
and a first loop that already knows the frequency (the error does not run
off at 25 ppm until the next poll).
"""

from __future__ import annotations

from appliance.sim.harness import ServerSpec, SystemScenario, SystemTrace, run_system
from appliance.timebase import NS_PER_S

S = NS_PER_S
SERVER = ServerSpec("192.0.2.1", delay_ns=200_000, delay_jitter_ns=50_000.0)


def run(seed: int, options: str = "minpoll 6 maxpoll 6", duration_s: int = 600) -> SystemTrace:
    return run_system(
        SystemScenario(
            seed=seed,
            duration_ns=duration_s * S,
            frequency_error_ppb=25_000.0,
            wander_ppb_per_sqrt_s=1.0,
            initial_offset_ns=2_000_000,
            servers=(SERVER,),
            server_options=options,
        )
    )


def test_the_server_is_selected_with_its_third_sample_and_the_loop_starts_with_its_frequency() -> None:
    for seed in (1, 2, 3):
        trace = run(seed)
        e = trace.time_error_ns
        upstream = [i for i, b in enumerate(trace.basis) if b == "upstream"]
        assert upstream, f"seed {seed}: never on the server"
        first = (upstream[0] + 1) * trace.tick_ns / S
        assert 128 <= first < 140, f"seed {seed}: on the server at {first} s (third sample at 128 s)"
        # before: the free-running clock gains 25 us a second
        assert e[trace.at(120 * S)] > 2_000_000 + 20 * 120 * 1_000
        # the phase is closed in seconds, and the frequency holds until the next poll (25 ppm would be 1.3 ms)
        lock = trace.at(int(first + 5) * S)
        assert abs(e[lock]) < 100_000, f"seed {seed}: {e[lock]:.0f} ns 5 s after selection"
        drift = abs(e[trace.at(int(first + 55) * S)] - e[lock])
        assert drift < 250_000, f"seed {seed}: drifted {drift:.0f} ns in 50 s (a frequency error over 5 ppm)"


def test_with_iburst_the_third_burst_sample_steers_and_the_fourth_does_not() -> None:
    """A burst's samples 2 s apart would pass their network jitter off as frequency: one steers, the next a poll on."""
    for seed in (1, 2, 3):
        trace = run(seed, "iburst minpoll 6 maxpoll 6", duration_s=200)
        e = trace.time_error_ns
        assert abs(e[trace.at(6 * S)]) < 150_000, f"seed {seed}: {e[trace.at(6 * S)]:.0f} ns at 6 s"
        # until the next poll the loop has the phase only: the clock runs on 25 ppm fast, no faster
        drift = e[trace.at(62 * S)] - e[trace.at(6 * S)]
        assert 0 < drift < 1_700_000, f"seed {seed}: {drift:.0f} ns from 6 s to 62 s"
        assert trace.counters.upstream_spaced >= 1


def test_with_iburst_one_noisy_sample_does_not_slew_the_clock_past_zero() -> None:
    """The first steer has one sample's phase: it is corrected to within its uncertainty, from the side the clock
    is on (seeds 7 and 8: a queued third burst sample slewed the clock 79 us and 24 us past zero)."""
    for seed in range(1, 11):
        trace = run(seed, "iburst minpoll 6 maxpoll 6", duration_s=68)
        e = trace.time_error_ns
        first = trace.at(5 * S)
        assert abs(e[first]) < 150_000, f"seed {seed}: {e[first]:.0f} ns at 5 s"  # the phase is closed
        assert min(e[first:]) > 0, f"seed {seed}: {min(e[first:]):.0f} ns, past zero before the next poll"
