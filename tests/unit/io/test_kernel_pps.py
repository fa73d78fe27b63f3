"""The kernel PPS API: struct layouts, ioctl numbers, and KernelPps against injected ioctl functions."""

from __future__ import annotations

import ctypes
import errno
import logging
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance.fakes.pps import FakePps, FakePpsIoctl
from appliance.io import pps as kpps
from appliance.io.pps import (
    PPS_CAPTUREASSERT,
    PPS_CAPTUREBOTH,
    PPS_CAPTURECLEAR,
    PPS_FETCH,
    PPS_GETCAP,
    PPS_GETPARAMS,
    PPS_SETPARAMS,
    REOPEN_EVERY_POLLS,
    KernelPps,
    PpsError,
    PpsFdata,
    PpsKinfo,
    PpsKparams,
    PpsKtime,
    PpsPoller,
    ioctl_numbers,
)
from appliance.refclock.sample import Pulse

S = 1_000_000_000
T0 = 1_700_000_000 * S
LP64 = ctypes.sizeof(ctypes.c_void_p) == 8 and ctypes.alignment(ctypes.c_int64) == 8
needs_lp64_le = pytest.mark.skipif(not (LP64 and sys.byteorder == "little"), reason="layout of 64-bit little-endian")


# ---------------------------------------------------------------- layouts and numbers


@needs_lp64_le
def test_struct_sizes_and_offsets_match_linux() -> None:
    assert ctypes.sizeof(PpsKtime) == 16
    assert ctypes.sizeof(PpsKinfo) == 48  # 44 bytes of fields, padded to the 8-byte alignment of __s64
    assert ctypes.sizeof(PpsKparams) == 40
    assert ctypes.sizeof(PpsFdata) == 64
    assert PpsKinfo.assert_tu.offset == 8
    assert PpsKinfo.clear_tu.offset == 24
    assert PpsKinfo.current_mode.offset == 40
    assert PpsKparams.assert_off_tu.offset == 8
    assert PpsFdata.timeout.offset == 48


def test_ioctl_numbers_take_the_size_of_a_pointer() -> None:
    # linux/pps.h declares them with pointer types: sizeof(void *) goes into bits 16-29.
    assert ioctl_numbers(8) == {
        "PPS_GETPARAMS": 0x800870A1,
        "PPS_SETPARAMS": 0x400870A2,
        "PPS_GETCAP": 0x800870A3,
        "PPS_FETCH": 0xC00870A4,
    }
    assert ioctl_numbers(4) == {
        "PPS_GETPARAMS": 0x800470A1,
        "PPS_SETPARAMS": 0x400470A2,
        "PPS_GETCAP": 0x800470A3,
        "PPS_FETCH": 0xC00470A4,
    }
    native = ioctl_numbers(ctypes.sizeof(ctypes.c_void_p))
    assert (PPS_GETPARAMS, PPS_SETPARAMS, PPS_GETCAP, PPS_FETCH) == tuple(native.values())


@needs_lp64_le
def test_fdata_unpacks_hand_built_bytes() -> None:
    raw = struct.pack(
        "<IIqiIqiIi4xqiI",
        7,  # assert_sequence
        3,  # clear_sequence
        1_700_000_001, 123_456_789, 0,  # assert_tu
        1_700_000_000, 900_000_000, 0,  # clear_tu
        PPS_CAPTUREBOTH,  # current_mode (+ 4 bytes of padding)
        0, 500_000, 1,  # timeout
    )  # fmt: skip
    assert len(raw) == ctypes.sizeof(PpsFdata)
    d = PpsFdata.from_buffer_copy(raw)
    assert (d.info.assert_sequence, d.info.clear_sequence) == (7, 3)
    assert kpps.ktime_ns(d.info.assert_tu) == 1_700_000_001_123_456_789
    assert kpps.ktime_ns(d.info.clear_tu) == 1_700_000_000_900_000_000
    assert d.info.current_mode == PPS_CAPTUREBOTH
    assert (d.timeout.sec, d.timeout.nsec, d.timeout.flags) == (0, 500_000, 1)
    assert bytes(d) == raw  # and back


@needs_lp64_le
def test_kparams_packs_like_the_kernel() -> None:
    p = PpsKparams(api_version=1, mode=PPS_CAPTUREASSERT)
    p.assert_off_tu.nsec = -1_000
    assert bytes(p) == struct.pack("<iiqiIqiI", 1, PPS_CAPTUREASSERT, 0, -1_000, 0, 0, 0, 0)


def test_negative_seconds_round_trip() -> None:
    t = PpsKtime(sec=-2, nsec=999_999_999)
    assert kpps.ktime_ns(PpsKtime.from_buffer_copy(bytes(t))) == -S - 1


# ---------------------------------------------------------------- KernelPps with a hand-written ioctl


