"""Two-digit years and the GPS week-number rollover."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.nmea.rollover import WEEK_ROLLOVER_NS, WEEK_ROLLOVER_S, RolloverPolicy, expand_year
from appliance.timebase import NS_PER_S

DAY_NS = 86_400 * NS_PER_S


def ns(year: int, month: int, day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """POSIX ns of a UTC calendar time."""
    return int(dt.datetime(year, month, day, hh, mm, ss, tzinfo=dt.UTC).timestamp()) * NS_PER_S


def test_rollover_is_1024_weeks() -> None:
    assert WEEK_ROLLOVER_S == 619_315_200
    assert ns(1999, 8, 22) + WEEK_ROLLOVER_NS == ns(2019, 4, 7)
    assert ns(1980, 1, 6) + WEEK_ROLLOVER_NS == ns(1999, 8, 22)


@pytest.mark.parametrize(
    ("yy", "pivot", "year"),
    [
        (99, 2019, 1999),
        (19, 2019, 2019),
        (38, 2019, 2038),
        (39, 2019, 1939),
        (80, 2026, 1980),
        (45, 2026, 2045),
        (46, 2026, 1946),
        (5, 2090, 2105),
        (0, 2000, 2000),
    ],
)
def test_two_digit_year_window(yy: int, pivot: int, year: int) -> None:
    assert expand_year(yy, pivot) == year


@given(st.integers(0, 99), st.integers(1900, 2200))
def test_two_digit_year_lies_in_window(yy: int, pivot: int) -> None:
    year = expand_year(yy, pivot)
    assert year % 100 == yy
    assert pivot - 80 <= year <= pivot + 19


@pytest.mark.parametrize("yy", [-1, 100])
def test_two_digit_year_range(yy: int) -> None:
    with pytest.raises(ValueError):
        expand_year(yy, 2020)


def test_policy_leaves_recent_dates_alone() -> None:
    policy = RolloverPolicy(build_date_ns=ns(2019, 3, 14))
    assert policy.earliest_ns == ns(2019, 3, 14) - 365 * DAY_NS
    assert policy.repair(ns(2019, 4, 7)) == (ns(2019, 4, 7), 0)
    assert policy.repair(policy.earliest_ns) == (policy.earliest_ns, 0)
    assert policy.pivot_year == 2019


def test_policy_repairs_the_2019_rollover() -> None:
    policy = RolloverPolicy(build_date_ns=ns(2019, 3, 14))
    assert policy.repair(ns(1999, 8, 22, 0, 2, 31)) == (ns(2019, 4, 7, 0, 2, 31), 1)
    assert policy.repair(policy.earliest_ns - 1) == (policy.earliest_ns - 1 + WEEK_ROLLOVER_NS, 1)


def test_policy_takes_as_many_steps_as_needed() -> None:
    # GPS week 0 (1980-01-06) seen by firmware built in March 2019: two eras back
    policy = RolloverPolicy(build_date_ns=ns(2019, 3, 14))
    assert policy.repair(ns(1980, 1, 6)) == (ns(2019, 4, 7), 2)


def test_policy_can_refuse() -> None:
    policy = RolloverPolicy(build_date_ns=ns(2019, 3, 14), refuse=True)
    assert policy.repair(ns(1999, 8, 22)) == (None, 1)
    assert policy.repair(ns(2019, 4, 7)) == (ns(2019, 4, 7), 0)


def test_margin_is_configurable() -> None:
    policy = RolloverPolicy(build_date_ns=ns(2019, 3, 14), margin_ns=0)
    assert policy.repair(ns(2019, 3, 13))[1] == 1
    assert policy.repair(ns(2019, 3, 14))[1] == 0


@given(st.integers(0, 4_000_000_000), st.integers(0, 4_000_000_000))
def test_repair_lands_in_the_first_era_after_earliest(build_s: int, t_s: int) -> None:
    policy = RolloverPolicy(build_date_ns=build_s * NS_PER_S)
    repaired, steps = policy.repair(t_s * NS_PER_S)
    assert repaired is not None
    assert repaired - t_s * NS_PER_S == steps * WEEK_ROLLOVER_NS
    assert repaired >= policy.earliest_ns
    assert steps == 0 or repaired < policy.earliest_ns + WEEK_ROLLOVER_NS
