"""The event loop: timers, readers, signals, stop() before run() and from another thread, failing callbacks."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from appliance.io.loop import EventLoop


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    lp = EventLoop()
    yield lp
    lp.close()


def _run_bounded(loop: EventLoop, seconds: float = 5.0) -> float:
    """Run the loop; a timer stops it after ``seconds`` if nothing else did. Returns how long it ran."""
    guard = loop.call_later(seconds, loop.stop)
    start = time.monotonic()
    loop.run()
    guard.cancel()
    return time.monotonic() - start


def test_timers_fire_in_order_and_a_cancelled_one_never(loop: EventLoop) -> None:
    fired: list[str] = []
    loop.call_later(0.03, lambda: fired.append("c"))
    loop.call_later(0.01, lambda: fired.append("a"))
    loop.call_later(0.02, lambda: fired.append("b"))
    loop.call_later(0.015, lambda: fired.append("cancelled")).cancel()
    loop.call_later(0.05, loop.stop)
    assert _run_bounded(loop) < 1.0
    assert fired == ["a", "b", "c"]


def test_call_every_repeats_until_cancelled(loop: EventLoop) -> None:
    ticks: list[float] = []
    timer = loop.call_every(0.01, lambda: ticks.append(time.monotonic()), first=0.0)

    def enough() -> None:
        if len(ticks) >= 5:
            timer.cancel()
            loop.call_later(0.05, loop.stop)

    loop.call_every(0.01, enough)
    _run_bounded(loop)
    assert 5 <= len(ticks) <= 7  # cancelled: no more ticks in the 50 ms before the stop


def test_timers_follow_the_given_monotonic_clock() -> None:
    now = [100.0]
    lp = EventLoop(monotonic=lambda: now[0])
    try:
        fired: list[float] = []
        lp.call_later(10.0, lambda: fired.append(now[0]))

        def advance() -> bool:
            now[0] += 4.0
            return bool(fired)

        lp.call_every(0.0, lambda: None)  # a zero timeout each round: the test runs at once
        lp.run(until=advance)
        assert fired == [112.0]  # due at 110, seen at the first reading past it
    finally:
        lp.close()


def test_reader_is_called_when_readable_and_not_after_removal(loop: EventLoop) -> None:
    a, b = socket.socketpair()
    got: list[bytes] = []
    try:

        def on_readable() -> None:
            got.append(a.recv(100))
            loop.remove_reader(a)
            b.send(b"two")  # never read: the reader is gone
            loop.call_later(0.05, loop.stop)

        loop.add_reader(a, on_readable)
        b.send(b"one")
        _run_bounded(loop)
        assert got == [b"one"]
        loop.remove_reader(a)  # twice: no error
    finally:
        a.close()
        b.close()


def test_stop_before_run_makes_run_return_at_once(loop: EventLoop) -> None:
    fired: list[str] = []
    loop.call_later(0.0, lambda: fired.append("timer"))
    guard = loop.call_later(2.0, loop.stop)  # were the stop lost, this would end the run, too late
    loop.stop()
    start = time.monotonic()
    loop.run()
    assert time.monotonic() - start < 0.5
    guard.cancel()
    assert fired == []  # not one round
    # the stop is spent: the next run runs (and the timer fires)
    loop.call_later(0.02, loop.stop)
    _run_bounded(loop)
    assert fired == ["timer"]


def test_stop_from_another_thread_wakes_the_wait(loop: EventLoop) -> None:
    loop.call_later(60.0, lambda: None)  # nothing due: the loop waits its longest (1 s) at a time
    stopped_at: list[float] = []

    def stopper() -> None:
        time.sleep(0.2)
        stopped_at.append(time.monotonic())
        loop.stop()

    t = threading.Thread(target=stopper)
    t.start()
    _run_bounded(loop)
    returned = time.monotonic()
    t.join()
    assert returned - stopped_at[0] < 0.5  # woken by the stop, not by the end of a 1 s wait


def test_stop_from_another_thread_racing_the_start_is_not_lost() -> None:
    """The daemon's stop(): a stop that lands before the loop thread reaches run() still ends it."""
    for _ in range(20):
        lp = EventLoop()
        t = threading.Thread(target=lp.run)
        lp.stop()
        t.start()
        t.join(2)
        alive = t.is_alive()
        if alive:
            lp.stop()
            t.join(2)
        lp.close()
        assert not alive