class HandIoctl:
    """Answers like a device that has seen one assert and one clear edge; records every call."""

    def __init__(self, mode: int = PPS_CAPTUREASSERT) -> None:
        self.mode = mode
        self.calls: list[tuple[int, int, int]] = []  # (fd, request, buffer length)

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        self.calls.append((fd, request, len(buf)))
        if request == PPS_GETCAP:
            ctypes.c_int.from_buffer(buf).value = PPS_CAPTUREBOTH
        elif request == PPS_GETPARAMS:
            PpsKparams.from_buffer(buf).mode = self.mode
        elif request == PPS_SETPARAMS:
            p = PpsKparams.from_buffer(buf)
            assert p.api_version == 1
            self.mode = p.mode
        elif request == PPS_FETCH:
            d = PpsFdata.from_buffer(buf)
            d.info.assert_sequence, d.info.assert_tu.sec, d.info.assert_tu.nsec = 42, 1_700_000_005, 1_000
            d.info.clear_sequence, d.info.clear_tu.sec, d.info.clear_tu.nsec = 41, 1_700_000_004, 100_000_000
        return 0


def test_fetch_reads_the_chosen_edge_and_buffers_have_the_struct_sizes() -> None:
    io = HandIoctl()
    pps = KernelPps("/dev/pps0", ioctl=io, opener=lambda path: 7)
    assert pps.fetch() == Pulse(1_700_000_005 * S + 1_000, 42)
    sizes = {req: n for _, req, n in io.calls}
    assert sizes[PPS_GETCAP] == ctypes.sizeof(ctypes.c_int)
    assert sizes[PPS_GETPARAMS] == ctypes.sizeof(PpsKparams)
    assert sizes[PPS_FETCH] == ctypes.sizeof(PpsFdata)
    assert all(fd == 7 for fd, _, _ in io.calls)
    assert PPS_SETPARAMS not in sizes  # pps-gpio already captures assert: nothing to set

    clear = KernelPps("/dev/pps0", "clear", ioctl=io, opener=lambda path: 7)
    assert io.mode == PPS_CAPTURECLEAR  # set, since it captured assert only
    assert clear.fetch() == Pulse(1_700_000_004 * S + 100_000_000, 41)


def test_fetch_with_zero_timeout_sends_zero_timeout() -> None:
    seen: list[tuple[int, int, int]] = []

    def ioctl(fd: int, request: int, buf: bytearray) -> int:
        if request == PPS_FETCH:
            t = PpsFdata.from_buffer(buf).timeout
            seen.append((t.sec, t.nsec, t.flags))
        elif request == PPS_GETCAP:
            ctypes.c_int.from_buffer(buf).value = PPS_CAPTUREASSERT
        elif request == PPS_GETPARAMS:
            PpsKparams.from_buffer(buf).mode = PPS_CAPTUREASSERT
        return 0

    pps = KernelPps("/dev/pps0", ioctl=ioctl, opener=lambda path: 3)
    assert pps.fetch(0.0) is None  # sequence 0: no edge yet
    pps.fetch_info(1.25)
    assert seen == [(0, 0, 0), (1, 250_000_000, 0)]


def test_from_kernel_ns_maps_timestamps() -> None:
    pps = KernelPps("/dev/pps0", ioctl=HandIoctl(), opener=lambda p: 3, from_kernel_ns=lambda t: t + 5)
    assert pps.fetch() == Pulse(1_700_000_005 * S + 1_005, 42)


def test_closed_device_raises() -> None:
    pps = KernelPps("/dev/pps0", ioctl=HandIoctl(), opener=lambda p: -1)
    pps.close()
    with pytest.raises(PpsError, match="closed"):
        pps.fetch()


def test_invalid_edge() -> None:
    with pytest.raises(ValueError, match="edge"):
        KernelPps("/dev/pps0", "rising", ioctl=HandIoctl(), opener=lambda p: 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- opening errors


def test_missing_device_names_the_path_and_the_overlay(tmp_path: Path) -> None:
    path = str(tmp_path / "pps7")
    with pytest.raises(PpsError) as e:
        KernelPps(path)
    assert path in str(e.value)
    assert "dtoverlay=pps-gpio,gpiopin=N" in str(e.value)


def test_permission_denied_says_so() -> None:
    def opener(path: str) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PpsError, match=r"permission denied \(hw/udev gives PPS devices to group stratum1"):
        KernelPps("/dev/pps0", opener=opener)


