"""The drift file across a restart, on virtual time: a warm start converges faster than a cold one.

A first boot runs an hour against the PPS and shuts down cleanly: the
daemon's :class:`~appliance.clock.drift.DriftFile` writes the discipline's
final frequency estimate. The restart reads that file and starts the
discipline (and the clock) at that frequency, as the daemon does, with a
clock 300 ms wrong (a Pi without an RTC: stepped at the first sample). The
same restart without the file is the cold start. Same oscillator (25 ppm
fast, a Pi crystal's wander), same noise for both.

The figures are printed (``pytest -s``); the assertions are comparisons.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from appliance.clock.discipline import Discipline, DisciplineConfig
from appliance.clock.drift import DriftFile, read_drift_file
from appliance.clock.simulated import DEFAULT_START_NS, Oscillator, SimulatedClock
from appliance.sim.harness import PpsSource, Scenario, Trace, play, run
from appliance.sim.metrics import convergence_index, max_abs
from appliance.timebase import NS_PER_S

S = NS_PER_S
MIN = 60 * S
HOUR = 60 * MIN
US = 1_000.0
FREQUENCY_ERROR_PPB = 25_000.0
BOOT_OFFSET_NS = 300_000_000


@pytest.fixture(scope="module")
def drift_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first boot: an hour of PPS, then a clean shutdown writes the drift file."""
    path = tmp_path_factory.mktemp("state") / "drift"
    first = run(
        Scenario(seed=4, duration_ns=HOUR, frequency_error_ppb=FREQUENCY_ERROR_PPB, initial_offset_ns=BOOT_OFFSET_NS)
    )
    drift = DriftFile(path)
    assert drift.load(0) is None  # no file yet: the first boot is a cold start
    assert drift.close(HOUR, first.final)  # clean shutdown
    return path


def restart_frequency(path: Path) -> float | None:
    """What the daemon reads at start (ppb), through the same object."""
    return DriftFile(path).load(0)


def pps_restart(frequency_ppb: float | None, seed: int) -> Trace:
    return run(
        Scenario(
            seed=seed,
            duration_ns=15 * MIN,
            frequency_error_ppb=FREQUENCY_ERROR_PPB,
            initial_offset_ns=BOOT_OFFSET_NS,
            drift_ppb=frequency_ppb,
        )
    )


def upstream_restart(frequency_ppb: float | None, seed: int, poll_s: int = 64) -> Trace:
    """No GPS after the restart: an upstream NTP server polled every ``poll_s`` s, 50 us of jitter.

    The loop assumes that jitter until it has measured it, as the timekeeper's loop for upstream samples does.
    """
    start = DEFAULT_START_NS
    clock = SimulatedClock(
        random.Random(f"clock:{seed}"),
        Oscillator(FREQUENCY_ERROR_PPB),
        start_ns=start,
        initial_offset_ns=BOOT_OFFSET_NS,
    )
    if frequency_ppb is not None:
        clock.set_frequency_ppb(frequency_ppb)  # as the daemon does with the drift file's value
    jitter_ns = 50_000.0
    server = PpsSource(random.Random(f"ntp:{seed}"), jitter_ns, start + poll_s * S, interval_ns=poll_s * S)
    discipline = Discipline(DisciplineConfig(initial_jitter_ns=jitter_ns), frequency_ppb=frequency_ppb)
    return play(clock, discipline, [server], start, start + 30 * MIN)


def test_the_drift_file_holds_the_first_boot_s_frequency(drift_path: Path) -> None:
    text = drift_path.read_text()
    frequency = read_drift_file(drift_path)
    print(f"\ndrift file after the first boot: {text.strip()} ppm")
    assert len(text.splitlines()) == 1
    # the oscillator runs 25 ppm fast: the correction is about -25 ppm (wander moves it a little in an hour)
    assert frequency == pytest.approx(-FREQUENCY_ERROR_PPB, abs=500.0)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_pps_restart_with_drift_file_converges_faster(drift_path: Path, seed: int) -> None:
    warm = pps_restart(restart_frequency(drift_path), seed)
    cold = pps_restart(None, seed)
    bound = 3 * US
    cold_at = convergence_index(cold.time_error_ns, bound)
    warm_at = convergence_index(warm.time_error_ns, bound)
    # the clock is stepped at the first pulse (1 s): from then on
    cold_worst = max_abs(cold.time_error_ns[2:60])
    warm_worst = max_abs(warm.time_error_ns[2:60])
    print(
        f"\nPPS restart, seed {seed}: within {bound / US:g} us for good after {cold_at} s cold, {warm_at} s warm; "
        f"worst error in the first minute {cold_worst / US:.1f} us cold, {warm_worst / US:.1f} us warm"
    )
    assert cold_at is not None and warm_at is not None and warm_at < cold_at
    assert warm_worst < cold_worst / 5


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_upstream_restart_with_drift_file_converges_faster(drift_path: Path, seed: int) -> None:
    poll_s = 64
    warm = upstream_restart(restart_frequency(drift_path), seed, poll_s)
    cold = upstream_restart(None, seed, poll_s)
    bound = 1_000 * US
    cold_at = convergence_index(cold.time_error_ns, bound)
    warm_at = convergence_index(warm.time_error_ns, bound)
    after_step = poll_s + 1
    cold_worst = max_abs(cold.time_error_ns[after_step : 10 * 60])
    warm_worst = max_abs(warm.time_error_ns[after_step : 10 * 60])
    print(
        f"\nupstream restart (poll {poll_s} s), seed {seed}: within {bound / US:g} us for good after "
        f"{cold_at} s cold, {warm_at} s warm; worst error after the step (10 min) "
        f"{cold_worst / US:.0f} us cold, {warm_worst / US:.0f} us warm"
    )
    assert cold_at is not None and warm_at is not None and warm_at < cold_at
    assert warm_worst < cold_worst / 3


@pytest.mark.parametrize("content", [b"garbage\n", b"-25.1 0.02\n", b""], ids=["garbage", "chrony", "empty"])
def test_bad_drift_file_is_a_cold_start_not_a_crash(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "drift"
    path.write_bytes(content)
    frequency = restart_frequency(path)
    assert frequency is None
    assert pps_restart(frequency, 5).time_error_ns == pps_restart(None, 5).time_error_ns
