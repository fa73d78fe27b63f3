"""The clock interface: operations as values, applied in order; leap and frequency checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from appliance.clock.base import (
    MAX_FREQUENCY_PPB,
    AccrueOffset,
    Clock,
    SetFrequency,
    SetLeap,
    SetSyncStatus,
    Step,
    SyncStatus,
    apply,
    check_leap,
    clamp_frequency,
    leap_schedule,
)
from appliance.clock.kernel import KernelClock
from appliance.clock.simulated import SimulatedClock
from appliance.clock.soft import SoftClock
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE
from appliance.timebase import NS_PER_S


def test_every_backend_is_a_clock() -> None:
    backends: list[Clock] = [
        SimulatedClock(random.Random(0), start_ns=0),
        SoftClock(lambda: 0),
        KernelClock(adjtimex=lambda tx: 0),
    ]
    assert all(isinstance(b, Clock) for b in backends)


def test_apply_performs_operations_in_order() -> None:
    clock = SimulatedClock(random.Random(0), start_ns=0)
    apply(
        clock,
        [
            Step(1_000),
            SetFrequency(2_000.0),
            AccrueOffset(-300),
            SetLeap(1),
            SetSyncStatus(SyncStatus(True, 10, 30)),
        ],
    )
    assert clock.now_ns() == 1_000
    assert clock.frequency_ppb() == 2_000.0
    assert clock.offset_correction_ns() == -300
    assert clock.leap == 1
    assert clock.sync_status == SyncStatus(True, 10, 30)


@pytest.mark.parametrize("leap", [0, 1, 2])
def test_leap_values_accepted(leap: int) -> None:
    assert check_leap(leap) == leap


@pytest.mark.parametrize("leap", [3, -1, 4])
def test_leap_alarm_and_nonsense_rejected(leap: int) -> None:
    with pytest.raises(ValueError, match="leap"):
        check_leap(leap)


def test_frequency_is_clamped_and_must_be_finite() -> None:
    assert clamp_frequency(1e9, MAX_FREQUENCY_PPB) == MAX_FREQUENCY_PPB
    assert clamp_frequency(-1e9, MAX_FREQUENCY_PPB) == -MAX_FREQUENCY_PPB
    assert clamp_frequency(1e9) == pytest.approx(83_333_333.3)  # chrony's default maxslewrate
    assert clamp_frequency(12.5) == 12.5
    with pytest.raises(ValueError):
        clamp_frequency(float("nan"))


def test_sync_status_rejects_negative_errors() -> None:
    with pytest.raises(ValueError):
        SyncStatus(True, -1, 0)


# --- leap seconds: when the backends execute them ------------------------------------------------

MIDNIGHT = int(datetime(2017, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S


@pytest.mark.parametrize(
    "reading", [MIDNIGHT - 86_400 * NS_PER_S, MIDNIGHT - NS_PER_S - 1, MIDNIGHT - 1, MIDNIGHT - 5 * 3_600 * NS_PER_S]
)
def test_insert_happens_at_the_next_midnight_stepping_back(reading: int) -> None:
    assert leap_schedule(reading, LEAP_INSERT) == (MIDNIGHT, -NS_PER_S)


def test_insert_armed_at_midnight_waits_for_the_next_one() -> None:
    assert leap_schedule(MIDNIGHT, LEAP_INSERT) == (MIDNIGHT + 86_400 * NS_PER_S, -NS_PER_S)


def test_delete_happens_at_235959_stepping_forwards() -> None:
    assert leap_schedule(MIDNIGHT - NS_PER_S - 1, LEAP_DELETE) == (MIDNIGHT - NS_PER_S, NS_PER_S)
    # already inside 23:59:59: too late for today, as in the kernel
    assert leap_schedule(MIDNIGHT - NS_PER_S // 2, LEAP_DELETE) == (MIDNIGHT + 86_399 * NS_PER_S, NS_PER_S)


@pytest.mark.parametrize("leap", [LEAP_NONE, 3])
def test_leap_schedule_needs_an_armed_leap(leap: int) -> None:
    with pytest.raises(ValueError):
        leap_schedule(MIDNIGHT, leap)
