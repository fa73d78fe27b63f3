"""Epoch labels that are not one whole second a second: 5/10 Hz receivers, free-running fractions, leap seconds.

Each test builds what a receiver sends, pulse and epochs, on a local clock
that is off by a known amount (``ERROR_NS``): every PPS sample must then
say exactly that error, never a second more or less.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from appliance.nmea.epoch import Fix, FixMode
from appliance.refclock.gps import GpsClock, GpsSettings
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.timebase import NS_PER_S

S = NS_PER_S
MS = 1_000_000
DAY = 86400 * S
ERROR_NS = 3_700_000  # local clock minus true time
#: 2027-01-01 00:00:00 UTC, a month-end midnight (where a leap second may go), and a day later a plain one.
NEW_YEAR = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) * S
PLAIN_MIDNIGHT = NEW_YEAR + DAY


def fix(arrival_ns: int, label_ns: int, *, leap_second: bool = False) -> Fix:
    """An epoch labelled ``label_ns`` (POSIX); ``leap_second``: labelled 23:59:60 (POSIX reads it as 00:00:00)."""
    utc = label_ns + S if leap_second else label_ns
    tod = label_ns % DAY + (S if leap_second else 0)
    return Fix(arrival_ns, tod, utc, True, FixMode.THREE_D)


def feed(clock: GpsClock, events: list[tuple[int, Pulse | Fix]]) -> list[Sample]:
    out: list[Sample] = []
    for _, ev in sorted(events, key=lambda e: e[0]):
        if isinstance(ev, Pulse):
            s = clock.on_pulse(ev)
            out.extend([s] if s else [])
        else:
            out.extend(clock.on_fix(ev))
    return out


def receiver(
    start_ns: int,
    seconds: int,
    *,
    rate_hz: int = 1,
    label_fraction_ns: int = 0,
    delay_ns: int = 40 * MS,
    seed: int = 1,
) -> list[tuple[int, Pulse | Fix]]:
    """Pulses at each true second; ``rate_hz`` epochs a second, labelled at their fix instants (plus
    ``label_fraction_ns`` for a free-running receiver) and arriving ``delay_ns`` after them, with 3 ms of jitter."""
    rng = random.Random(seed)
    events: list[tuple[int, Pulse | Fix]] = []
    for k in range(seconds):
        true = start_ns + k * S
        events.append((true + ERROR_NS, Pulse(true + ERROR_NS)))
        for j in range(rate_hz):
            label = true + j * S // rate_hz + label_fraction_ns
            arrival = label + ERROR_NS + delay_ns + rng.randint(0, 3 * MS)
            events.append((arrival, fix(arrival, label)))
    return events


def pulse_offsets(samples: list[Sample]) -> list[int]:
    return [s.offset_ns for s in samples if s.kind is SampleKind.PULSE]


@pytest.mark.parametrize("rate_hz", [2, 5, 10])
def test_fast_receiver_numbers_every_pulse_with_its_own_second(rate_hz: int) -> None:
    """A u-blox at 10 Hz labels .0 .. .9: each label belongs to the second its pulse began, not the nearest."""
    clock = GpsClock(GpsSettings())
    samples = feed(clock, receiver(NEW_YEAR + 3600 * S, 60, rate_hz=rate_hz))
    offsets = pulse_offsets(samples)
    assert len(offsets) >= 55
    assert all(abs(o + ERROR_NS) < 10_000 for o in offsets), sorted(set(o // MS for o in offsets))
    assert clock.counters.lock_breaks == 0
    assert clock.counters.sub_second_epochs == 60 * (rate_hz - 1)
    # the NMEA delay is the first epoch's (40 ms plus up to 3 ms), not the spread of the second's epochs
    assert clock.nmea_delay_ns is not None and 40 * MS <= clock.nmea_delay_ns <= 43 * MS


@pytest.mark.parametrize(
    ("fraction_ms", "delay_ms"),
    [
        (990, 110),  # $GPRMC,164517.99 (gp-320fw): the fix made just before the pulse, sent after it
        (799, 60),  # $GNRMC,074150.799 (beidou-bd): sent before the next pulse
        (799, 300),  # the same receiver sending after the next pulse
        (5, 500),  # $GPRMC,235946.005 (mtk-3301)
    ],
)
def test_free_running_labels_number_the_pulse_that_began_their_second(fraction_ms: int, delay_ms: int) -> None:
    clock = GpsClock(GpsSettings())
    samples = feed(clock, receiver(NEW_YEAR + 3600 * S, 40, label_fraction_ns=fraction_ms * MS, delay_ns=delay_ms * MS))
    offsets = pulse_offsets(samples)
    assert len(offsets) >= 35
    assert all(abs(o + ERROR_NS) < 10_000 for o in offsets)
    assert clock.counters.lock_breaks == 0
    # the delay runs from the labelled instant, so NMEA-only samples keep the label's fraction
    assert clock.nmea_delay_ns is not None and abs(clock.nmea_delay_ns - delay_ms * MS - 1_500_000) < 2 * MS


def test_nmea_only_samples_keep_the_label_fraction() -> None:
    """Calibrated with PPS, then the pulses stop: NMEA samples of a free-running receiver still say the error."""
    clock = GpsClock(GpsSettings())
    start = NEW_YEAR + 3600 * S
    events = receiver(start, 30, label_fraction_ns=990 * MS, delay_ns=110 * MS)
    later = [e for e in receiver(start + 30 * S, 20, label_fraction_ns=990 * MS, delay_ns=110 * MS, seed=2)]
    samples = feed(clock, events + [e for e in later if isinstance(e[1], Fix)])
    nmea = [s for s in samples if s.kind is not SampleKind.PULSE]
    assert nmea
    assert all(abs(s.offset_ns + ERROR_NS) < 3 * MS for s in nmea)


def leap_events(*, clock_inserts: bool) -> list[tuple[int, Pulse | Fix]]:
    """A leap second inserted at the end of 2026: labels 23:59:59, 23:59:60, 00:00:00. The local clock
    repeats 23:59:59 when it inserts the leap (the kernel, armed by the leap file), else it runs on."""
    events: list[tuple[int, Pulse | Fix]] = []
    for k in range(-30, 60):  # k: true (elapsed) seconds from the start of the leap second
        if k < 0:
            label = NEW_YEAR + k * S
        else:
            label = NEW_YEAR + (k - 1) * S  # after the leap the receiver's UTC is one second behind the count
        local = (NEW_YEAR + (k - 1) * S if k >= 0 and clock_inserts else NEW_YEAR + k * S) + ERROR_NS
        arrival = local + 100 * MS
        events.append((local, Pulse(local)))
        events.append((arrival, fix(arrival, label if k != 0 else NEW_YEAR - S, leap_second=k == 0)))
    return events


def test_leap_second_the_clock_inserts_keeps_the_lock_and_numbers_no_pulse_wrong() -> None:
    clock = GpsClock(GpsSettings(nmea_delay_ns=100 * MS))
    samples = feed(clock, leap_events(clock_inserts=True))
    offsets = pulse_offsets(samples)
    assert all(abs(o + ERROR_NS) < 10_000 for o in offsets), sorted(set(o // MS for o in offsets))
    assert len(offsets) >= 85  # the leap second's own pulse, and the ones the clock repeats, give nothing
    assert clock.counters.lock_breaks == 0
    assert clock.counters.leap_jumps == 0
    assert clock.locked


def test_leap_second_the_clock_did_not_know_is_followed_at_once() -> None:
    """The leap file had expired: the receiver's 23:59:60 leaves the clock one second ahead. The pulses after
    midnight say so at once (no 10 minutes in holdover on the old timeline), and none before it does."""
    clock = GpsClock(GpsSettings(nmea_delay_ns=100 * MS))
    samples = feed(clock, leap_events(clock_inserts=False))
    before = [s.offset_ns for s in samples if s.kind is SampleKind.PULSE and s.local_ns < NEW_YEAR]
    after = [s.offset_ns for s in samples if s.kind is SampleKind.PULSE and s.local_ns > NEW_YEAR + S]
    assert before and all(abs(o + ERROR_NS) < 10_000 for o in before)
    assert len(after) >= 55
    assert all(abs(o + ERROR_NS + S) < 10_000 for o in after)  # the clock is one second ahead now
    assert clock.counters.lock_breaks == 0
    assert clock.counters.leap_jumps == 1
    assert clock.locked


def test_a_second_slip_at_a_plain_midnight_still_breaks_the_lock() -> None:
    """Only a month's end may hold a leap second: the same one-second slip a day later is a receiver fault."""
    clock = GpsClock(GpsSettings(nmea_delay_ns=100 * MS))
    events: list[tuple[int, Pulse | Fix]] = []
    for k in range(-30, 30):
        local = PLAIN_MIDNIGHT + k * S + ERROR_NS
        label = PLAIN_MIDNIGHT + (k - 1 if k >= 0 else k) * S
        events += [(local, Pulse(local)), (local + 100 * MS, fix(local + 100 * MS, label))]
    samples = feed(clock, events)
    assert clock.counters.lock_breaks == 1
    assert clock.counters.leap_jumps == 0
    # and nothing is numbered by the slipped seconds until the new timeline has held long enough
    assert all(abs(o + ERROR_NS) < 10_000 for o in pulse_offsets(samples))