def test_not_a_pps_device(tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_bytes(b"")
    with pytest.raises(PpsError, match="not a PPS device"):  # the real fcntl.ioctl on a plain file: ENOTTY
        KernelPps(str(f))


# ---------------------------------------------------------------- against the fake PPS (FakePpsIoctl)


class Clocks:
    def __init__(self) -> None:
        self.true = T0 + S // 2
        self.local = lambda: self.true + 250_000  # the local clock is 250 us ahead


def test_kernel_pps_over_the_fake_device() -> None:
    clk = Clocks()
    fake = FakePps(lambda: clk.true, clk.local)
    io = FakePpsIoctl(fake)
    pps = KernelPps("/dev/pps0", ioctl=io, opener=io.opener)
    assert pps.fetch() is None
    clk.true += S
    assert pps.fetch() == Pulse(T0 + S + 250_000, 1)
    assert pps.fetch() == Pulse(T0 + S + 250_000, 1)  # the same event again until the next edge
    assert pps.fetch_info(0.5) is None  # waiting for a new edge that does not come: ETIMEDOUT
    clk.true += 2 * S
    assert pps.fetch() == Pulse(T0 + 3 * S + 250_000, 3)


def test_setparams_without_cap_sys_time() -> None:
    fake = FakePps(lambda: T0, lambda: T0)
    # capturing both edges, may not change it: goes on with a warning
    io = FakePpsIoctl(fake, mode=PPS_CAPTUREBOTH, allow_set=False)
    KernelPps("/dev/pps0", ioctl=io, opener=io.opener)
    # capturing clear only, may not change it: error
    io = FakePpsIoctl(fake, mode=PPS_CAPTURECLEAR, allow_set=False)
    with pytest.raises(PpsError, match="CAP_SYS_TIME"):
        KernelPps("/dev/pps0", ioctl=io, opener=io.opener)


def test_device_that_cannot_capture_the_edge() -> None:
    fake = FakePps(lambda: T0, lambda: T0)
    io = FakePpsIoctl(fake, caps=PPS_CAPTUREASSERT)
    with pytest.raises(PpsError, match="cannot capture clear"):
        KernelPps("/dev/pps0", "clear", ioctl=io, opener=io.opener)


# ---------------------------------------------------------------- the poller


class TimerLoop:
    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_every(self, interval: float, callback: Any, *, first: float | None = None) -> Any:
        self.timers.append((interval, callback))

        class T:
            cancelled = False

            def cancel(self) -> None:
                self.cancelled = True

        return T()


def test_poller_hands_up_each_new_pulse_once(caplog: pytest.LogCaptureFixture) -> None:
    clk = Clocks()
    fake = FakePps(lambda: clk.true, clk.local)
    dev = fake.device()
    got: list[Pulse] = []
    poller = PpsPoller(dev, got.append, name="/dev/pps0")
    loop = TimerLoop()
    poller.start(loop)
    assert loop.timers[0][0] == pytest.approx(0.15)
    for _ in range(3):
        for _ in range(7):  # polls every ~150 ms
            poller.poll()
            clk.true += 150_000_000
    assert [p.sequence for p in got] == [1, 2, 3]
    assert poller.pulses == 3

    caplog.set_level(logging.INFO)
    dev.vanish()
    for _ in range(5):
        assert poller.poll() is None
    assert poller.errors == 5
    assert [r.message for r in caplog.records].count("/dev/pps0: fetch failed (No such device); will keep trying") == 1
    dev.reappear()
    clk.true += S
    assert poller.poll() is not None
    assert any("working again" in r.message for r in caplog.records)
    poller.stop()


def test_poller_opens_an_unplugged_device_again(caplog: pytest.LogCaptureFixture) -> None:
    clk = Clocks()
    fake = FakePps(lambda: clk.true, clk.local)
    old = fake.device()
    io = FakePpsIoctl(fake)
    refused = [True]

    def reopen() -> KernelPps:
        def opener(path: str) -> int:
            if refused[0]:  # plugged back in, but not yet given to the service's group by udev
                raise PermissionError(errno.EACCES, "Permission denied")
            return io.opener(path)

        return KernelPps("/dev/pps0", ioctl=io, opener=opener)

    got: list[Pulse] = []
    poller = PpsPoller(old, got.append, name="/dev/pps0", reopen=reopen)
    clk.true += S
    assert poller.poll() is not None
    caplog.set_level(logging.DEBUG)
    old.vanish()
    for _ in range(REOPEN_EVERY_POLLS):
        assert poller.poll() is None
    assert poller.source is old and poller.reopens == 0
    assert any("cannot open it again yet" in r.message and "group stratum1" in r.message for r in caplog.records)
    refused[0] = False
    for _ in range(REOPEN_EVERY_POLLS):
        poller.poll()
    assert poller.reopens == 1 and old.closed and isinstance(poller.source, KernelPps)
    clk.true += S
    assert poller.poll() == Pulse(T0 + 2 * S + 250_000, 2)
    assert [p.sequence for p in got] == [1, 2]
    assert any(r.message == "/dev/pps0: opened again" for r in caplog.records)
