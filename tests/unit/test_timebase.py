"""The time type: NTP 32.32 conversions, eras (2036), short format, precision."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.timebase import (
    NS_PER_S,
    NTP_UNIX_OFFSET_S,
    log2_from_ns,
    ns_from_ntp64,
    ns_from_short,
    ntp64_diff_ns,
    ntp64_from_ns,
    ntp_era,
    short_from_ns,
)

ERA1_START_NS = ((1 << 32) - NTP_UNIX_OFFSET_S) * NS_PER_S  # 2036-02-07T06:28:16Z


def test_posix_epoch_is_ntp_2208988800() -> None:
    assert ntp64_from_ns(0) == NTP_UNIX_OFFSET_S << 32


def test_half_second_fraction() -> None:
    assert ntp64_from_ns(NS_PER_S // 2) & 0xFFFFFFFF == 1 << 31


def test_era_boundary_2036() -> None:
    assert ERA1_START_NS // NS_PER_S == 2085978496
    assert ntp64_from_ns(ERA1_START_NS) == 0
    assert ntp_era(ERA1_START_NS - 1) == 0
    assert ntp_era(ERA1_START_NS) == 1
    # a timestamp of 0 seconds read near 2036 means 2036, not 1900
    assert ns_from_ntp64(0, ERA1_START_NS - 10 * NS_PER_S) == ERA1_START_NS
    # one second before the wrap, read with a pivot just after it
    assert ns_from_ntp64(0xFFFFFFFF << 32, ERA1_START_NS + 5 * NS_PER_S) == ERA1_START_NS - NS_PER_S


@given(st.integers(min_value=-(2**62), max_value=2**62), st.integers(min_value=-(10**18), max_value=10**18))
def test_round_trip_within_half_era_of_pivot(t: int, delta: int) -> None:
    pivot = t + delta  # within ~32 years: always the same era answer
    assert ns_from_ntp64(ntp64_from_ns(t), pivot) == t


@given(st.integers(min_value=0, max_value=4 * 10**18), st.integers(min_value=-(10**17), max_value=10**17))
def test_difference_across_eras(t: int, d: int) -> None:
    a, b = ntp64_from_ns(t + d), ntp64_from_ns(t)
    assert abs(ntp64_diff_ns(a, b) - d) <= 1


def test_short_format() -> None:
    assert short_from_ns(NS_PER_S) == 1 << 16
    assert short_from_ns(-5) == 0
    assert short_from_ns(10**15) == 0xFFFFFFFF
    assert abs(ns_from_short(short_from_ns(1_234_567)) - 1_234_567) <= 8000


def test_precision_log2() -> None:
    assert log2_from_ns(NS_PER_S) == 0
    assert log2_from_ns(1000) == -19  # 2**-19 s = 1.9 us >= 1 us > 2**-20 s
    assert log2_from_ns(1) == -29
    assert 2.0 ** log2_from_ns(3000) * 1e9 >= 3000
    assert 2.0 ** (log2_from_ns(3000) - 1) * 1e9 < 3000
