"""The kernel backend: struct timex layout, and what each operation asks adjtimex for.

Every write goes to a fake adjtimex that plays the kernel's part; the host's
clock is only ever read (``modes = 0``), and that test skips where adjtimex
is unavailable.
"""

from __future__ import annotations

import ctypes
import sys

import pytest

from appliance.clock import kernel as k
from appliance.clock.kernel import KernelClock, Timex


class FakeKernel:
    """Records each call's modes and fields and keeps the state a kernel would."""

    def __init__(self, status: int = k.STA_UNSYNC, offset: int = 0) -> None:
        self.status = status
        self.offset = offset  # ns
        self.freq = 0
        self.tick = k.NOMINAL_TICK_US
        self.tai = 0
        self.calls: list[dict[str, int]] = []

    def __call__(self, tx: Timex) -> int:
        self.calls.append(
            {
                name: getattr(tx, name)
                for name in ("modes", "offset", "freq", "tick", "status", "constant", "maxerror", "esterror")
            }
            | {"sec": tx.time.tv_sec, "subsec": tx.time.tv_usec}
        )
        if tx.modes & k.ADJ_STATUS:
            self.status = (self.status & k.STA_RONLY) | (tx.status & ~k.STA_RONLY)
        if tx.modes & k.ADJ_NANO:
            self.status |= k.STA_NANO
        if tx.modes & k.ADJ_FREQUENCY:
            self.freq = tx.freq
        if tx.modes & k.ADJ_TICK:
            self.tick = tx.tick
        if tx.modes & k.ADJ_OFFSET and not tx.modes & k.ADJ_SETOFFSET:
            self.offset = tx.offset
        if tx.modes & k.ADJ_TAI:
            self.tai = tx.constant
        tx.status, tx.freq, tx.tick, tx.tai = self.status, self.freq, self.tick, self.tai
        tx.offset = self.offset if self.status & k.STA_NANO else self.offset // 1000
        return k.TIME_OK

    @property
    def writes(self) -> list[dict[str, int]]:
        return [c for c in self.calls if c["modes"]]


def test_struct_timex_layout_matches_the_platform_long() -> None:
    long_size = ctypes.sizeof(ctypes.c_long)
    expected = {8: 208, 4: 128}[long_size]
    assert ctypes.sizeof(Timex) == expected
    assert Timex.offset.offset == long_size  # after the 4-byte modes, aligned to a long
    assert Timex.status.offset == 5 * long_size
    assert Timex.time.offset == 9 * long_size
    assert Timex.tai.offset == (160 if long_size == 8 else 80)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux")
def test_read_only_adjtimex_decodes() -> None:
    try:
        state = KernelClock().read_state()
    except (OSError, AttributeError) as exc:  # seccomp, or a libc without adjtimex
        pytest.skip(f"adjtimex unavailable: {exc}")
    assert 0 <= state.clock_state <= k.TIME_ERROR
    assert abs(state.frequency_ppb) <= 100_500_000  # tick +-10 % plus freq +-500 ppm
    assert state.max_error_ns >= 0 and state.est_error_ns >= 0


def test_frequency_is_written_in_scaled_ppm_with_positive_faster() -> None:
    fake = FakeKernel()
    clock = KernelClock(adjtimex=fake)
    clock.set_frequency_ppb(-25_000.0)
    assert fake.writes == [fake.calls[0]]
    assert fake.calls[0]["modes"] == k.ADJ_FREQUENCY | k.ADJ_TICK
    assert fake.calls[0]["tick"] == 10_000  # 25 ppm fits freq: whole 100 ppm steps go to tick
    assert fake.calls[0]["freq"] == -25 * 65536
    assert clock.frequency_ppb() == pytest.approx(-25_000.0)


def test_a_fast_slew_goes_into_tick_as_chrony_does_and_stops_at_maxslewrate() -> None:
    fake = FakeKernel()
    clock = KernelClock(adjtimex=fake, max_slew_rate_ppb=50_000_000.0)
    clock.set_frequency_ppb(12_345_678.0)  # 12,345.678 ppm: tick +123 us, freq +45.678 ppm
    assert (fake.tick, fake.freq) == (10_123, round(45.678 * 65536))
    assert clock.frequency_ppb() == pytest.approx(12_345_678.0, abs=0.02)
    clock.set_frequency_ppb(-1e9)  # beyond maxslewrate (50,000 ppm): clamped
    assert (fake.tick, fake.freq) == (9_500, 0)
    assert clock.frequency_ppb() == -50_000_000.0
    with pytest.raises(ValueError, match="maxslewrate"):
        KernelClock(adjtimex=fake, max_slew_rate_ppb=2e8)


def test_accrue_adds_to_the_pending_offset_through_the_held_pll() -> None:
    fake = FakeKernel(status=k.STA_UNSYNC | k.STA_NANO, offset=300)
    clock = KernelClock(adjtimex=fake)
    clock.accrue_offset_ns(1_000)
    (write,) = fake.writes
    assert write["modes"] == k.ADJ_OFFSET | k.ADJ_NANO | k.ADJ_STATUS | k.ADJ_TIMECONST
    assert write["offset"] == 1_300  # pending 300 + 1000, positive: forwards
    assert write["constant"] == 0
    assert write["status"] & k.STA_PLL and write["status"] & k.STA_FREQHOLD
    assert write["status"] & k.STA_UNSYNC  # other bits kept
    assert clock.offset_correction_ns() == 1_300


