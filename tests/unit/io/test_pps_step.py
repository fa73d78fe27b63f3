"""A clock step between a kernel PPS edge and its fetch: the edge is handed up on the new scale, not lost.

``/dev/ppsN`` stamps edges on ``CLOCK_REALTIME``. When that is the clock served (the kernel clock) and it is
stepped (at power-on, days on a Pi without a battery clock), the edge of the second the step fell in was
stamped on the old scale: handed up as it is, the pulse checker refused it (bad interval) and the step
cost a pulse.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from appliance.build import Edge, Running, _start_pps_device
from appliance.clock.simulated import SimulatedClock
from appliance.fakes.pps import FakePps, FakePpsIoctl
from appliance.io import pps as pps_module
from appliance.io.pps import KernelPps, PpsPoller
from appliance.refclock.sample import Pulse, Sample
from appliance.refclock.source import RefclockSettings, RefclockSource
from appliance.sources.timekeeper import Timekeeper

S = 1_000_000_000
T0 = 1_795_000_000 * S


class Source:
    """A PPS device whose newest edge the test sets."""

    def __init__(self) -> None:
        self.newest: Pulse | None = None

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        return self.newest

    def close(self) -> None:
        pass


def test_an_edge_stamped_before_a_step_is_handed_up_moved_by_it() -> None:
    device, got = Source(), []
    poller = PpsPoller(device, got.append)
    device.newest = Pulse(T0 + S + 250_000, 1)
    poller.poll()
    device.newest = Pulse(T0 + 2 * S + 250_000, 2)  # stamped 250 us ahead; then the clock steps back 250 us
    poller.clock_stepped(-250_000)
    poller.poll()
    poller.poll()  # once
    device.newest = Pulse(T0 + 3 * S + 7, 3)  # stamped after the step: as it is
    poller.poll()
    assert got == [Pulse(T0 + S + 250_000, 1), Pulse(T0 + 2 * S, 2), Pulse(T0 + 3 * S + 7, 3)]
    assert (poller.pulses, poller.restated) == (3, 1)


def test_steps_add_up_and_an_edge_already_handed_up_is_not_moved() -> None:
    device, got = Source(), []
    poller = PpsPoller(device, got.append)
    device.newest = Pulse(T0, 1)
    poller.clock_stepped(5 * S)
    poller.clock_stepped(-2 * S)
    poller.poll()
    poller.clock_stepped(7 * S)  # its newest edge is the one handed up: nothing to restate
    device.newest = Pulse(T0 + 8 * S, 2)
    poller.poll()
    assert got == [Pulse(T0 + 3 * S, 1), Pulse(T0 + 8 * S, 2)]


def test_a_device_that_fails_at_the_step_is_left_to_the_poll() -> None:
    class Failing(Source):
        def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
            raise OSError(19, "No such device")

    poller = PpsPoller(Failing(), [].append)
    poller.clock_stepped(S)  # no exception: the next poll counts and logs the failure
    assert poller.poll() is None and poller.errors == 1


class Loop:
    def __init__(self) -> None:
        self.timers: list[Any] = []

    def call_every(self, interval: float, callback: Any, *, first: float | None = None) -> Any:
        self.timers.append(callback)
        return None


def step_two_seconds_back(tk: Timekeeper, clock: SimulatedClock) -> None:
    """Feed refclock X the true time until the timekeeper steps the clock (2 s ahead) back."""
    tk.add_refclock(RefclockSource(RefclockSettings(name="X(0)", refid="X", poll=0)))
    for _ in range(30):
        tk.on_sample("X(0)", Sample(clock.now_ns(), clock.true_ns))
        tk.tick()
        clock.advance(S)
        if tk.counters.clock_steps:
            return
    raise AssertionError("no step")


@pytest.mark.parametrize(("to_clock", "listens"), [(None, True), (lambda t: t, False)], ids=["kernel", "soft"])
def test_a_dev_pps_read_on_the_kernel_clock_follows_the_timekeepers_steps(
    monkeypatch: pytest.MonkeyPatch, to_clock: Any, listens: bool
) -> None:
    """Wired only when the edges are stamped on the served clock itself; a soft clock maps them when read."""
    true = [T0 + S // 2]
    fake = FakePps(lambda: true[0], lambda: true[0] + 2 * S)  # the kernel clock is 2 s ahead
    ioctl = FakePpsIoctl(fake)

    class Device(KernelPps):
        def __init__(self, path: str, **kw: Any) -> None:
            super().__init__(path, ioctl=ioctl, opener=ioctl.opener, **kw)

    monkeypatch.setattr(pps_module, "KernelPps", Device)
    clock = SimulatedClock(random.Random(1), start_ns=T0, initial_offset_ns=2 * S)
    tk = Timekeeper(clock, precision=-20)
    got: list[Pulse] = []
    loop = Loop()
    _start_pps_device(Edge(loop, tk, to_clock), "/dev/pps0", got.append, Running())  # type: ignore[arg-type]
    (poll,) = loop.timers
    true[0] += S  # an edge at T0 + 1 s, stamped 2 s ahead; then the clock is stepped back, before the poll
    step_two_seconds_back(tk, clock)
    poll()
    (pulse,) = got
    expected = T0 + S if listens else T0 + 3 * S
    assert pulse.sequence == 1 and abs(pulse.local_ns - expected) < 1_000_000, pulse.local_ns - T0


def test_the_timekeeper_tells_its_step_listeners_after_a_step() -> None:
    clock = SimulatedClock(random.Random(1), start_ns=T0, initial_offset_ns=-2 * S)  # 2 s behind
    tk = Timekeeper(clock, precision=-20)
    tk.add_refclock(RefclockSource(RefclockSettings(name="PPS(0)", refid="PPS", poll=0)))
    heard: list[int] = []
    tk.add_step_listener(heard.append)
    for _ in range(30):
        now = clock.now_ns()
        tk.on_sample("PPS(0)", Sample(now, clock.true_ns))
        tk.tick()
        clock.advance(S)
        if heard:
            break
    assert tk.counters.clock_steps == 1 and len(heard) == 1
    assert abs(heard[0] - 2 * S) < 1_000_000  # forwards by the 2 s it was behind
