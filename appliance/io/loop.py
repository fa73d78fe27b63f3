"""The one event loop: file handlers and timers on one thread (chrony's sched.c, in Python).

Handlers are called when their file descriptor is readable; timers fire on
the monotonic clock (never the wall clock, which the appliance steers).
Signals wake the loop through a socket pair (``signal.set_wakeup_fd``) and run
their callbacks on the loop's thread. Each appliance owns its own loop: no
module state, so two can live in one process.

A :meth:`~EventLoop.stop` counts whenever it comes: before :meth:`~EventLoop.run`
(run then returns at once), from another thread, or from a callback.

The wait itself can be handed to compiled code (:meth:`EventLoop.set_wait`):
the compiled data plane of the NTP server waits on the loop's epoll
descriptor, answers plain client requests itself, and returns to Python only
when a timer is due, another file is ready, a signal or a stop arrived, or a
datagram needs the Python server (:func:`appliance.io.udp.compiled_wait`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Timer:
    """A handle to a scheduled callback; :meth:`cancel` stops it."""

    __slots__ = ("when", "callback", "cancelled", "interval")

    def __init__(self, when: float, callback: Callable[[], Any], interval: float | None) -> None:
        self.when = when
        self.callback = callback
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """selectors-based loop: ``add_reader``, ``call_later``, ``call_every``, ``on_signal``, ``run``, ``stop``."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._monotonic = monotonic
        self._stop_requested = False
        self._wait: Callable[[int, float], None] | None = None
        self._signal_handlers: dict[int, Callable[[], Any]] = {}
        # A socket pair wakes the loop: stop() from another thread, and signals.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeups)
        self._old_wakeup_fd: int | None = None

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> None:
        self._sel.register(fileobj, selectors.EVENT_READ, callback)

    def remove_reader(self, fileobj: Any) -> None:
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Timer:
        t = Timer(self._monotonic() + delay, callback, None)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    def call_every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None) -> Timer:
        t = Timer(self._monotonic() + (interval if first is None else first), callback, interval)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    def on_signal(self, signum: int, callback: Callable[[], Any]) -> None:
        """Run ``callback`` on the loop when ``signum`` arrives (main thread only)."""
        if self._old_wakeup_fd is None:
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._signal_handlers[signum] = callback
        signal.signal(signum, lambda s, f: None)

    def _drain_wakeups(self) -> None:
        try:
            data = self._wake_r.recv(512)
        except BlockingIOError:
            return
        for signum in data:  # 0 is a plain wake-up from stop()
            cb = self._signal_handlers.get(signum)
            if cb is not None:
                cb()

    def set_wait(self, wait: Callable[[int, float], None] | None) -> None:
        """Let ``wait(epoll_fd, timeout_s)`` do the loop's waiting (None: the selector's own).

        ``wait`` may serve some of the loop's files itself, but must return once
        ``timeout_s`` has passed, or as soon as any other registered file is
        ready (signals and :meth:`stop` make the loop's own wake-up socket
        ready); the loop then polls with a zero timeout and runs the handlers of
        what is ready. Only on an epoll selector (Linux); elsewhere it is not used.
        """
        self._wait = wait if isinstance(self._sel, selectors.EpollSelector) else None

    def stop(self) -> None:
        """Stop the loop, now or, before :meth:`run`, as soon as it runs; safe from another thread or a callback."""
        self._stop_requested = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run until :meth:`stop` (or ``until()`` is true, checked after each round).

        A stop that came before the call makes it return at once; once it
        returns, the stop is spent and the loop can run again.
        """
        while not self._stop_requested:
            timeout = self._run_timers()
            if self._stop_requested:
                break
            wait = self._wait
            if wait is not None:
                try:
                    wait(self._sel.fileno(), timeout)
                except Exception:  # the compiled wait failed: the selector's own from now on
                    log.exception("the loop's wait failed: waiting with the selector from now on")
                    self._wait = None
                timeout = 0.0
            for key, _ in self._sel.select(timeout):
                try:
                    key.data()
                except Exception:  # a handler's bug must not stop the appliance serving
                    log.exception("event handler failed")
            if until is not None and until():
                return
        self._stop_requested = False  # spent: a later run() runs

    def _run_timers(self) -> float:
        now = self._monotonic()
        again: list[Timer] = []  # repeating timers go back after the round: each runs once per round at most
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if t.cancelled:
                continue
            try:
                t.callback()
            except Exception:
                log.exception("timer callback failed")
            if t.interval is not None and not t.cancelled:
                again.append(t)
        for t in again:
            if not t.cancelled:
                t.when = max(t.when + (t.interval or 0.0), now)
                heapq.heappush(self._timers, (t.when, next(self._seq), t))
        if not self._timers:
            return 1.0  # an upper bound on the wait: callbacks run between waits
        return max(0.0, min(1.0, self._timers[0][0] - self._monotonic()))

    def close(self) -> None:
        if self._old_wakeup_fd is not None:
            for signum in self._signal_handlers:
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(self._old_wakeup_fd)
            self._old_wakeup_fd = None
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
