"""The software clock over a base time function: sign conventions, and the host clock stays alone."""

from __future__ import annotations

import pytest

from appliance.clock.slew import ExponentialSlew
from appliance.clock.soft import SoftClock
from appliance.timebase import NS_PER_S

S = NS_PER_S
T0 = 1_704_067_200 * S  # a realistic POSIX time: the clock must stay exact to the ns there


class Base:
    """A base time function the test moves by hand."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_follows_its_base_until_told_otherwise() -> None:
    base = Base()
    clock = SoftClock(base)
    base.t += 12_345
    assert clock.now_ns() == T0 + 12_345
    assert clock.frequency_ppb() == 0.0


def test_positive_frequency_runs_faster_and_does_not_jump() -> None:
    base = Base()
    clock = SoftClock(base)
    base.t += S
    clock.set_frequency_ppb(2_000.0)
    assert clock.now_ns() == T0 + S  # changing the rate moves nothing
    base.t += 10 * S
    assert clock.now_ns() == T0 + 11 * S + 20_000


def test_positive_step_jumps_forwards() -> None:
    base = Base()
    clock = SoftClock(base)
    clock.step_ns(-3 * S)
    assert clock.now_ns() == T0 - 3 * S


def test_positive_accrue_slews_forwards_at_500_ppm() -> None:
    base = Base()
    clock = SoftClock(base)
    clock.accrue_offset_ns(1_000_000)
    assert clock.now_ns() == T0
    assert clock.offset_correction_ns() == 1_000_000
    base.t += S
    assert clock.now_ns() == T0 + S + 500_000
    assert clock.offset_correction_ns() == 500_000
    clock.accrue_offset_ns(-100_000)  # accumulates with what is pending
    assert clock.offset_correction_ns() == 400_000
    base.t += 10 * S
    assert clock.now_ns() == T0 + 11 * S + 900_000
    assert clock.offset_correction_ns() == 0


def test_slew_continues_across_a_frequency_change() -> None:
    base = Base()
    clock = SoftClock(base, slew=ExponentialSlew())
    clock.accrue_offset_ns(1_000_000)
    base.t += S
    clock.set_frequency_ppb(1.0)
    assert clock.offset_correction_ns() == 750_000
    base.t += S
    assert clock.offset_correction_ns() == pytest.approx(562_500, abs=1)


def test_sub_nanosecond_frequency_accumulates_exactly() -> None:
    base = Base()
    clock = SoftClock(base)
    clock.set_frequency_ppb(0.1)  # 0.1 ns per second
    for _ in range(100):
        base.t += S
        clock.set_frequency_ppb(0.1)  # re-anchor every second: fractions must not be lost
    assert clock.now_ns() == T0 + 100 * S + 10


def test_leap_and_sync_status_recorded() -> None:
    clock = SoftClock(Base())
    clock.set_leap(1)
    clock.set_sync_status(False, 0, 16 * S)
    assert clock.leap == 1
    assert not clock.sync_status.synchronised
    with pytest.raises(ValueError):
        clock.set_leap(7)


def test_reads_only_the_function_it_was_given() -> None:
    calls = []

    def base() -> int:
        calls.append(1)
        return T0

    SoftClock(base).now_ns()
    assert len(calls) == 2  # construction anchors, now_ns reads
