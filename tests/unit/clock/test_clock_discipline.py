"""The discipline on hand-made samples: step threshold, signs of its corrections, holdover, checks."""

from __future__ import annotations

import random

import pytest

from appliance.clock.base import AccrueOffset, SetFrequency, SetSyncStatus, Step, apply
from appliance.clock.discipline import Discipline, DisciplineConfig, Mode, PhaseCorrection
from appliance.clock.simulated import Oscillator, SimulatedClock
from appliance.refclock.sample import Sample
from appliance.timebase import NS_PER_S

S = NS_PER_S
T0 = 1_704_067_200 * S
SLEW = DisciplineConfig(phase_correction=PhaseCorrection.SLEW)


def sample(t: int, offset: int) -> Sample:
    """A sample at reference time ``t`` saying the clock is behind by ``offset``."""
    return Sample(local_ns=t - offset, reference_ns=t)


def ops_of(ops: tuple[object, ...], kind: type) -> list[object]:
    return [op for op in ops if isinstance(op, kind)]


def test_steps_when_the_first_offset_exceeds_128_ms() -> None:
    ops = Discipline().update(sample(T0, 200_000_000))
    assert ops_of(ops, Step) == [Step(200_000_000)]  # positive: the clock is behind, jump forwards


def test_does_not_step_at_or_below_the_threshold() -> None:
    ops = Discipline().update(sample(T0, -128_000_000))
    assert ops_of(ops, Step) == []
    freq = ops_of(ops, SetFrequency)[0]
    assert isinstance(freq, SetFrequency) and freq.frequency_ppb < 0  # slewed back through the frequency


def test_threshold_is_configurable() -> None:
    ops = Discipline(DisciplineConfig(step_threshold_ns=1_000_000)).update(sample(T0, -2_000_000))
    assert ops_of(ops, Step) == [Step(-2_000_000)]


def test_steps_only_during_the_first_updates() -> None:
    discipline = Discipline(DisciplineConfig(step_limit=1))
    discipline.update(sample(T0, 0))
    ops = discipline.update(sample(T0 + S, 300_000_000))
    assert ops_of(ops, Step) == []


def test_slew_mode_accrues_the_offset_with_its_sign() -> None:
    discipline = Discipline(SLEW)
    assert ops_of(discipline.update(sample(T0, 5_000)), AccrueOffset) == [AccrueOffset(5_000)]
    discipline = Discipline(SLEW)
    assert ops_of(discipline.update(sample(T0, -5_000)), AccrueOffset) == [AccrueOffset(-5_000)]


def test_slew_mode_counts_the_pending_slew() -> None:
    """A sample taken while 4 us are still pending: only the rest is new."""
    ops = Discipline(SLEW).update(sample(T0, 5_000), pending_ns=4_000)
    assert ops_of(ops, AccrueOffset) == [AccrueOffset(1_000)]


def test_slew_mode_keeps_the_pending_slew_within_the_limit() -> None:
    config = DisciplineConfig(phase_correction=PhaseCorrection.SLEW, max_pending_ns=1_000_000, step_limit=0)
    ops = Discipline(config).update(sample(T0, 100_000_000), pending_ns=400_000)
    assert ops_of(ops, AccrueOffset) == [AccrueOffset(600_000)]


@pytest.mark.parametrize("mode", list(PhaseCorrection))
def test_slow_clock_gets_a_positive_frequency(mode: PhaseCorrection) -> None:
    """A clock 1 ppm slow, disciplined from perfect samples: frequency +1 ppm, error gone."""
    clock = SimulatedClock(random.Random(0), Oscillator(frequency_error_ppb=-1_000.0), start_ns=T0)
    discipline = Discipline(DisciplineConfig(phase_correction=mode))
    for i in range(1, 30):
        clock.advance_to(T0 + i * S)
        apply(clock, discipline.update(Sample(clock.now_ns(), clock.true_ns), clock.offset_correction_ns()))
    assert discipline.frequency_ppb == pytest.approx(1_000.0, abs=1.0)
    clock.advance(S)
    assert abs(clock.time_error_ns()) < 5


