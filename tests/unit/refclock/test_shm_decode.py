"""The shm segment decoder: the C layout, the count/valid handshake, ns/us fields, stale and duplicate samples."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.ntp.packet import LEAP_INSERT, LEAP_UNSYNC
from appliance.refclock.sample import SampleKind
from appliance.refclock.shm import (
    LAYOUT_32,
    LAYOUT_64,
    ShmReader,
    ShmRecord,
    ShmStatus,
    shm_key,
    shm_perm,
)
from appliance.timebase import NS_PER_S

T0 = 1_800_000_000 * NS_PER_S
MS = 1_000_000


def rec(**kw: int) -> ShmRecord:
    base = {"mode": 1, "count": 4, "clock_ns": T0, "receive_ns": T0 + 120 * MS, "precision": -20, "valid": 1}
    base.update(kw)
    return ShmRecord(**base)  # type: ignore[arg-type]


def test_layout_64_matches_the_c_struct_on_64_bit_linux() -> None:
    """Field by field, the offsets gcc gives ``struct shmTime`` on amd64/arm64 (time_t 8 octets, 8-aligned)."""
    assert LAYOUT_64.size == 96
    raw = bytearray(96)
    for offset, fmt, value in [
        (0, "<i", 1),  # mode
        (4, "<i", 7),  # count
        (8, "<q", 1_800_000_001),  # clockTimeStampSec
        (16, "<i", 250_000),  # clockTimeStampUSec
        (24, "<q", 1_800_000_001),  # receiveTimeStampSec
        (32, "<i", 370_123),  # receiveTimeStampUSec
        (36, "<i", LEAP_INSERT),  # leap
        (40, "<i", -20),  # precision
        (44, "<i", 3),  # nsamples
        (48, "<i", 1),  # valid
        (52, "<I", 250_000_001),  # clockTimeStampNSec
        (56, "<I", 370_123_456),  # receiveTimeStampNSec
    ]:
        struct.pack_into(fmt, raw, offset, value)
    r = LAYOUT_64.decode(bytes(raw))
    assert (r.mode, r.count, r.leap, r.precision, r.nsamples, r.valid) == (1, 7, LEAP_INSERT, -20, 3, 1)
    assert r.clock_ns == 1_800_000_001_250_000_001
    assert r.receive_ns == 1_800_000_001_370_123_456
    assert r.nanoseconds
    assert LAYOUT_64.valid_offset == 48


def test_layout_32_has_no_padding() -> None:
    assert LAYOUT_32.size == 80
    raw = LAYOUT_32.encode(rec())
    assert struct.unpack_from("<i", raw, LAYOUT_32.valid_offset)[0] == 1
    assert struct.unpack_from("<i", raw, 8)[0] == T0 // NS_PER_S


@pytest.mark.parametrize("layout", [LAYOUT_64, LAYOUT_32])
@given(
    clock=st.integers(0, 2**31 * NS_PER_S - 1),
    receive=st.integers(0, 2**31 * NS_PER_S - 1),
    mode=st.integers(-(2**31), 2**31 - 1),
    leap=st.integers(0, 3),
)
def test_encode_decode_round_trip(layout: object, clock: int, receive: int, mode: int, leap: int) -> None:
    assert isinstance(layout, type(LAYOUT_64))
    r = ShmRecord(mode=mode, count=9, clock_ns=clock, receive_ns=receive, leap=leap, precision=-3, valid=1)
    back = layout.decode(layout.encode(r))
    assert back == r


def test_microseconds_when_the_nanoseconds_do_not_match() -> None:
    """An old writer fills only USec (NSec stays 0 or junk): the microseconds are used."""
    raw = bytearray(LAYOUT_64.encode(rec(clock_ns=T0 + 250_000_000, receive_ns=T0 + 370_123_000)))
    struct.pack_into("<II", raw, 52, 0, 0)
    r = LAYOUT_64.decode(bytes(raw))
    assert not r.nanoseconds
    assert r.clock_ns == T0 + 250_000_000 and r.receive_ns == T0 + 370_123_000


def test_keys_and_modes_as_ntpd_and_gpsd_make_them() -> None:
    assert [hex(shm_key(u)) for u in range(4)] == ["0x4e545030", "0x4e545031", "0x4e545032", "0x4e545033"]
    assert [oct(shm_perm(u)) for u in range(4)] == ["0o600", "0o600", "0o666", "0o666"]
    assert shm_key(0).to_bytes(4, "big") == b"NTP0"
    with pytest.raises(ValueError):
        shm_key(-1)


def read(reader: ShmReader, r: ShmRecord, now: int, count_after: int | None = None) -> ShmStatus:
    raw = LAYOUT_64.encode(r)
    return reader.read(raw, count_after=r.count if count_after is None else count_after, now_ns=now).status


def test_a_good_sample() -> None:
    reader = ShmReader()
    result = reader.read(LAYOUT_64.encode(rec(leap=LEAP_INSERT)), count_after=4, now_ns=T0 + 200 * MS)
    assert result.status is ShmStatus.OK and result.clear_valid
    s = result.sample
    assert s is not None
    assert (s.local_ns, s.reference_ns, s.leap, s.kind) == (T0 + 120 * MS, T0, LEAP_INSERT, SampleKind.TIME)
    assert s.offset_ns == -120 * MS
    assert s.dispersion_ns == NS_PER_S >> 20


@pytest.mark.parametrize(
    ("record", "count_after", "status", "clear"),
    [
        (rec(valid=0), 4, ShmStatus.NOT_READY, False),
        (rec(mode=1), 5, ShmStatus.CLASH, False),
        (rec(mode=2), 4, ShmStatus.BAD_MODE, True),
        (rec(leap=LEAP_UNSYNC), 4, ShmStatus.UNSYNCHRONISED, True),
        (rec(receive_ns=T0 - 6 * NS_PER_S), 4, ShmStatus.STALE, True),
        (rec(receive_ns=T0 + 300 * MS), 4, ShmStatus.STALE, True),  # in the future
        (rec(clock_ns=T0 - 5 * 3600 * NS_PER_S), 4, ShmStatus.TOO_FAR, True),
    ],
)
def test_bad_reads_are_counted(record: ShmRecord, count_after: int, status: ShmStatus, clear: bool) -> None:
    reader = ShmReader()
    result = reader.read(LAYOUT_64.encode(record), count_after=count_after, now_ns=T0 + 200 * MS)
    assert result.status is status and result.sample is None
    assert result.clear_valid is clear
    c = reader.counters
    assert getattr(c, status.value) == 1 and c.reads == 1 and c.ok == 0


def test_mode_0_ignores_the_count() -> None:
    assert read(ShmReader(), rec(mode=0), T0 + 200 * MS, count_after=99) is ShmStatus.OK


def test_the_same_sample_twice_is_a_duplicate() -> None:
    reader = ShmReader()
    assert read(reader, rec(), T0 + 200 * MS) is ShmStatus.OK
    assert read(reader, rec(count=6), T0 + 300 * MS) is ShmStatus.DUPLICATE
    assert read(reader, rec(clock_ns=T0 + NS_PER_S, receive_ns=T0 + 1_120 * MS), T0 + 1_200 * MS) is ShmStatus.OK
    assert reader.counters.duplicate == 1 and reader.counters.ok == 2


def test_no_delta_limit_believes_any_distance() -> None:
    reader = ShmReader(max_delta_ns=None)
    assert read(reader, rec(clock_ns=T0 - 400 * 86_400 * NS_PER_S), T0 + 200 * MS) is ShmStatus.OK


@given(st.binary(min_size=96, max_size=200), st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**63))
def test_any_octets_give_a_status_never_an_exception(raw: bytes, count_after: int, now: int) -> None:
    reader = ShmReader()
    result = reader.read(raw, count_after=count_after, now_ns=now)
    assert (result.sample is not None) == (result.status is ShmStatus.OK)
    assert reader.counters.reads == 1
