"""A software-corrected clock over a time function passed in; it never touches the host clock.

Used by ``stratum1 serve --simulate`` and by tests: it needs no privileges.
The clock reads the base time function (``read_ns``, for example
``time.time_ns`` handed in by the composition root; this module never reads
a clock on its own) and applies its own corrections to it:

    reading = local_anchor + elapsed * (1 + frequency * 1e-9) + slewed(elapsed)

where ``elapsed`` is the base time since the last operation (the *anchor*)
and ``slewed`` is the part of the pending offset the slew model
(:mod:`appliance.clock.slew`, rate-limited 500 ppm by default) has worked off.
Every operation first re-anchors at the current reading, so a frequency
change never moves the clock and a slew continues across operations.
Sign conventions are those of :mod:`appliance.clock.base`.

Leap seconds are executed as the kernel executes them
(:func:`~appliance.clock.base.leap_schedule`): armed with
:meth:`SoftClock.set_leap`, an insertion steps the reading back one second
when it reaches midnight UTC (23:59:59 shows twice; readings stay
monotonic only across each half), a deletion steps it forwards one second
when it reaches 23:59:59. The step is worked out from the reading itself,
so it takes effect at exactly that reading however rarely the clock is
read. :meth:`SoftClock.at_base_ns` maps base times after the leap; a base
time from before the leap mapped after it is off by the leap second (the
kernel's timestamps during 23:59:60 are ambiguous in the same way).

With the Linux default slew model (:class:`~appliance.clock.slew.RateLimitedSlew`)
the whole state of the map from base time to reading is a :class:`ClockMap`
(:meth:`SoftClock.clock_map`), handed to each :meth:`SoftClock.watch`
callback after every change: the compiled data plane
(:mod:`appliance.io.fastpath`) serves the soft clock with it, mapping the
kernel's receive timestamp and its own transmit reading as
:meth:`SoftClock.at_base_ns` does, to the nanosecond.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from appliance.clock.base import (
    DEFAULT_MAX_SLEW_RATE_PPB,
    SyncStatus,
    arm_leap,
    check_leap,
    check_max_slew_rate,
    clamp_frequency,
)
from appliance.clock.slew import RateLimitedSlew, SlewModel
from appliance.ntp.packet import LEAP_NONE


class ClockMap(NamedTuple):
    """What a :class:`SoftClock` with a :class:`RateLimitedSlew` reads at any base time, as plain numbers.

    At base time ``b``, with ``e = b - base_anchor``: ``local_anchor + round(local_frac + e + e * frequency_ppb
    * 1e-9 + slewed)``, ``slewed`` being ``copysign(min(|pending_ns|, slew_rate_ppm * 1e-6 * e), pending_ns)``
    for ``e > 0`` (else 0); plus ``leap_step`` from the reading ``leap_at`` on, while a leap is armed (not None).
    """

    base_anchor: int
    local_anchor: int
    local_frac: float
    frequency_ppb: float
    pending_ns: float
    slew_rate_ppm: float
    leap_at: int | None
    leap_step: int


class SoftClock:
    """An unprivileged :class:`~appliance.clock.base.Clock` over ``read_ns`` (POSIX ns).

    >>> base = [1_000_000_000]
    >>> clock = SoftClock(lambda: base[0])
    >>> clock.step_ns(5)
    >>> clock.now_ns()
    1000000005
    """

    def __init__(
        self,
        read_ns: Callable[[], int],
        *,
        slew: SlewModel | None = None,
        max_slew_rate_ppb: float = DEFAULT_MAX_SLEW_RATE_PPB,
    ) -> None:
        self._max_slew_ppb = check_max_slew_rate(max_slew_rate_ppb)
        self._read = read_ns
        self._slew: SlewModel = slew if slew is not None else RateLimitedSlew()
        self._base_anchor = read_ns()
        # the reading at the anchor is _local_anchor + _local_frac: an int (POSIX ns do not
        # fit a float to the nanosecond) plus the sub-ns remainder of the corrections
        self._local_anchor = self._base_anchor
        self._local_frac = 0.0
        self._frequency_ppb = 0.0
        self._pending_ns = 0.0  # still to slew at the anchor
        self._leap = LEAP_NONE
        # an armed leap not executed yet: from the (pre-leap) reading _leap_at on, add _leap_step
        self._leap_at: int | None = None
        self._leap_step = 0
        self._sync = SyncStatus()
        self._watchers: list[Callable[[ClockMap | None], object]] = []

    def clock_map(self) -> ClockMap | None:
        """The map from base time to reading as it stands (:class:`ClockMap`); None for another slew model."""
        if not isinstance(self._slew, RateLimitedSlew):
            return None
        return ClockMap(
            self._base_anchor,
            self._local_anchor,
            self._local_frac,
            self._frequency_ppb,
            self._pending_ns,
            self._slew.rate_ppm,
            self._leap_at,
            self._leap_step,
        )

    def watch(self, callback: Callable[[ClockMap | None], object]) -> None:
        """Call ``callback`` with :meth:`clock_map` now and after every change of the clock (until :meth:`unwatch`)."""
        self._watchers.append(callback)
        callback(self.clock_map())

    def unwatch(self, callback: Callable[[ClockMap | None], object]) -> None:
        if callback in self._watchers:
            self._watchers.remove(callback)

    def _changed(self) -> None:
        if self._watchers:
            state = self.clock_map()
            for callback in list(self._watchers):
                callback(state)

    def _state(self, base: int) -> tuple[float, float]:
        """Return (reading minus ``_local_anchor``, pending) at base time ``base``; changes nothing."""
        elapsed = base - self._base_anchor
        done = self._slew.applied(self._pending_ns, elapsed)
        delta = self._local_frac + elapsed + elapsed * self._frequency_ppb * 1e-9 + done
        return delta, self._pending_ns - done

    def _reanchor(self) -> None:
        base = self._read()
        delta, self._pending_ns = self._state(base)
        whole = math.floor(delta)
        self._local_anchor += whole
        self._local_frac = delta - whole
        self._base_anchor = base
        if self._leap_at is not None and self._local_anchor + round(self._local_frac) >= self._leap_at:
            self._local_anchor += self._leap_step  # the leap is behind us: make it part of the anchor
            self._leap_at = None

    def _leaped(self, reading: int) -> int:
        """``reading`` (before any pending leap) with the armed leap applied if it has been reached."""
        if self._leap_at is not None and reading >= self._leap_at:
            return reading + self._leap_step
        return reading

    @property
    def leap(self) -> int:
        """The leap indicator last set; it stays set after the leap has happened until set to 0."""
        return self._leap

    def leap_pending(self) -> bool:
        """True while an armed leap second has not happened yet (reads the clock)."""
        return self._leap_at is not None and self._local_anchor + round(self._state(self._read())[0]) < self._leap_at

    @property
    def sync_status(self) -> SyncStatus:
        """The sync status last set."""
        return self._sync

    def now_ns(self) -> int:
        """Read the corrected clock, POSIX ns (a leap second that has happened included)."""
        return self._leaped(self._local_anchor + round(self._state(self._read())[0]))

    def at_base_ns(self, base_ns: int) -> int:
        """What this clock read (or will read) when the base clock read ``base_ns``.

        Maps kernel timestamps (taken on the base clock, e.g. a socket's
        receive time) onto this clock without reading anything.
        """
        return self._leaped(self._local_anchor + round(self._state(base_ns)[0]))

    def frequency_ppb(self) -> float:
        """The frequency correction relative to the base, ppb (+: faster)."""
        return self._frequency_ppb

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        """Set the frequency correction relative to the base, ppb (+: faster), clamped to +-``max_slew_rate_ppb``."""
        frequency = clamp_frequency(frequency_ppb, self._max_slew_ppb)
        self._reanchor()
        self._frequency_ppb = frequency
        self._changed()

    def accrue_offset_ns(self, offset_ns: int) -> None:
        """Add ``offset_ns`` to the pending slew (+: forwards)."""
        self._reanchor()
        self._pending_ns += offset_ns
        self._changed()

    def offset_correction_ns(self) -> int:
        """The slew still pending, ns (+: the clock will still move forwards)."""
        return round(self._state(self._read())[1])

    def step_ns(self, offset_ns: int) -> None:
        """Jump by ``offset_ns`` (+: forwards); the pending slew is kept."""
        self._reanchor()
        self._local_anchor += offset_ns
        self._changed()

    def set_leap(self, leap: int) -> None:
        """Arm (1 insert, 2 delete) a leap second at the next midnight UTC of this clock, or disarm (0).

        Setting the value already set changes nothing (an executed leap is
        not repeated until the clock is disarmed and armed again); ValueError
        for anything but 0, 1, 2.
        """
        if check_leap(leap) == self._leap:
            return
        self._reanchor()
        self._leap = leap
        self._leap_at, self._leap_step = arm_leap(leap, self._local_anchor + round(self._local_frac))
        self._changed()

    def set_sync_status(self, synchronised: bool, est_error_ns: int, max_error_ns: int) -> None:
        """Record the sync status and error estimates (ns)."""
        self._sync = SyncStatus(synchronised, est_error_ns, max_error_ns)
