"""The simulated clock: sign conventions, slew behaviour, wander statistics, reproducibility."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.clock.allan import PI_CRYSTAL_WANDER_PPB, adev_for_wander, overlapping_adev, wander_for_adev
from appliance.clock.simulated import FrequencyStep, Oscillator, SimulatedClock
from appliance.clock.slew import ExponentialSlew, RateLimitedSlew
from appliance.timebase import NS_PER_S

S = NS_PER_S


def make(osc: Oscillator | None = None, seed: int = 0, **kw: object) -> SimulatedClock:
    return SimulatedClock(random.Random(seed), osc, start_ns=0, **kw)  # type: ignore[arg-type]


def test_reads_true_time_plus_initial_offset() -> None:
    clock = make(initial_offset_ns=-500)
    clock.advance(3 * S)
    assert clock.true_ns == 3 * S
    assert clock.now_ns() == 3 * S - 500
    assert clock.time_error_ns() == -500


def test_fast_oscillator_gains() -> None:
    clock = make(Oscillator(frequency_error_ppb=25_000.0))
    clock.advance(2 * S)
    assert clock.time_error_ns() == pytest.approx(50_000)


def test_positive_frequency_makes_the_clock_run_faster() -> None:
    clock = make()
    clock.set_frequency_ppb(1_000.0)
    clock.advance(10 * S)
    assert clock.time_error_ns() == pytest.approx(10_000)
    assert clock.frequency_ppb() == 1_000.0


def test_frequency_correction_cancels_oscillator_error() -> None:
    """The correction scales the oscillator's ticks, as the kernel's does: f on y fast gives y + f + y f."""
    clock = make(Oscillator(frequency_error_ppb=25_000.0))
    clock.set_frequency_ppb(-25_000.0 / (1 + 25_000e-9))
    clock.advance(100 * S)
    assert clock.time_error_ns() == pytest.approx(0, abs=1e-6)
    plain = make(Oscillator(frequency_error_ppb=25_000.0))
    plain.set_frequency_ppb(-25_000.0)
    plain.advance(100 * S)
    assert plain.time_error_ns() == pytest.approx(-0.625 * 100, abs=0.01)  # -25 ppm of 25 ppm: -0.625 ppb


def test_frequency_clamped_to_maxslewrate() -> None:
    clock = make()
    clock.set_frequency_ppb(1e9)
    assert clock.frequency_ppb() == pytest.approx(1e9 / 12)  # chrony's default 83,333 ppm
    slow = SimulatedClock(random.Random(1), start_ns=0, max_slew_rate_ppb=1_000_000.0)
    slow.set_frequency_ppb(-5e6)
    assert slow.frequency_ppb() == -1_000_000.0


def test_positive_step_jumps_forwards_at_once() -> None:
    clock = make()
    clock.advance(S)
    clock.step_ns(250_000_000)
    assert clock.now_ns() == S + 250_000_000


def test_positive_accrue_moves_forwards_gradually_at_500_ppm() -> None:
    clock = make()
    clock.accrue_offset_ns(1_000_000)  # 1 ms at 500 ppm takes 2 s
    assert clock.now_ns() == 0
    assert clock.offset_correction_ns() == 1_000_000
    clock.advance(S)
    assert clock.time_error_ns() == pytest.approx(500_000)
    assert clock.offset_correction_ns() == 500_000
    clock.advance(5 * S)
    assert clock.time_error_ns() == pytest.approx(1_000_000)
    assert clock.offset_correction_ns() == 0


def test_negative_accrue_moves_backwards_and_accumulates() -> None:
    clock = make()
    clock.accrue_offset_ns(-600)
    clock.accrue_offset_ns(-400)
    assert clock.offset_correction_ns() == -1_000
    clock.advance(S)
    assert clock.time_error_ns() == pytest.approx(-1_000)


def test_exponential_slew_works_off_a_quarter_per_second() -> None:
    clock = make(slew=ExponentialSlew())
    clock.accrue_offset_ns(1_000_000)
    clock.advance(S)
    assert clock.time_error_ns() == pytest.approx(250_000, rel=1e-6)
    assert clock.offset_correction_ns() == 750_000


def test_step_keeps_pending_slew() -> None:
    clock = make()
    clock.accrue_offset_ns(1_000)
    clock.step_ns(-5_000)
    assert clock.offset_correction_ns() == 1_000
    clock.advance(S)
    assert clock.time_error_ns() == pytest.approx(-4_000)


def test_temperature_step_changes_frequency_at_its_time() -> None:
    clock = make(Oscillator(steps=(FrequencyStep(10 * S, 500.0),)))
    clock.advance(10 * S)
    assert clock.time_error_ns() == 0
    clock.advance(4 * S)
    assert clock.time_error_ns() == pytest.approx(2_000)
    clock.shift_frequency(-500.0)
    clock.advance(S)
    assert clock.time_error_ns() == pytest.approx(2_000)


def test_leap_and_sync_status_recorded() -> None:
    clock = make()
    clock.set_leap(2)
    clock.set_sync_status(True, 5, 15)
    assert clock.leap == 2
    assert clock.sync_status.synchronised
    with pytest.raises(ValueError):
        clock.set_leap(3)


def test_virtual_time_only_moves_forwards() -> None:
    with pytest.raises(ValueError):
        make().advance(-1)


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=5 * S), max_size=8),
    accrue=st.integers(min_value=-(10**7), max_value=10**7),
    exponential=st.booleans(),
)
def test_reading_does_not_depend_on_how_time_is_cut(cuts: list[int], accrue: int, exponential: bool) -> None:
    """Advancing in pieces gives the same clock as advancing at once (wander drawn per tick)."""
    osc = Oscillator(frequency_error_ppb=1234.5, wander_ppb_per_sqrt_s=PI_CRYSTAL_WANDER_PPB)
    slew = ExponentialSlew() if exponential else RateLimitedSlew()
    whole, pieces = make(osc, seed=7, slew=slew), make(osc, seed=7, slew=slew)
    for c in (whole, pieces):
        c.accrue_offset_ns(accrue)
    total = 6 * S
    for cut in sorted(cuts):
        pieces.advance_to(cut)
    pieces.advance_to(total)
    whole.advance(total)
    assert pieces.time_error_ns() == pytest.approx(whole.time_error_ns(), abs=1e-6)
    assert pieces.offset_correction_ns() == whole.offset_correction_ns()


def test_same_seed_same_wander() -> None:
    osc = Oscillator(wander_ppb_per_sqrt_s=PI_CRYSTAL_WANDER_PPB)
    a, b, c = make(osc, seed=3), make(osc, seed=3), make(osc, seed=4)
    for clock in (a, b, c):
        clock.advance(100 * S)
    assert a.time_error_ns() == b.time_error_ns() != c.time_error_ns()


def test_wander_relation_round_trips() -> None:
    assert PI_CRYSTAL_WANDER_PPB == pytest.approx(3**0.5)
    assert adev_for_wander(wander_for_adev(2e-9, 50.0), 50.0) == pytest.approx(2e-9)


def test_adev_of_the_pi_crystal_model_is_near_1e_8_at_100_s() -> None:
    """Free-running phase of the wander model: ADEV(100 s) within a factor 2 of 1e-8 for every seed."""
    osc = Oscillator(wander_ppb_per_sqrt_s=PI_CRYSTAL_WANDER_PPB)
    estimates = []
    for seed in range(4):
        clock = make(osc, seed=seed)
        phase = []
        for _ in range(20_000):
            clock.advance(S)
            phase.append(clock.time_error_ns())
        estimates.append(overlapping_adev(phase, 100))
    assert all(0.5e-8 < a < 2e-8 for a in estimates), estimates
    mean = sum(estimates) / len(estimates)
    assert 0.8e-8 < mean < 1.2e-8, estimates


# --- leap seconds --------------------------------------------------------------------------------

MIDNIGHT = int(datetime(2017, 1, 1, tzinfo=UTC).timestamp()) * S


def on_leap_day(**kw: object) -> SimulatedClock:
    return SimulatedClock(random.Random(0), start_ns=MIDNIGHT - 10 * S, **kw)  # type: ignore[arg-type]


def test_inserted_second_is_executed_at_the_clocks_midnight() -> None:
    clock = on_leap_day()
    clock.set_leap(1)
    seen = []
    for _ in range(13):
        clock.advance(S)
        seen.append(clock.now_ns() - MIDNIGHT)
    # ..., 23:59:59, 23:59:59 again (the 23:59:60), 00:00:00, ...
    assert seen == [s * S for s in range(-9, 0)] + [-S, 0, S, 2 * S]
    assert clock.leap_offset_ns() == -S
    assert clock.now_ns() == clock.true_ns - S
    assert clock.time_error_ns() == 0  # the leap is not an error of the oscillator
    assert not clock.leap_pending()


def test_deleted_second_is_skipped() -> None:
    clock = on_leap_day()
    clock.set_leap(2)
    clock.advance(9 * S - 1)
    assert clock.now_ns() == MIDNIGHT - S - 1
    clock.advance(1)
    assert clock.now_ns() == MIDNIGHT
    assert clock.leap_offset_ns() == S


def test_one_advance_across_midnight_gives_the_same_reading() -> None:
    stepped, jumped = on_leap_day(initial_offset_ns=250), on_leap_day(initial_offset_ns=250)
    for clock in (stepped, jumped):
        clock.set_leap(1)
    for _ in range(20):
        stepped.advance(S)
    jumped.advance(20 * S)
    assert stepped.now_ns() == jumped.now_ns() == MIDNIGHT + 9 * S + 250


def test_leap_happens_once_until_rearmed() -> None:
    clock = on_leap_day()
    clock.set_leap(1)
    clock.advance(20 * S)
    clock.set_leap(1)  # repeated: no second leap the next day
    clock.advance(86_400 * S)
    assert clock.leap_offset_ns() == -S
    clock.set_leap(0)
    clock.set_leap(1)
    clock.advance(86_400 * S)
    assert clock.leap_offset_ns() == -2 * S


def test_step_past_midnight_executes_an_armed_leap() -> None:
    clock = on_leap_day()
    clock.set_leap(1)
    clock.step_ns(20 * S)
    assert clock.leap_offset_ns() == -S
    assert clock.now_ns() == MIDNIGHT + 9 * S