def test_frequency_mode_slews_the_phase_over_the_sample_interval_and_tick_ends_it() -> None:
    discipline = Discipline(frequency_ppb=100.0)
    ops = discipline.update(sample(T0, 2_000))
    assert ops_of(ops, SetFrequency) == [SetFrequency(100.0 + 2_000.0)]  # 2 us over 1 s = +2 ppm
    assert discipline.frequency_ppb == 100.0  # the estimate, as a drift file records it
    # the slew counts on the clock's own time, from the sample's local time (2 us behind the reference)
    assert discipline.deadline_ns() == T0 - 2_000 + S
    assert ops_of(discipline.tick(T0 + S // 2), SetFrequency) == []  # not due yet
    assert ops_of(discipline.tick(T0 + S), SetFrequency) == [SetFrequency(100.0)]
    assert discipline.deadline_ns() is None


def test_stale_and_repeated_samples_are_ignored() -> None:
    discipline = Discipline()
    discipline.update(sample(T0 + S, 0))
    assert discipline.update(sample(T0 + S, 500)) == ()
    assert discipline.update(sample(T0, 500)) == ()


def test_every_update_reports_sync_status() -> None:
    ops = Discipline().update(sample(T0, 0))
    (status,) = ops_of(ops, SetSyncStatus)
    assert isinstance(status, SetSyncStatus)
    assert status.status.synchronised
    assert status.status.max_error_ns >= status.status.est_error_ns > 0


def test_holdover_error_estimate_grows_and_mode_changes() -> None:
    discipline = Discipline(frequency_ppb=0.0)
    for i in range(120):
        discipline.update(sample(T0 + i * S, 0))
    last = T0 + 119 * S
    assert discipline.mode(last) is Mode.TRACKING
    errors = [discipline.error_estimate_ns(last + d * S) for d in (0, 10, 100, 1_000, 10_000)]
    assert errors == sorted(errors) and errors[0] < errors[-1]
    assert discipline.mode(last + 11 * S) is Mode.HOLDOVER
    (status,) = discipline.tick(last + 10_000 * S)
    assert isinstance(status, SetSyncStatus) and status.status.est_error_ns == errors[-1]
    snapshot = discipline.status(last + 100 * S)
    assert snapshot.mode is Mode.HOLDOVER and snapshot.updates == 120


def test_a_source_polled_every_64_s_is_tracked_between_its_samples_not_in_holdover() -> None:
    """An upstream server at poll 6: the gap between its replies is its poll, not holdover; two missed are."""
    discipline = Discipline(frequency_ppb=0.0)
    for i in range(20):
        discipline.update(sample(T0 + i * 64 * S, 0))
    last = T0 + 19 * 64 * S
    assert discipline.mode(last + 63 * S) is Mode.TRACKING
    assert discipline.mode(last + 127 * S) is Mode.TRACKING
    assert discipline.mode(last + 129 * S) is Mode.HOLDOVER


def test_unsynchronised_before_the_first_sample() -> None:
    discipline = Discipline()
    assert discipline.mode(T0) is Mode.UNSYNCHRONISED
    (status,) = discipline.tick(T0)
    assert isinstance(status, SetSyncStatus) and not status.status.synchronised


def test_error_estimate_goes_unsynchronised_after_a_long_holdover() -> None:
    discipline = Discipline(DisciplineConfig(unsync_error_ns=1_000_000))
    for i in range(30):
        discipline.update(sample(T0 + i * S, 0))
    (status,) = discipline.tick(T0 + 30 * 86_400 * S)
    assert isinstance(status, SetSyncStatus) and not status.status.synchronised


def test_drift_frequency_is_the_starting_point() -> None:
    discipline = Discipline(frequency_ppb=-12_345.0)
    assert discipline.frequency_ppb == -12_345.0
    ops = discipline.update(sample(T0, 0))
    assert ops_of(ops, SetFrequency) == [SetFrequency(-12_345.0)]


@pytest.mark.parametrize(
    "bad",
    [
        {"step_threshold_ns": 0},
        {"max_frequency_ppb": 600_000.0},
        {"wander_ppb_per_sqrt_s": -1.0},
        {"history": 4},
        {"min_correction_ns": 0},
    ],
)
def test_bad_config_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DisciplineConfig(**bad)  # type: ignore[arg-type]


def test_prime_gives_the_first_update_the_frequency_of_the_earlier_samples() -> None:
    """Samples taken before the loop (a 25 ppm fast clock, 64 s apart): the first update knows the frequency."""
    d = Discipline(DisciplineConfig(initial_jitter_ns=50_000.0))
    rate = -25_000  # ppb: the clock gains 25 us per second, the offsets fall
    earlier = [sample(T0 + i * 64 * S, 2_000_000 + rate * 64 * i) for i in range(2)]
    assert d.prime(earlier)
    ops = d.update(sample(T0 + 128 * S, 2_000_000 + rate * 128))
    d.tick(T0 + 130 * S)
    assert abs(d.frequency_ppb - rate) < 500
    assert ops_of(ops, SetFrequency)


def test_prime_refuses_samples_too_close_to_fix_a_frequency() -> None:
    d = Discipline(DisciplineConfig(initial_jitter_ns=50_000.0))
    burst = [sample(T0 + i * 2 * S, 2_000_000 - 50_000 * i) for i in range(2)]
    assert not d.prime(burst, max_frequency_sd_ppb=5_000.0)
    assert not d.prime(burst[:1])
    d.update(sample(T0 + 4 * S, 1_900_000))
    assert d.frequency_ppb == 0.0  # the cold loop's first update takes the phase only
    with pytest.raises(RuntimeError):
        d.prime(burst)


def test_a_sample_with_extra_noise_moves_the_estimate_less() -> None:
    plain, queued = Discipline(), Discipline()
    for d in (plain, queued):
        for i in range(20):
            d.update(sample(T0 + i * S, 0))
            d.tick(T0 + i * S + S // 2)
    plain.update(sample(T0 + 20 * S, 50_000))
    queued.update(sample(T0 + 20 * S, 50_000), extra_noise_ns=100_000.0)
    assert 0 < queued.status(T0 + 20 * S).frequency_ppb < plain.status(T0 + 20 * S).frequency_ppb


def test_moved_counts_the_phase_slewed_not_the_frequency_estimate() -> None:
    """What the clock was slewed between two readings (to restate a measurement made at the first)."""
    discipline = Discipline(frequency_ppb=100.0)
    local = T0 - 2_000
    discipline.update(sample(T0, 2_000))  # behind by 2 us: +2 ppm over the next second on top of 100 ppb
    assert discipline.moved_ns(local, local + S // 2) == 1_000  # half the slew by half way
    discipline.tick(T0 + S)  # ends it
    assert discipline.moved_ns(local, local + 10 * S) == 2_000  # the 100 ppb (the oscillator's) do not count
    assert discipline.moved_ns(local + 2 * S, local + 10 * S) == 0  # nothing slewed after the slew
    assert discipline.moved_ns(local + 5 * S, local) == 0  # a reading after now: nothing
    assert discipline.moved_ns(local - 3600 * S, local + 10 * S) == 2_000  # before the loop's memory: from it
