"""The fake PPS source: edges at whole true seconds, stamped by the local clock passed in, and its verbs."""

from __future__ import annotations

import errno
import statistics

import pytest

from appliance.fakes.pps import FakePps
from appliance.refclock.pps import PulseCheck
from appliance.refclock.sample import Pulse

S = 1_000_000_000
T0 = 1_700_000_000 * S


class Clocks:
    """True time, advanced by the test; the local clock runs 2 ms behind and 100 ppm fast."""

    def __init__(self) -> None:
        self.true = T0 + S // 3

    def local(self) -> int:
        return self.true - 2_000_000 + (self.true - T0) // 10_000

    def advance(self, ns: int) -> None:
        self.true += ns


def test_tick_emits_each_passed_second_stamped_by_the_local_clock() -> None:
    c = Clocks()
    pps = FakePps(lambda: c.true, c.local)
    assert pps.tick() == []
    c.advance(S)  # past T0 + 1 s
    (p,) = pps.tick()
    edge = T0 + S
    # the local reading at the edge: now's reading minus the true time since the edge
    assert p == Pulse(c.local() - (c.true - edge), 1)
    c.advance(3 * S)
    assert [q.sequence for q in pps.tick()] == [2, 3, 4]
    assert pps.latest is not None and pps.latest.sequence == 4
    assert len(pps.pulses) == 4


def test_exact_when_true_time_is_advanced_to_the_edge() -> None:
    c = Clocks()
    pps = FakePps(lambda: c.true, c.local, offset_ns=50)
    c.true = T0 + 5 * S
    pulses = pps.tick()
    assert pulses[-1].local_ns == c.local() + 50


def test_local_at_maps_the_edge_itself_however_late_the_tick() -> None:
    """Given the mapping of true time onto the local clock, an edge's stamp is that map of the edge: no reading.

    Reading the local clock and then the true clock (the fallback) stamps every edge early by the time between
    the two readings; on a real-time ``--simulate`` that came to 6-8 us, and the appliance served that far ahead.
    """
    c = Clocks()
    reads = []

    def local() -> int:
        reads.append(c.true)
        return c.local()

    def local_at(true_ns: int) -> int:  # the same clock as Clocks.local, at any true time
        return true_ns - 2_000_000 + (true_ns - T0) // 10_000

    pps = FakePps(lambda: c.true, local, local_at=local_at, offset_ns=50)
    c.advance(3 * S + 7_654_321)  # the tick comes late: three edges passed, the last 341 ms ago
    pulses = pps.tick()
    assert [p.local_ns for p in pulses] == [local_at(T0 + k * S) + 50 for k in (1, 2, 3)]
    assert reads == []


def test_stop_resume_and_skip() -> None:
    c = Clocks()
    pps = FakePps(lambda: c.true, c.local)
    c.advance(2 * S)
    assert len(pps.tick()) == 2
    pps.stop()
    assert not pps.running
    c.advance(3 * S)
    assert pps.tick() == []
    pps.resume()
    c.advance(S)
    assert len(pps.tick()) == 1
    pps.skip(2)
    c.advance(3 * S)
    got = pps.tick()
    assert len(got) == 1 and got[0].sequence == 4


def test_drive_pulse_and_glitch() -> None:
    c = Clocks()
    pps = FakePps(lambda: c.true, c.local)
    c.true = T0 + 10 * S
    p = pps.drive_pulse(T0 + 10 * S)
    assert p == Pulse(c.local(), 1)
    assert pps.tick() == []  # that edge is not emitted twice
    c.advance(S // 4)
    g = pps.glitch()
    assert g.local_ns == c.local() and g.sequence == 2


def test_jitter_is_gaussian_and_seeded() -> None:
    def offsets(seed: int) -> list[int]:
        c = Clocks()
        pps = FakePps(lambda: c.true, lambda: c.true, jitter_ns=1_000, seed=seed)
        c.advance(400 * S)
        return [p.local_ns - (T0 + (i + 1) * S) for i, p in enumerate(pps.tick())]

    a = offsets(7)
    assert a == offsets(7)
    assert a != offsets(8)
    assert abs(statistics.mean(a)) < 200
    assert 800 < statistics.stdev(a) < 1_200


def test_device_adapter_fetches_like_kernel_pps() -> None:
    c = Clocks()
    dev = FakePps(lambda: c.true, c.local).device()
    assert dev.fetch() is None
    c.advance(S)
    first = dev.fetch()
    assert first is not None and first.sequence == 1
    assert dev.fetch() == first
    dev.vanish()
    with pytest.raises(OSError) as e:
        dev.fetch()
    assert e.value.errno == errno.ENODEV
    dev.reappear()
    dev.close()
    with pytest.raises(OSError):
        dev.fetch()


def test_pulses_pass_the_pulse_check_and_skips_count_as_missed() -> None:
    c = Clocks()
    pps = FakePps(lambda: c.true, c.local, jitter_ns=20_000, seed=1)
    check = PulseCheck()
    for i in range(30):
        if i == 10:
            pps.skip(2)
        c.advance(S)
        for p in pps.tick():
            check.check(p)
    n = check.counters
    assert (n.held, n.accepted, n.missed_seconds, n.bad_interval) == (1, 27, 2, 0)
