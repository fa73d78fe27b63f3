"""The one event loop: file handlers and timers on one thread (chrony's sched.c, in Python).

Handlers are called when their file descriptor is readable; timers fire on
the monotonic clock (never the wall clock, which the appliance steers).
Signals wake the loop through a socket pair (``signal.set_wakeup_fd``) and run
their callbacks on the loop's thread. Each appliance owns its own loop: no
module state, so two can live in one process.
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
        self._running = False
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

    def stop(self) -> None:
        """Stop the loop; safe to call from another thread or a signal callback."""
        self._running = False
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run until :meth:`stop` (or ``until()`` is true, checked after each round)."""
        self._running = True
        while self._running:
            timeout = self._run_timers()
            if not self._running:
                break
            for key, _ in self._sel.select(timeout):
                try:
                    key.data()
                except Exception:  # a handler's bug must not stop the appliance serving
                    log.exception("event handler failed")
            if until is not None and until():
                break

    def _run_timers(self) -> float | None:
        now = self._monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if t.cancelled:
                continue
            try:
                t.callback()
            except Exception:
                log.exception("timer callback failed")
            if t.interval is not None and not t.cancelled:
                t.when = max(t.when + t.interval, now)
                heapq.heappush(self._timers, (t.when, next(self._seq), t))
        if not self._timers:
            return 1.0
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
