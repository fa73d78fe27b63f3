"""Pairing PPS pulses with NMEA seconds: numbering, NMEA delay calibration, lock breaks, fallbacks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from appliance.nmea.epoch import Fix, FixMode
from appliance.refclock.gps import Convention, GpsClock, GpsSettings
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.timebase import NS_PER_S

T0 = 1_795_000_000 * NS_PER_S
WEEK_NS = 7 * 86400 * NS_PER_S


@dataclass
class Receiver:
    """A simulated receiver: pulses at true seconds, epochs a delay later (or earlier, for NEXT)."""

    delay_ns: int
    clock_error_ns: int = 3_700_000  # local clock minus true time
    jitter_ns: int = 3_000_000
    pps_jitter_ns: int = 1000
    next_convention: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def local(self, true_ns: int) -> int:
        return true_ns + self.clock_error_ns

    def second(self, k: int, *, shift_ns: int = 0, pulse: bool = True, fix: bool = True) -> list[tuple[int, object]]:
        """Events for true second k, as (local time, Pulse or Fix), in arrival order."""
        true = T0 + k * NS_PER_S
        events: list[tuple[int, object]] = []
        if pulse:
            p = self.local(true) + round(self.rng.gauss(0, self.pps_jitter_ns))
            events.append((p, Pulse(p)))
        if fix:
            named = true + NS_PER_S if self.next_convention else true
            arrival = self.local(named) + self.delay_ns + round(self.rng.uniform(0, self.jitter_ns))
            utc = named + shift_ns
            events.append((arrival, Fix(arrival, utc % (86400 * NS_PER_S), utc, True, FixMode.THREE_D)))
        return sorted(events, key=lambda e: e[0])


def run(clock: GpsClock, rx: Receiver, seconds: range, **kw: object) -> list[Sample]:
    out: list[Sample] = []
    for k in seconds:
        for _, ev in rx.second(k, **kw):  # type: ignore[arg-type]
            if isinstance(ev, Pulse):
                s = clock.on_pulse(ev)
                if s:
                    out.append(s)
            else:
                assert isinstance(ev, Fix)
                out.extend(clock.on_fix(ev))
    return out


@pytest.mark.parametrize(
    ("name", "delay_ms", "convention"),
    [
        ("MTK3339", 500, Convention.CURRENT),
        ("u-blox M8", 110, Convention.CURRENT),
        ("next-second", -300, Convention.NEXT),
    ],
)
def test_pulses_numbered_right_and_delay_calibrated(name: str, delay_ms: int, convention: Convention) -> None:
    rx = Receiver(delay_ns=delay_ms * 1_000_000, next_convention=convention is Convention.NEXT)
    clock = GpsClock(GpsSettings(convention=convention))
    samples = run(clock, rx, range(60))
    pps = [s for s in samples if s.dispersion_ns < 1_000_000]
    assert len(pps) >= 55, f"{name}: pulses numbered from the first seconds"
    for s in pps:
        # every pulse is numbered with its own second: the offset is the local clock error, not a second off
        assert abs(s.offset_ns + rx.clock_error_ns) < 10_000
    assert clock.nmea_delay_ns is not None
    # the epoch's true delay is delay + uniform(0, jitter): the median sits near delay + jitter/2
    assert abs(clock.nmea_delay_ns - (rx.delay_ns + rx.jitter_ns // 2)) < 20_000_000
    assert clock.status(rx.local(T0 + 60 * NS_PER_S)).usable


def test_pps_lost_falls_back_to_nmea_samples_with_calibrated_delay() -> None:
    rx = Receiver(delay_ns=500_000_000)
    clock = GpsClock()
    run(clock, rx, range(40))
    later = run(clock, rx, range(40, 60), pulse=False)
    assert later and all(s.dispersion_ns >= 5_000_000 for s in later)
    assert all(abs(s.offset_ns + rx.clock_error_ns) < 20_000_000 for s in later)
    status = clock.status(rx.local(T0 + 60 * NS_PER_S))
    assert status.fix_ok and not status.pps_ok and status.usable


def test_week_jump_breaks_the_lock_until_good_data_returns() -> None:
    rx = Receiver(delay_ns=110_000_000)
    clock = GpsClock()
    run(clock, rx, range(30))
    jumped = run(clock, rx, range(30, 33), shift_ns=-1024 * WEEK_NS)
    assert all(abs(s.offset_ns + rx.clock_error_ns) < 10_000 for s in jumped[:1])  # numbered before its epoch
    assert clock.counters.lock_breaks == 1
    assert not clock.status(rx.local(T0 + 33 * NS_PER_S)).usable
    # while the receiver keeps jumping about, nothing is handed up
    assert run(clock, rx, range(33, 34), shift_ns=-3 * WEEK_NS) == []
    recovered = run(clock, rx, range(34, 45))
    assert recovered and all(abs(s.offset_ns + rx.clock_error_ns) < 10_000 for s in recovered)
    assert clock.status(rx.local(T0 + 45 * NS_PER_S)).usable


def test_no_fix_for_3_s_makes_the_source_unusable() -> None:
    rx = Receiver(delay_ns=500_000_000)
    clock = GpsClock()
    run(clock, rx, range(20))
    assert clock.status(rx.local(T0 + 20 * NS_PER_S)).usable
    run(clock, rx, range(20, 24), fix=False)
    assert not clock.status(rx.local(T0 + 24 * NS_PER_S)).usable


def test_pulses_not_one_second_apart_are_rejected() -> None:
    clock = GpsClock()
    assert clock.on_pulse(Pulse(T0)) is None
    clock.on_pulse(Pulse(T0 + 400_000_000))
    clock.on_pulse(Pulse(T0 + 1_000_000_000))
    clock.on_pulse(Pulse(T0 + 2_000_000_000))
    clock.on_pulse(Pulse(T0 + 2_000_000_000))
    assert clock.counters.pulses_rejected == 2


def test_pps_alone_needs_a_clock_already_within_0_4_s() -> None:
    clock = GpsClock()
    assert clock.on_pulse(Pulse(T0 + 150_000)) is None
    s = clock.on_pulse(Pulse(T0 + NS_PER_S + 150_000), clock_within_0_4s=True)
    assert s is not None and s.reference_ns == T0 + NS_PER_S and s.offset_ns == -150_000


def test_invalid_fixes_number_nothing() -> None:
    clock = GpsClock()
    for k in range(10):
        p = T0 + k * NS_PER_S
        clock.on_pulse(Pulse(p))
        assert clock.on_fix(Fix(p + 500_000_000, 0, T0 + k * NS_PER_S, False, FixMode.NONE)) == []
    assert not clock.status(T0 + 10 * NS_PER_S).usable


def test_a_jump_that_persists_is_believed_only_after_ten_minutes() -> None:
    from appliance.refclock.gps import JUMP_RELOCK_EPOCHS

    rx = Receiver(delay_ns=110_000_000, jitter_ns=0)
    clock = GpsClock()
    run(clock, rx, range(30))
    run(clock, rx, range(30, 30 + JUMP_RELOCK_EPOCHS - 1), shift_ns=WEEK_NS)
    assert not clock.locked
    run(clock, rx, range(30 + JUMP_RELOCK_EPOCHS - 1, 30 + JUMP_RELOCK_EPOCHS + 2), shift_ns=WEEK_NS)
    assert clock.locked


def test_the_sky_stands_until_the_next_epoch_that_has_one() -> None:
    """MediaTek receivers send GSV every fifth second: the last sky stands in between, with its time."""
    from appliance.nmea.sky import Satellite

    clock = GpsClock()
    sky = (Satellite("GPS", 3, 21, 174, 29, True), Satellite("GLONASS", 70, 76, 297, 23, False))
    t = T0 + 500_000_000
    clock.on_fix(Fix(t, 0, T0, True, FixMode.THREE_D, satellites=sky))
    clock.on_fix(Fix(t + NS_PER_S, 0, T0 + NS_PER_S, True, FixMode.THREE_D))  # no GSV in this epoch
    status = clock.status(t + NS_PER_S)
    assert status.satellites == sky and status.satellites_ns == t
    clock.on_fix(Fix(t + 2 * NS_PER_S, 0, T0 + 2 * NS_PER_S, True, FixMode.THREE_D, satellites=()))  # none in view
    assert clock.status(t + 2 * NS_PER_S).satellites == ()
    clock.clock_stepped(-5 * NS_PER_S)  # a clock step: the sky's time moves with the clock
    status = clock.status(t + 3 * NS_PER_S - 5 * NS_PER_S)
    assert status.satellites == () and status.satellites_ns == t + 2 * NS_PER_S - 5 * NS_PER_S
    clock.reset()  # starting afresh forgets it
    assert clock.status(t + 3 * NS_PER_S).satellites is None


@pytest.mark.parametrize("step_ns", [250_000_000, -250_000_000, 2_300_000_000, -3 * 86_400 * NS_PER_S - 123_456_789])
def test_a_clock_step_keeps_the_lock_the_numbering_and_the_calibration(step_ns: int) -> None:
    """A step made on this receiver's time (the first good sample at power-on) costs no relock epochs.

    Every pulse after the step is numbered with its own second at once; forgetting the pairing (as a reset
    does) left the receiver unusable for three epochs, and the timekeeper served "holdover" meanwhile.
    """
    rx = Receiver(delay_ns=500_000_000)
    clock = GpsClock()
    run(clock, rx, range(20))
    delay = clock.nmea_delay_ns
    clock.clock_stepped(step_ns)
    rx.clock_error_ns += step_ns
    assert clock.locked and clock.nmea_delay_ns == delay
    assert clock.status(rx.local(T0 + 19 * NS_PER_S + 600_000_000)).usable
    samples = run(clock, rx, range(20, 23))
    pulses = [s for s in samples if s.kind is SampleKind.PULSE]
    assert len(pulses) == 3
    for s in pulses:
        assert abs(s.offset_ns + rx.clock_error_ns) < 10_000  # its own second, on the new scale
    assert clock.counters.lock_breaks == 0 and clock.check.counters.bad_interval == 0
