"""Scenario: a leap second on virtual time, the table driving the clock through its leap hook.

A table with a leap second at the end of 2026-12-31 (signed with the hash
function that ``tests/unit/test_leap.py`` checks against tzdata's published
hash) and a simulated clock, polled the way the daemon is meant to:
``clock.set_leap(leap_to_serve(table, clock.now_ns(), source_leap))``. True
time in the simulation is elapsed time (no leap seconds, like TAI), so after
an inserted second the clock's UTC has advanced one second less than true
time, and UTC plus the table's TAI - UTC advances exactly as true time does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.clock.simulated import Oscillator, SimulatedClock
from appliance.leap import DAY_NS, LeapTable, leap_to_serve, load_leapfile, parse_leapfile, render_leapfile
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE
from appliance.timebase import NS_PER_S

S = NS_PER_S
LEAP_AT = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) * S
LAST_DAY = LEAP_AT - DAY_NS
BOOKWORM = Path(__file__).resolve().parents[1] / "data" / "leap" / "leap-seconds-2025b.list"


def table_with(delta_s: int) -> LeapTable:
    """tzdata 2025b's history plus a leap second of ``delta_s`` at the end of 2026-12-31, validly signed."""
    history = [(e.at_ns, e.tai_offset_s) for e in load_leapfile(str(BOOKWORM)).entries]
    text = render_leapfile(LEAP_AT - 180 * DAY_NS, LEAP_AT + 180 * DAY_NS, [*history, (LEAP_AT, 37 + delta_s)])
    return parse_leapfile(text, "crafted.list")


def polls(start: int, end: int) -> Iterator[int]:
    """Poll times (true ns): every second within 5 s of the last day's start and of the leap, else every 10 min."""
    t = start
    while t < end:
        yield t
        near = any(abs(t - edge) <= 5 * S for edge in (LAST_DAY, LEAP_AT))
        t += S if near else min(600 * S, max(S, min(abs(t - e) for e in (LAST_DAY, LEAP_AT)) - 5 * S))


def run(delta_s: int, initial_offset_ns: int = 300_000_000) -> tuple[SimulatedClock, LeapTable, list[tuple[int, int]]]:
    """Run from 2026-12-30 12:00 to 2027-01-02 00:10; return the clock, the table and (reading, leap armed) per poll."""
    table = table_with(delta_s)
    osc = Oscillator(frequency_error_ppb=2_000.0)
    clock = SimulatedClock(random.Random(3), osc, start_ns=LAST_DAY - DAY_NS // 2, initial_offset_ns=initial_offset_ns)
    trace = []
    for t in polls(clock.true_ns, LEAP_AT + DAY_NS + 600 * S):
        clock.advance_to(t)
        clock.set_leap(leap_to_serve(table, clock.now_ns(), LEAP_NONE))
        trace.append((clock.now_ns(), clock.leap))
    return clock, table, trace


def test_crafted_table_has_the_leap() -> None:
    table = table_with(+1)
    leap = table.next_leap(LAST_DAY)
    assert leap is not None and (leap.at_ns, leap.delta_s) == (LEAP_AT, 1)


def test_leap_bits_are_armed_for_exactly_the_last_day() -> None:
    _, _, trace = run(+1)
    armed = [reading for reading, leap in trace if leap == LEAP_INSERT]
    assert armed, "the leap was never armed"
    assert min(armed) >= LAST_DAY and min(armed) < LAST_DAY + S
    assert max(armed) < LEAP_AT  # disarmed from 00:00:00 on
    assert all(leap == LEAP_NONE for reading, leap in trace if reading < LAST_DAY)
    assert all(leap == LEAP_NONE for reading, leap in trace if reading >= LEAP_AT)


def test_inserted_second_happens_once_and_utc_falls_one_second_behind_tai() -> None:
    start_true = LAST_DAY - DAY_NS // 2
    start_error = 300_000_000
    clock, table, trace = run(+1, initial_offset_ns=start_error)
    start_reading = trace[0][0]
    elapsed_true = clock.true_ns - start_true
    elapsed_utc = clock.now_ns() - start_reading
    drift = clock.time_error_ns() - start_error  # what the 2 ppm oscillator gained meanwhile
    assert elapsed_true - (elapsed_utc - drift) == pytest.approx(S, abs=1)
    assert clock.leap_offset_ns() == -S  # one leap, although the clock ran past a second midnight
    # TAI (UTC + TAI - UTC from the table) progresses exactly as true (elapsed) time does
    tai_start = start_reading + table.tai_offset(start_reading) * S
    tai_end = clock.now_ns() + table.tai_offset(clock.now_ns()) * S
    assert tai_end - tai_start - drift == pytest.approx(elapsed_true, abs=1)


def test_235959_is_shown_twice() -> None:
    _, _, trace = run(+1, initial_offset_ns=0)
    shown = [reading // S * S - LEAP_AT for reading, _ in trace if abs(reading - LEAP_AT) <= 3 * S]
    assert shown.count(-S) == 2  # 23:59:59 and 23:59:60 (shown as a second 23:59:59)
    assert shown == sorted(shown)  # no other step back


def test_deleted_second_is_announced_and_skipped() -> None:
    clock, _, trace = run(-1, initial_offset_ns=0)
    assert any(leap == LEAP_DELETE for _, leap in trace)
    shown = [reading // S * S - LEAP_AT for reading, _ in trace if abs(reading - LEAP_AT) <= 3 * S]
    assert -S not in shown and -2 * S in shown and 0 in shown
    assert clock.leap_offset_ns() == S
