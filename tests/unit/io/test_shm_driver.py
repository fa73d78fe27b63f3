"""The shm driver over the fake segments (gpsd's writes, clashes, valid cleared) and over real SysV segments."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from appliance.fakes.shm import FakeShm
from appliance.io.shm import Segment, ShmDriver, SysvShm, native_layout
from appliance.refclock.driver import Driver
from appliance.refclock.shm import LAYOUT_32, LAYOUT_64, ShmRecord
from appliance.timebase import NS_PER_S

T0 = 1_800_000_000 * NS_PER_S
MS = 1_000_000
IPC_RMID = 0


def test_it_is_a_driver() -> None:
    assert isinstance(ShmDriver(0, backend=FakeShm()), Driver)


@pytest.mark.parametrize(("unit", "perm"), [(0, 0o600), (1, 0o600), (2, 0o666), (3, 0o666)])
def test_open_creates_the_segment_with_ntpds_key_and_mode(unit: int, perm: int) -> None:
    shm = FakeShm()
    drv = ShmDriver(unit, backend=shm, layout=LAYOUT_64)
    drv.open()
    seg = shm.segment(0x4E545030 + unit)
    assert seg.perm == perm and len(seg.data) == 96 and seg.attached == 1
    drv.close()
    assert seg.attached == 0 and not drv.is_open


def test_open_attaches_to_a_segment_gpsd_made_first() -> None:
    shm = FakeShm()
    seg = shm.create(0x4E545030, perm=0o600)
    seg.put(clock_ns=T0, receive_ns=T0 + 90 * MS)
    drv = ShmDriver(0, backend=shm, layout=LAYOUT_64)
    drv.open()
    assert [s.reference_ns for s in drv.poll(T0 + 100 * MS).samples] == [T0]


def test_a_too_small_segment_is_an_error_naming_the_unit() -> None:
    shm = FakeShm()
    shm.create(0x4E545031, size=80)
    drv = ShmDriver(1, backend=shm, layout=LAYOUT_64)
    with pytest.raises(OSError, match=r"SHM unit 1 \(NTP1\)") as e:
        drv.open()
    assert e.value.errno == errno.EINVAL
    assert drv.counters()["open_errors"] == 1


def test_each_sample_is_taken_once_and_valid_is_cleared() -> None:
    shm = FakeShm()
    drv = ShmDriver(0, backend=shm, layout=LAYOUT_64)
    drv.open()
    seg = shm.segment(0x4E545030)
    got = []
    for i in range(5):
        t = T0 + i * NS_PER_S
        seg.put(clock_ns=t, receive_ns=t + 100 * MS)
        got += drv.poll(t + 150 * MS).samples
        got += drv.poll(t + 400 * MS).samples  # the driver polls more often than gpsd writes
        assert seg.valid == 0
    assert [s.reference_ns for s in got] == [T0 + i * NS_PER_S for i in range(5)]
    c = drv.counters()
    assert (c["ok"], c["not_ready"], c["reads"]) == (5, 5, 10)


def test_a_clash_leaves_valid_set_and_the_next_poll_takes_the_sample() -> None:
    shm = FakeShm()
    drv = ShmDriver(0, backend=shm, layout=LAYOUT_64)
    drv.open()
    seg = shm.segment(0x4E545030)
    seg.put(clock_ns=T0, receive_ns=T0 + 100 * MS)
    seg.interfere_next_read()
    assert drv.poll(T0 + 150 * MS).empty
    assert drv.counters()["clash"] == 1 and seg.valid == 1
    seg.put(clock_ns=T0 + NS_PER_S, receive_ns=T0 + 1_100 * MS)
    assert [s.reference_ns for s in drv.poll(T0 + 1_150 * MS).samples] == [T0 + NS_PER_S]


def test_mode_0_writer() -> None:
    shm = FakeShm()
    drv = ShmDriver(2, backend=shm, layout=LAYOUT_64)
    drv.open()
    seg = shm.segment(0x4E545032)
    seg.put(clock_ns=T0, receive_ns=T0 + 5 * MS, mode=0)
    seg.interfere_next_read()  # mode 0 has no count to check
    assert len(drv.poll(T0 + 10 * MS).samples) == 1


def test_a_rewritten_sample_is_a_duplicate_and_a_bad_mode_is_counted() -> None:
    shm = FakeShm()
    drv = ShmDriver(0, backend=shm, layout=LAYOUT_64)
    drv.open()
    seg = shm.segment(0x4E545030)
    seg.put(clock_ns=T0, receive_ns=T0 + 5 * MS)
    assert len(drv.poll(T0 + 10 * MS).samples) == 1
    seg.put(clock_ns=T0, receive_ns=T0 + 5 * MS)
    assert drv.poll(T0 + 20 * MS).empty
    seg.write_record(ShmRecord(mode=7, clock_ns=T0 + NS_PER_S, receive_ns=T0 + NS_PER_S, valid=1))
    assert drv.poll(T0 + NS_PER_S).empty
    c = drv.counters()
    assert (c["duplicate"], c["bad_mode"]) == (1, 1)


def test_poll_while_closed_is_empty() -> None:
    assert ShmDriver(0, backend=FakeShm()).poll(T0).empty


def test_native_layout_is_the_machines() -> None:
    assert native_layout() is (LAYOUT_64 if ctypes.sizeof(ctypes.c_long) == 8 else LAYOUT_32)


#: "ST" and this process's id: a key of these tests' own (one per pytest-xdist worker), made with IPC_EXCL and
#: removed at the end
TEST_KEY = 0x53540000 | (os.getpid() & 0xFFFF)


class _TestKey(SysvShm):
    """The real backend, with NTPu's key moved to this test's own key."""

    def attach(self, key: int, size: int, perm: int) -> Segment:
        assert key == 0x4E545030
        return super().attach(TEST_KEY, size, perm)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return libc


def _make(libc: ctypes.CDLL, size: int) -> int:
    shmid = libc.shmget(TEST_KEY, size, 0o600 | 0o1000 | 0o2000)  # IPC_CREAT | IPC_EXCL: never take over one
    if shmid == -1:
        pytest.skip(f"cannot make a test segment: errno {ctypes.get_errno()}")
    return int(shmid)


def test_the_driver_over_a_real_sysv_segment() -> None:
    """The ctypes calls against the kernel: a writer view (as gpsd) and the driver's own attach."""
    layout = native_layout()
    libc = _libc()
    shmid = _make(libc, layout.size)
    try:
        writer = libc.shmat(shmid, None, 0)
        assert writer not in (None, ctypes.c_void_p(-1).value)
        drv = ShmDriver(0, backend=_TestKey(), layout=layout)
        drv.open()
        assert drv.poll(T0).empty  # a new segment is zeros: not ready
        raw = layout.encode(ShmRecord(mode=1, count=2, clock_ns=T0, receive_ns=T0 + 7 * MS, precision=-20, valid=1))
        ctypes.memmove(writer, raw, len(raw))
        (sample,) = drv.poll(T0 + 10 * MS).samples
        assert (sample.reference_ns, sample.local_ns) == (T0, T0 + 7 * MS)
        assert ctypes.c_int.from_address(writer + layout.valid_offset).value == 0  # cleared in the shared memory
        drv.close()
        assert libc.shmdt(ctypes.c_void_p(writer)) == 0
    finally:
        assert libc.shmctl(shmid, IPC_RMID, None) == 0