def test_pending_offset_read_in_microseconds_without_sta_nano() -> None:
    fake = FakeKernel(status=0, offset=7_000)
    assert KernelClock(adjtimex=fake).offset_correction_ns() == 7_000


def test_accrue_beyond_maxphase_is_refused() -> None:
    fake = FakeKernel(status=k.STA_NANO, offset=400_000_000)
    with pytest.raises(ValueError, match="step"):
        KernelClock(adjtimex=fake).accrue_offset_ns(200_000_000)
    assert fake.writes == []


@pytest.mark.parametrize(
    ("offset", "sec", "subsec"), [(1_500_000_000, 1, 500_000_000), (-1, -1, 999_999_999), (-2_000_000_000, -2, 0)]
)
def test_step_uses_setoffset_with_normalised_nanoseconds(offset: int, sec: int, subsec: int) -> None:
    fake = FakeKernel()
    KernelClock(adjtimex=fake).step_ns(offset)
    (write,) = fake.writes
    assert write["modes"] == k.ADJ_SETOFFSET | k.ADJ_NANO
    assert (write["sec"], write["subsec"]) == (sec, subsec)


def test_leap_sets_ins_or_del_and_keeps_other_bits() -> None:
    fake = FakeKernel(status=k.STA_PLL | k.STA_DEL)
    clock = KernelClock(adjtimex=fake)
    clock.set_leap(1)
    assert fake.status & (k.STA_INS | k.STA_DEL) == k.STA_INS
    assert fake.status & k.STA_PLL
    clock.set_leap(2)
    assert fake.status & (k.STA_INS | k.STA_DEL) == k.STA_DEL
    clock.set_leap(0)
    assert fake.status & (k.STA_INS | k.STA_DEL) == 0
    with pytest.raises(ValueError):
        clock.set_leap(3)


def test_sync_status_clears_unsync_and_writes_errors_in_microseconds() -> None:
    fake = FakeKernel(status=k.STA_UNSYNC | k.STA_PLL)
    clock = KernelClock(adjtimex=fake)
    clock.set_sync_status(True, 1_001, 3_000)
    write = fake.writes[-1]
    assert write["modes"] == k.ADJ_STATUS | k.ADJ_MAXERROR | k.ADJ_ESTERROR
    assert not fake.status & k.STA_UNSYNC and fake.status & k.STA_PLL
    assert (write["esterror"], write["maxerror"]) == (2, 3)  # rounded up
    clock.set_sync_status(False, 0, 10**12)
    assert fake.status & k.STA_UNSYNC
    assert fake.writes[-1]["maxerror"] == k.PHASE_LIMIT_US


def test_construction_calls_nothing() -> None:
    fake = FakeKernel()
    KernelClock(adjtimex=fake)
    assert fake.calls == []


@pytest.mark.parametrize("unsync", [0, k.STA_UNSYNC])
@pytest.mark.parametrize(("leap", "bit"), [(1, k.STA_INS), (2, k.STA_DEL)])
def test_arming_a_leap_writes_only_its_bit_and_keeps_sta_unsync(unsync: int, leap: int, bit: int) -> None:
    fake = FakeKernel(status=unsync | k.STA_PLL | k.STA_FREQHOLD | k.STA_NANO | k.STA_PPSSIGNAL)
    KernelClock(adjtimex=fake).set_leap(leap)
    (write,) = fake.writes
    assert write["modes"] == k.ADJ_STATUS
    assert write["status"] == unsync | k.STA_PLL | k.STA_FREQHOLD | bit  # read-only bits not written back
    assert fake.status & k.STA_UNSYNC == unsync


@pytest.mark.parametrize("unsync", [0, k.STA_UNSYNC])
def test_clearing_after_the_leap_drops_ins_and_keeps_the_rest(unsync: int) -> None:
    fake = FakeKernel(status=unsync | k.STA_PLL | k.STA_INS)  # the kernel's TIME_WAIT keeps STA_INS
    KernelClock(adjtimex=fake).set_leap(0)
    (write,) = fake.writes
    assert write["modes"] == k.ADJ_STATUS
    assert write["status"] == unsync | k.STA_PLL


@pytest.mark.parametrize(("leap", "status"), [(0, 0), (1, k.STA_INS), (2, k.STA_DEL)])
def test_repeating_the_armed_leap_writes_nothing(leap: int, status: int) -> None:
    fake = FakeKernel(status=status | k.STA_UNSYNC)
    KernelClock(adjtimex=fake).set_leap(leap)
    assert fake.writes == []
    assert len(fake.calls) == 1  # one read


def test_sync_status_changes_keep_an_armed_leap() -> None:
    fake = FakeKernel(status=k.STA_UNSYNC | k.STA_INS)
    clock = KernelClock(adjtimex=fake)
    clock.set_sync_status(True, 1_000, 2_000)
    assert fake.status & (k.STA_INS | k.STA_DEL | k.STA_UNSYNC) == k.STA_INS
    clock.set_sync_status(False, 0, 0)
    assert fake.status & (k.STA_INS | k.STA_UNSYNC) == k.STA_INS | k.STA_UNSYNC


def test_tai_offset_goes_in_constant_with_adj_tai() -> None:
    fake = FakeKernel()
    clock = KernelClock(adjtimex=fake)
    clock.set_tai_offset(37)
    (write,) = fake.writes
    assert write["modes"] == k.ADJ_TAI
    assert write["constant"] == 37
    assert clock.read_state().tai_offset_s == 37
    clock.set_tai_offset(37)
    assert len(fake.writes) == 1  # already so: no write
    with pytest.raises(ValueError):
        clock.set_tai_offset(-1)
