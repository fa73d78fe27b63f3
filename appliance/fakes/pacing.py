"""Run a fake's work on an event loop when it falls due, not on a fast poll (``serve --simulate``).

A fake receiver knows when its next bytes are due and a fake PPS when its next edge is: a
:class:`DueTimer` sleeps until then (on the loop's monotonic timers, from the distance in true
time), runs the callback and sleeps again. The appliance in simulation then wakes about as often
as on real hardware (a few sentences and one edge a second; 15 wake-ups a second measured, against
203 with the 5 ms and 10 ms polls before), so an NTP request finds the loop running a fake's timer
far less often.

>>> class Loop:
...     def __init__(self): self.delays = []
...     def call_later(self, delay, callback):
...         self.delays.append(round(delay, 3)); self.callback = callback
...         return self
...     def cancel(self): self.delays.append("cancelled")
>>> loop, now, due = Loop(), [10_000_000_000], [10_400_000_000]
>>> timer = DueTimer(loop, lambda: now[0], lambda: due[0], lambda: print("due"), idle_s=0.5, late_s=0.0)
>>> loop.delays
[0.4]
>>> now[0], due[0] = 10_400_000_000, None  # nothing known to be due: look again after idle_s
>>> loop.callback()
due
>>> timer.cancel()
>>> loop.delays
[0.4, 0.5, 'cancelled']
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("stratum1")


class LaterLoop(Protocol):
    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any: ...


class DueTimer:
    """Calls ``callback`` on ``loop`` once the true time ``true_ns()`` reaches ``next_due()`` (ns), again and again.

    ``next_due`` is asked after every call: None (nothing known) looks again after ``idle_s``, and no
    sleep is ever longer than ``idle_s``, so that a verb (a fix lost, garbage sent, a receiver
    unplugged) shows within it. ``late_s`` wakes a little after the due time rather than a little
    before it (the loop's monotonic clock and the true time are not the same clock). A callback that
    raises is logged; the timer goes on.
    """

    def __init__(
        self,
        loop: LaterLoop,
        true_ns: Callable[[], int],
        next_due: Callable[[], int | None],
        callback: Callable[[], Any],
        *,
        idle_s: float = 0.25,
        late_s: float = 0.0005,
    ) -> None:
        if not idle_s > 0 or late_s < 0:
            raise ValueError("idle_s must be > 0 and late_s >= 0")
        self._loop = loop
        self._true = true_ns
        self._next_due = next_due
        self._callback = callback
        self.idle_s = idle_s
        self.late_s = late_s
        self._cancelled = False
        self._timer: Any = None
        self._arm()

    def _arm(self) -> None:
        due = self._next_due()
        if due is None:
            delay = self.idle_s
        else:
            delay = min(max((due - self._true()) / 1e9 + self.late_s, 0.0), self.idle_s)
        self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        if self._cancelled:
            return
        try:
            self._callback()
        except Exception:
            log.exception("simulation: a fake's timer failed")
        if not self._cancelled:
            self._arm()

    def cancel(self) -> None:
        self._cancelled = True
        if self._timer is not None:
            self._timer.cancel()