def test_real_sysv_attach_error_names_the_key() -> None:
    """shmget of an existing key with a larger size fails with EINVAL; the message says which key."""
    libc = _libc()
    shmid = _make(libc, 16)
    try:
        with pytest.raises(OSError, match=f"shmget\\(0x{TEST_KEY:08x}, 96\\)") as e:
            SysvShm().attach(TEST_KEY, 96, 0o600)
        assert e.value.errno == errno.EINVAL
        seg = SysvShm().attach(TEST_KEY, 16, 0o600)
        seg.write_int(4, 1234)
        assert seg.read_int(4) == 1234 and len(seg.read()) == 16
        seg.detach()
        with pytest.raises(OSError):
            seg.read()
    finally:
        assert libc.shmctl(shmid, IPC_RMID, None) == 0


@pytest.mark.parametrize(("unit", "mode", "perm"), [(2, 1, 0o600), (3, 3, 0o600), (2, 0, 0o666), (0, 0, 0o600)])
def test_mode_bit_0_makes_a_private_segment_from_unit_2_on(unit: int, mode: int, perm: int) -> None:
    """ntpd's SHM_MODE_PRIVATE: ``server 127.127.28.2 mode 1`` is created 0600, as units 0-1 always are."""
    shm = FakeShm()
    ShmDriver(unit, mode=mode, backend=shm, layout=LAYOUT_64).open()
    assert shm.segment(0x4E545030 + unit).perm == perm


