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
"""

from __future__ import annotations

import math
from collections.abc import Callable

from appliance.clock.base import SyncStatus, check_leap, clamp_frequency
from appliance.clock.slew import RateLimitedSlew, SlewModel


class SoftClock:
    """An unprivileged :class:`~appliance.clock.base.Clock` over ``read_ns`` (POSIX ns).

    >>> base = [1_000_000_000]
    >>> clock = SoftClock(lambda: base[0])
    >>> clock.step_ns(5)
    >>> clock.now_ns()
    1000000005
    """

    def __init__(self, read_ns: Callable[[], int], *, slew: SlewModel | None = None) -> None:
        self._read = read_ns
        self._slew: SlewModel = slew if slew is not None else RateLimitedSlew()
        self._base_anchor = read_ns()
        # the reading at the anchor is _local_anchor + _local_frac: an int (POSIX ns do not
        # fit a float to the nanosecond) plus the sub-ns remainder of the corrections
        self._local_anchor = self._base_anchor
        self._local_frac = 0.0
        self._frequency_ppb = 0.0
        self._pending_ns = 0.0  # still to slew at the anchor
        self._leap = 0
        self._sync = SyncStatus()

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

    @property
    def leap(self) -> int:
        """The leap indicator last set (recorded only; no leap is executed)."""
        return self._leap

    @property
    def sync_status(self) -> SyncStatus:
        """The sync status last set."""
        return self._sync

    def now_ns(self) -> int:
        """Read the corrected clock, POSIX ns."""
        return self._local_anchor + round(self._state(self._read())[0])

    def at_base_ns(self, base_ns: int) -> int:
        """What this clock read (or will read) when the base clock read ``base_ns``.

        Maps kernel timestamps (taken on the base clock, e.g. a socket's
        receive time) onto this clock without reading anything.
        """
        return self._local_anchor + round(self._state(base_ns)[0])

    def frequency_ppb(self) -> float:
        """The frequency correction relative to the base, ppb (+: faster)."""
        return self._frequency_ppb

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        """Set the frequency correction relative to the base, ppb (+: faster), clamped to +-500 ppm."""
        frequency = clamp_frequency(frequency_ppb)
        self._reanchor()
        self._frequency_ppb = frequency

    def accrue_offset_ns(self, offset_ns: int) -> None:
        """Add ``offset_ns`` to the pending slew (+: forwards)."""
        self._reanchor()
        self._pending_ns += offset_ns

    def offset_correction_ns(self) -> int:
        """The slew still pending, ns (+: the clock will still move forwards)."""
        return round(self._state(self._read())[1])

    def step_ns(self, offset_ns: int) -> None:
        """Jump by ``offset_ns`` (+: forwards); the pending slew is kept."""
        self._reanchor()
        self._local_anchor += offset_ns

    def set_leap(self, leap: int) -> None:
        """Record the leap indicator (0, 1 insert, 2 delete); ValueError for anything else."""
        self._leap = check_leap(leap)

    def set_sync_status(self, synchronised: bool, est_error_ns: int, max_error_ns: int) -> None:
        """Record the sync status and error estimates (ns)."""
        self._sync = SyncStatus(synchronised, est_error_ns, max_error_ns)
