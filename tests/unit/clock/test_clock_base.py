"""The clock interface: operations as values, applied in order; leap and frequency checks."""

from __future__ import annotations

import random

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
)
from appliance.clock.kernel import KernelClock
from appliance.clock.simulated import SimulatedClock
from appliance.clock.soft import SoftClock


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
    assert clamp_frequency(1e9) == MAX_FREQUENCY_PPB
    assert clamp_frequency(-1e9) == -MAX_FREQUENCY_PPB
    assert clamp_frequency(12.5) == 12.5
    with pytest.raises(ValueError):
        clamp_frequency(float("nan"))


def test_sync_status_rejects_negative_errors() -> None:
    with pytest.raises(ValueError):
        SyncStatus(True, -1, 0)