@pytest.mark.parametrize(("unit", "mode"), [(0, 0), (1, 0), (2, 1)])
def test_a_private_segment_that_exists_world_writable_is_refused(unit: int, mode: int) -> None:
    shm = FakeShm()
    seg = shm.create(0x4E545030 + unit, perm=0o666)  # made by another program
    seg.put(clock_ns=T0, receive_ns=T0 + 90 * MS)
    drv = ShmDriver(unit, mode=mode, backend=shm, layout=LAYOUT_64)
    with pytest.raises(OSError, match=rf"SHM unit {unit} \(NTP{unit}\) is to be private.*mode 0666") as e:
        drv.open()
    assert e.value.errno == errno.EPERM and f"ipcrm -M 0x{0x4E545030 + unit:08x}" in str(e.value)
    assert not drv.is_open and seg.attached == 0 and drv.counters()["open_errors"] == 1


def test_a_public_unit_attaches_to_a_world_writable_segment() -> None:
    shm = FakeShm()
    shm.create(0x4E545032, perm=0o666)
    drv = ShmDriver(2, backend=shm, layout=LAYOUT_64)
    drv.open()
    assert drv.is_open


def test_the_real_segments_mode_is_read_from_the_kernel() -> None:
    """A real private unit whose segment exists 0666 is refused; the kernel's mode is what is checked."""
    libc = _libc()
    shmid = libc.shmget(TEST_KEY, 96, 0o666 | 0o1000 | 0o2000)
    if shmid == -1:
        pytest.skip(f"cannot make a test segment: errno {ctypes.get_errno()}")
    try:
        drv = ShmDriver(0, backend=_TestKey(), layout=native_layout())
        with pytest.raises(OSError, match="mode 0666") as e:
            drv.open()
        assert e.value.errno == errno.EPERM
        seg = SysvShm().attach(TEST_KEY, 16, 0o600)
        assert seg.perm == 0o666
        seg.detach()
    finally:
        assert libc.shmctl(shmid, IPC_RMID, None) == 0


def test_samples_dropped_as_too_far_are_logged_once_with_the_offset(caplog: pytest.LogCaptureFixture) -> None:
    """Every sample of a clock 0.7 s off was dropped under 'time2 0.5' and the status said 'no samples yet'."""
    shm = FakeShm()
    drv = ShmDriver(0, backend=shm, layout=LAYOUT_64, max_delta_ns=500 * MS)
    drv.open()
    seg = shm.segment(0x4E545030)
    with caplog.at_level("WARNING"):
        for i in range(3):
            t = T0 + i * NS_PER_S
            seg.put(clock_ns=t + 700 * MS, receive_ns=t)
            assert drv.poll(t + 10 * MS).empty
    (record,) = caplog.records
    assert "SHM unit 0 (NTP0): samples dropped: the reference is +0.700 s from the local clock" in record.message
    assert "more than the 0.5 s the line believes" in record.message
    assert drv.counters()["too_far"] == 3
