"""DueTimer: a fake's work run when it falls due, on any loop with call_later."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from appliance.fakes.pacing import DueTimer
from appliance.fakes.pps import FakePps
from appliance.io.loop import EventLoop

S = 1_000_000_000


class ManualLoop:
    """call_later on a hand-driven clock (s); :meth:`run_until` fires what is due, in order."""

    def __init__(self, true: list[int]) -> None:
        self.true = true  # the fakes' true time, ns, moved with the loop's clock
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], Any], list[bool]]] = []
        self.delays: list[float] = []

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        assert delay >= 0
        self.delays.append(delay)
        cancelled = [False]
        self.timers.append((self.now + delay, callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def run_until(self, t: float) -> None:
        while True:
            due = [x for x in self.timers if x[0] <= t and not x[2][0]]
            if not due:
                break
            first = min(due, key=lambda x: x[0])
            self.timers.remove(first)
            self.true[0] += round((first[0] - self.now) * S)
            self.now = first[0]
            first[1]()
        self.true[0] += round((t - self.now) * S)
        self.now = t


def test_each_edge_is_ticked_just_after_its_second_and_the_loop_sleeps_in_between() -> None:
    true = [1_000 * S + 300_000_000]
    loop = ManualLoop(true)
    pps = FakePps(lambda: true[0], lambda: true[0])
    ticked: list[int] = []
    timer = DueTimer(
        loop,
        lambda: true[0],
        lambda: pps.next_edge_ns,
        lambda: ticked.extend(p.local_ns for p in pps.tick()),
        idle_s=0.25,
        late_s=0.001,
    )
    loop.run_until(10.0)
    assert len(pps.pulses) == 10  # 1001 .. 1010
    # never late by more than late_s, and the loop woke only to sleep on towards the edge (idle_s at most)
    assert all(0 <= (t - (t // S) * S) <= 1_000_000 for t in ticked)
    assert max(loop.delays) == 0.25 and len(loop.delays) <= 10 * 4 + 2
    timer.cancel()
    loop.run_until(20.0)
    assert len(pps.pulses) == 10


def test_nothing_due_looks_again_after_idle_and_a_failing_callback_does_not_stop_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    true = [0]
    loop = ManualLoop(true)
    calls = []

    def boom() -> None:
        calls.append(loop.now)
        raise RuntimeError("fake broke")

    DueTimer(loop, lambda: true[0], lambda: None, boom, idle_s=0.5)
    with caplog.at_level(logging.ERROR, logger="stratum1"):
        loop.run_until(2.0)
    assert calls == [0.5, 1.0, 1.5, 2.0]
    assert "a fake's timer failed" in caplog.text


def test_a_due_time_in_the_past_runs_at_once() -> None:
    true = [10 * S]
    loop = ManualLoop(true)
    DueTimer(loop, lambda: true[0], lambda: 5 * S, lambda: None)
    assert loop.delays == [0.0]


def test_bad_arguments_are_refused() -> None:
    loop = ManualLoop([0])
    with pytest.raises(ValueError):
        DueTimer(loop, lambda: 0, lambda: None, lambda: None, idle_s=0)
    with pytest.raises(ValueError):
        DueTimer(loop, lambda: 0, lambda: None, lambda: None, late_s=-1)


def test_on_the_real_loop() -> None:
    """EventLoop's call_later in real time: what falls due 50 ms ahead runs once its time has come, then idles."""
    import time

    loop = EventLoop()
    due = [time.time_ns() + 50_000_000]
    ran: list[int] = []
    calls = [0]

    def poll() -> None:  # as PtyWriter.poll: does what is due by now, if anything
        calls[0] += 1
        if time.time_ns() >= due[0]:
            ran.append(due[0])
            due[0] += 3600 * S  # the next is an hour away: idle_s keeps looking

    timer = DueTimer(loop, time.time_ns, lambda: due[0], poll, idle_s=0.1)
    start = time.monotonic()
    loop.run(until=lambda: time.monotonic() - start > 0.45)
    timer.cancel()
    assert len(ran) == 1
    assert 4 <= calls[0] <= 8  # the due one, then a look every 0.1 s