def test_signal_callback_runs_on_the_loop(loop: EventLoop) -> None:
    got: list[tuple[str, int]] = []
    loop.on_signal(signal.SIGUSR2, lambda: (got.append(("usr2", threading.get_ident())), loop.stop()))
    loop.call_later(0.02, lambda: os.kill(os.getpid(), signal.SIGUSR2))
    assert _run_bounded(loop) < 2.0
    assert got == [("usr2", threading.get_ident())]


def test_signal_from_another_thread_wakes_the_loop(loop: EventLoop) -> None:
    got: list[str] = []
    loop.on_signal(signal.SIGUSR2, lambda: (got.append("usr2"), loop.stop()))
    loop.call_later(60.0, lambda: None)
    t = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGUSR2))
    t.start()
    assert _run_bounded(loop) < 0.9
    t.join()
    assert got == ["usr2"]


def test_close_restores_the_signal_disposition() -> None:
    before = signal.getsignal(signal.SIGUSR2)
    lp = EventLoop()
    lp.on_signal(signal.SIGUSR2, lambda: None)
    assert signal.getsignal(signal.SIGUSR2) is not before
    lp.close()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    signal.signal(signal.SIGUSR2, before)


def test_a_failing_callback_is_logged_and_the_loop_goes_on(loop: EventLoop, caplog: pytest.LogCaptureFixture) -> None:
    a, b = socket.socketpair()
    after: list[str] = []
    try:

        def bad_reader() -> None:
            a.recv(100)
            raise RuntimeError("reader bug")

        def bad_timer() -> None:
            raise ValueError("timer bug")

        loop.add_reader(a, bad_reader)
        loop.call_later(0.0, bad_timer)
        repeating = loop.call_every(0.01, lambda: 1 / 0)
        b.send(b"x")
        loop.call_later(0.05, lambda: after.append("still running"))
        loop.call_later(0.06, loop.stop)
        with caplog.at_level(logging.ERROR, logger="appliance.io.loop"):
            _run_bounded(loop)
        repeating.cancel()
        assert after == ["still running"]
        messages = [
            (r.getMessage(), r.exc_info[0].__name__ if r.exc_info and r.exc_info[0] else "") for r in caplog.records
        ]
        assert ("event handler failed", "RuntimeError") in messages
        assert ("timer callback failed", "ValueError") in messages
        assert sum(1 for m in messages if m[1] == "ZeroDivisionError") >= 3  # a repeating timer keeps repeating
    finally:
        a.close()
        b.close()


def test_set_wait_is_called_with_the_epoll_descriptor_and_the_timeout(loop: EventLoop) -> None:
    calls: list[tuple[int, float]] = []

    def wait(fd: int, timeout: float) -> None:
        calls.append((fd, timeout))
        time.sleep(min(timeout, 0.01))

    loop.set_wait(wait)
    loop.call_later(0.05, loop.stop)
    _run_bounded(loop)
    assert calls and all(0.0 <= t <= 0.05 for _, t in calls)
    fd = calls[0][0]
    os.fstat(fd)  # the selector's descriptor, open


def test_a_failing_wait_leaves_the_selector_to_wait(loop: EventLoop, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def wait(fd: int, timeout: float) -> None:
        calls.append(fd)
        raise OSError("broken")

    loop.set_wait(wait)
    loop.call_later(0.05, loop.stop)
    with caplog.at_level(logging.ERROR, logger="appliance.io.loop"):
        assert _run_bounded(loop) < 1.0
    assert len(calls) == 1
    assert any("wait failed" in r.getMessage() for r in caplog.records)
