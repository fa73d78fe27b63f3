"""The software clock over a base time function: sign conventions, and the host clock stays alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.clock.slew import ExponentialSlew
from appliance.clock.soft import ClockMap, SoftClock
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE
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


# --- leap seconds --------------------------------------------------------------------------------

MIDNIGHT = int(datetime(2017, 1, 1, tzinfo=UTC).timestamp()) * S
HALF = S // 2


def test_inserted_second_repeats_235959_at_midnight() -> None:
    base = Base(MIDNIGHT - 10 * S)
    clock = SoftClock(base)
    clock.set_leap(LEAP_INSERT)
    readings = []
    for t in (MIDNIGHT - HALF, MIDNIGHT, MIDNIGHT + HALF, MIDNIGHT + S, MIDNIGHT + S + HALF):
        base.t = t
        readings.append(clock.now_ns())
    # 23:59:59.5, then 23:59:59.0 again (that is 23:59:60), 23:59:59.5, 00:00:00.0, 00:00:00.5
    assert readings == [MIDNIGHT - HALF, MIDNIGHT - S, MIDNIGHT - HALF, MIDNIGHT, MIDNIGHT + HALF]
    assert not clock.leap_pending()
    assert clock.leap == LEAP_INSERT  # kept until disarmed, like the kernel's TIME_WAIT


def test_deleted_second_skips_235959() -> None:
    base = Base(MIDNIGHT - 10 * S)
    clock = SoftClock(base)
    clock.set_leap(LEAP_DELETE)
    base.t = MIDNIGHT - S - 1
    assert clock.now_ns() == MIDNIGHT - S - 1
    base.t = MIDNIGHT - S
    assert clock.now_ns() == MIDNIGHT
    base.t = MIDNIGHT - HALF
    assert clock.now_ns() == MIDNIGHT + HALF


def test_a_leap_happens_once_and_disarming_after_it_keeps_the_time() -> None:
    base = Base(MIDNIGHT - 10 * S)
    clock = SoftClock(base)
    clock.set_leap(LEAP_INSERT)
    assert clock.leap_pending()
    base.t = MIDNIGHT + 2 * S
    clock.set_frequency_ppb(1_000.0)  # re-anchors after the leap
    clock.set_leap(LEAP_INSERT)  # repeated by the daemon: no second leap
    base.t = MIDNIGHT + 2 * S + 86_400 * S
    assert clock.now_ns() == MIDNIGHT + S + 86_400 * S + 86_400_000
    clock.set_leap(LEAP_NONE)
    assert clock.now_ns() == MIDNIGHT + S + 86_400 * S + 86_400_000


def test_disarming_before_midnight_cancels_the_leap() -> None:
    base = Base(MIDNIGHT - 10 * S)
    clock = SoftClock(base)
    clock.set_leap(LEAP_INSERT)
    base.t = MIDNIGHT - S
    clock.set_leap(LEAP_NONE)
    base.t = MIDNIGHT + HALF
    assert clock.now_ns() == MIDNIGHT + HALF


def test_leap_follows_the_clocks_own_midnight_not_the_bases() -> None:
    base = Base(MIDNIGHT - 10 * S)
    clock = SoftClock(base)
    clock.step_ns(3 * S)  # the clock is 3 s ahead of its base
    clock.set_leap(LEAP_INSERT)
    base.t = MIDNIGHT - 3 * S - 1
    assert clock.now_ns() == MIDNIGHT - 1
    base.t = MIDNIGHT - 3 * S
    assert clock.now_ns() == MIDNIGHT - S
    assert clock.at_base_ns(MIDNIGHT) == MIDNIGHT + 2 * S


def test_watchers_get_the_map_now_and_after_every_change() -> None:
    """What the compiled data plane serves with: the map as it stands, after each operation that changes it."""
    base = [1_800_000_000 * 10**9]
    clock = SoftClock(lambda: base[0])
    seen: list[ClockMap | None] = []
    clock.watch(seen.append)
    assert seen == [clock.clock_map()]
    base[0] += 10**9
    clock.set_frequency_ppb(1_000)
    clock.accrue_offset_ns(-5_000)
    clock.step_ns(10**6)
    clock.set_leap(1)
    clock.set_sync_status(True, 1, 2)  # the time read does not change: no call
    assert len(seen) == 5
    last = seen[-1]
    assert last is not None and last == clock.clock_map()
    assert (last.frequency_ppb, last.pending_ns, last.slew_rate_ppm, last.leap_step) == (1_000, -5_000, 500.0, -(10**9))
    assert last.leap_at is not None and last.base_anchor == base[0]
    clock.unwatch(seen.append)
    clock.step_ns(1)
    assert len(seen) == 5


def test_no_map_for_a_slew_the_map_cannot_describe() -> None:
    assert SoftClock(lambda: 0, slew=ExponentialSlew()).clock_map() is None
