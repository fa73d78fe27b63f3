"""The GPS's states as status shows them: pulses arriving but not yet numbered, locked, pulses missing.

Pulses that arrive before the pairing has numbered them are a PPS signal that is there: no "no PPS"
alarm (the display used to say "GPS: no PPS" for the first seconds of every start), but "locking" until
the receiver's seconds are checked (its epochs follow on) and number them. NMEA alone locks too (its
seconds are checked), with the "no PPS" alarm.
"""

from __future__ import annotations

import random

import pytest

from appliance.clock.simulated import SimulatedClock
from appliance.lcd.view import view_from_snapshot
from appliance.nmea.epoch import Fix, FixMode
from appliance.ntp.server import ServerCounters
from appliance.refclock.gps import GpsClock
from appliance.refclock.sample import Pulse
from appliance.sources.timekeeper import Timekeeper
from appliance.status import metrics
from appliance.status.collect import AssocIds, snapshot_from
from appliance.status.snapshot import Snapshot
from appliance.status.text import leap_jump_line, lock_break_line, status_text
from appliance.timebase import NS_PER_S

T0 = 1_795_000_000 * NS_PER_S
DELAY_NS = 350_000_000


def fed(seconds: int, *, pulses: bool) -> tuple[GpsClock, int]:
    """A pairing fed ``seconds`` of a receiver's fixes, 350 ms after each second, and its pulses or none."""
    clock, rng = GpsClock(), random.Random(3)
    now = T0
    for k in range(seconds):
        true = T0 + k * NS_PER_S
        if pulses:
            clock.on_pulse(Pulse(true + round(rng.gauss(0, 1000))))
        now = true + DELAY_NS + rng.randrange(20_000_000)
        clock.on_fix(Fix(now, true % (86400 * NS_PER_S), true, True, FixMode.THREE_D))
    return clock, now + 100_000_000


def snap(clock: GpsClock, now: int) -> Snapshot:
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    return snapshot_from(
        tk, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, gps=clock
    )


@pytest.mark.parametrize(
    ("seconds", "pulses", "pps", "locked", "alarm", "words"),
    [
        (1, True, True, False, "gps-not-locked", "GPS: locking"),  # the first second after the fix
        (20, True, True, True, None, None),
        (20, False, False, True, "pps-missing", "GPS: no PPS"),  # NMEA alone: the PPS wire is the trouble
    ],
    ids=["arriving", "locked", "missing"],
)
def test_status_tells_pulses_missing_from_pulses_not_yet_paired(
    seconds: int, pulses: bool, pps: bool, locked: bool, alarm: str | None, words: str | None
) -> None:
    clock, now = fed(seconds, pulses=pulses)
    s = snap(clock, now)
    assert s.gps is not None and s.gps.fix
    assert (s.gps.pps, s.gps.locked) == (pps, locked)
    gps_alarms = [a.code for a in s.alarms if a.code in ("pps-missing", "gps-not-locked")]
    assert gps_alarms == ([alarm] if alarm else [])
    lcd = view_from_snapshot(s).alarms
    assert [w for w in lcd if w.startswith("GPS:")] == ([words] if words else [])
    gauges = {f.name: f.samples[0][1] for f in metrics.families(s) if f.kind == "gauge" and not f.labels}
    assert (gauges["stratum1_pps_ok"], gauges["stratum1_gps_locked"]) == (float(pps), float(locked))


def test_a_lock_break_is_counted_shown_and_logged_once() -> None:
    """The receiver's seconds jump (a reset, a firmware bug; fed to the pairing directly, past the rollover
    repair): the lock breaks."""
    clock, now = fed(20, pulses=True)
    before = snap(clock, now)
    assert before.gps is not None and before.gps.locked and before.gps.lock_breaks == 0
    jumped = T0 + 20 * NS_PER_S - 1024 * 7 * 86400 * NS_PER_S  # the next second, labelled 1024 weeks early
    arrival = T0 + 20 * NS_PER_S + DELAY_NS
    clock.on_pulse(Pulse(T0 + 20 * NS_PER_S))
    clock.on_fix(Fix(arrival, jumped % (86400 * NS_PER_S), jumped, True, FixMode.THREE_D))
    after = snap(clock, arrival + 100_000_000)
    assert after.gps is not None and after.gps.lock_breaks == 1 and not after.gps.locked
    assert ", 1 lock breaks (its seconds jumped)" in status_text(after)
    assert "lock breaks" not in status_text(before)
    assert lock_break_line(before, after) == (
        "GPS: its seconds jumped (an epoch that does not follow on from the last): the lock broke, 1 since the "
        "start; pulses are numbered again once its seconds follow on"
    )
    assert lock_break_line(after, after) is None and lock_break_line(None, after) is None
    counters = {f.name: f.samples[0][1] for f in metrics.families(after) if f.kind == "counter" and not f.labels}
    assert counters["stratum1_gps_lock_breaks"] == 1.0
    assert Snapshot.from_json(after.to_json()) == after


def test_a_leap_second_the_clock_did_not_take_is_logged_once_and_keeps_the_lock() -> None:
    """The leap-second file had expired: at the end of 2026 the receiver labels 23:59:60 and goes on a second
    behind the clock. The lock holds (no lock-break warning); one line says what happened and what to do."""
    midnight = 1_798_761_600 * NS_PER_S  # 2027-01-01 00:00:00 UTC
    clock, rng = GpsClock(), random.Random(5)
    snaps = []
    for k in range(-20, 20):  # true seconds from the leap second; the local clock runs on (no leap inserted)
        local = midnight + k * NS_PER_S
        clock.on_pulse(Pulse(local + round(rng.gauss(0, 1000))))
        label = midnight + (k if k < 0 else k - 1) * NS_PER_S  # 23:59:60 reads as 00:00:00 in POSIX
        tod = (label % (86400 * NS_PER_S)) + (86400 * NS_PER_S if k == 0 else 0)
        arrival = local + DELAY_NS
        clock.on_fix(Fix(arrival, tod, label + (NS_PER_S if k == 0 else 0), True, FixMode.THREE_D))
        snaps.append(snap(clock, arrival + 100_000_000))
    lines = [leap_jump_line(a, b) for a, b in zip(snaps, snaps[1:], strict=False)]
    said = [line for line in lines if line is not None]
    assert len(said) == 1 and "leap second" in said[0] and "leap-seconds.list" in said[0]
    last = snaps[-1]
    assert last.gps is not None and last.gps.leap_jumps == 1 and last.gps.lock_breaks == 0 and last.gps.locked
    assert all(lock_break_line(a, b) is None for a, b in zip(snaps, snaps[1:], strict=False))
    assert Snapshot.from_json(last.to_json()) == last
