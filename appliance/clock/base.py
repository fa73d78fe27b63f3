"""The clock interface: the operations a discipline may perform on a clock, with their signs.

This follows the shape of chrony's local-clock layer (``local.c`` over
``sys_linux.c`` / ``sys_null.c``): every backend offers the same few
operations, each with one written-down sign convention, so the discipline
can drive the kernel clock, a software clock or a simulated oscillator
alike.

Sign conventions (all times POSIX ns, :mod:`appliance.timebase`):

- *frequency* (ppb): the correction applied to the clock's oscillator.
  Positive makes the clock run faster. The kernel's ``timex.freq`` has the
  same sign (in ppm * 2**16), and so does the ntpd drift file (in ppm).
  A clock accepts up to its ``maxslewrate`` (:func:`clamp_frequency`,
  83,333 ppm by default, as chrony): beyond the kernel's 500 ppm ``freq``
  the kernel backend moves ``tick`` as chrony does on Linux, so a phase
  error is slewed away through the frequency in seconds, never faster than
  ``maxslewrate``.
- *accrue offset* (ns): slew. A positive argument moves the clock forwards,
  gradually; the amount is added to whatever is still pending.
- *offset correction* (ns): the part of the accrued offsets not applied yet;
  positive means the clock will still move forwards by that much. A reading
  plus this value is chrony's "cooked" time, the time the clock will show
  once the slew has finished.
- *step* (ns): a positive argument makes the clock jump forwards at once.
  Pending slews are unaffected.
- *leap*: the NTP leap indicator (RFC 5905 section 7.3): 0 none, 1 insert a
  second at the end of the UTC day, 2 delete one. "Unsynchronised" (3) is
  not a leap: it is :meth:`Clock.set_sync_status`. Every backend executes an
  armed leap the way the Linux kernel does (:func:`leap_schedule`): to insert,
  at the next midnight UTC the clock steps back one second, so POSIX time
  repeats 23:59:59 (that repeat is 23:59:60); to delete, when the clock
  reaches 23:59:59 it steps forwards one second to 00:00:00. A leap happens
  once per arming: afterwards the clock keeps the indicator (the kernel's
  ``TIME_WAIT``) until it is set to 0, which the daemon does once the leap
  has passed (:func:`appliance.leap.leap_to_serve` returns 0 from then on).
  Setting the value already set changes nothing, so the daemon may repeat it.
- *sync status*: the kernel's ``STA_UNSYNC`` with its ``esterror`` and
  ``maxerror`` (ns here, us in the kernel).

Besides the :class:`Clock` protocol, the module defines the operations as
frozen values (:class:`Step`, :class:`SetFrequency`, :class:`AccrueOffset`,
:class:`SetLeap`, :class:`SetSyncStatus`): the discipline is pure and
returns them; :func:`apply` performs them on a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE
from appliance.timebase import NS_PER_S

#: The largest frequency *estimate* (what a drift file holds and a discipline believes the
#: oscillator needs), in ppb: the kernel's MAXFREQ, 500 ppm.
MAX_FREQUENCY_PPB = 500_000.0

#: The default ``maxslewrate`` (chrony's, 83,333 ppm = 1/12), in ppb: the largest frequency
#: correction a clock applies while it slews a phase error away.
DEFAULT_MAX_SLEW_RATE_PPB = 1e9 / 12

#: The largest ``maxslewrate`` any backend accepts, in ppb: the kernel's ``tick`` may move
#: +-10 % (9,000..11,000 us per 10 ms), on top of ``freq``'s +-500 ppm.
MAX_SLEW_RATE_PPB = 100_000_000.0

#: The leap indicator values a clock accepts (RFC 5905 "LI" without the alarm value 3).
LEAP_VALUES = (LEAP_NONE, LEAP_INSERT, LEAP_DELETE)


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The kernel-style synchronisation status: ``STA_UNSYNC`` cleared when ``synchronised``.

    ``est_error_ns`` is the estimated (1-sigma) error of the clock,
    ``max_error_ns`` a bound on it; both ns, non-negative.
    """

    synchronised: bool = False
    est_error_ns: int = 0
    max_error_ns: int = 0

    def __post_init__(self) -> None:
        if self.est_error_ns < 0 or self.max_error_ns < 0:
            raise ValueError(f"negative error in {self!r}")


UNSYNCHRONISED = SyncStatus()


@runtime_checkable
class Clock(Protocol):
    """A disciplinable clock. See the module docstring for the sign conventions."""

    def now_ns(self) -> int:
        """Read the clock: POSIX ns (the scale of ``CLOCK_REALTIME``)."""
        ...

    def frequency_ppb(self) -> float:
        """The frequency correction in effect, ppb; positive means the clock runs faster."""
        ...

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        """Set the frequency correction, ppb (positive: faster), clamped to +- the clock's ``maxslewrate``."""
        ...

    def accrue_offset_ns(self, offset_ns: int) -> None:
        """Slew: add ``offset_ns`` to the pending correction; positive moves the clock forwards gradually."""
        ...

    def offset_correction_ns(self) -> int:
        """The part of accrued offsets not applied yet, ns; positive: the clock will still move forwards."""
        ...

    def step_ns(self, offset_ns: int) -> None:
        """Jump the clock by ``offset_ns`` now; positive jumps forwards. Pending slews stay pending."""
        ...

    def set_leap(self, leap: int) -> None:
        """Arm a leap second: 0 none (disarm), 1 insert at the end of the UTC day, 2 delete; ValueError otherwise.

        The leap happens at the next midnight UTC of the clock's own reading
        (see the module docstring); repeating the current value changes nothing.
        """
        ...

    def set_sync_status(self, synchronised: bool, est_error_ns: int, max_error_ns: int) -> None:
        """Tell the clock whether it is synchronised (``STA_UNSYNC``) and its estimated/maximum error, ns."""
        ...


def check_leap(leap: int) -> int:
    """Return ``leap`` if it is a value :meth:`Clock.set_leap` accepts, else raise ValueError."""
    if leap not in LEAP_VALUES:
        raise ValueError(f"leap indicator must be 0 (none), 1 (insert) or 2 (delete), not {leap!r}")
    return leap


#: One UTC day (86400 s), ns.
DAY_NS = 86_400 * NS_PER_S


def leap_schedule(reading_ns: int, leap: int) -> tuple[int, int]:
    """When and how an armed leap moves a clock that reads ``reading_ns`` now: (threshold_ns, step_ns).

    From the moment the clock's own (pre-leap) reading reaches ``threshold_ns``
    it shows ``step_ns`` more, as Linux's ``second_overflow()`` does: insert
    (1): threshold the next midnight UTC, step -1 s (23:59:59 is shown twice);
    delete (2): threshold the next 23:59:59 UTC that is still ahead, step
    +1 s (23:59:59 never shows). ValueError for 0 or anything else.
    """
    if check_leap(leap) == LEAP_NONE:
        raise ValueError("no leap second is armed")
    midnight = (reading_ns // DAY_NS + 1) * DAY_NS
    if leap == LEAP_INSERT:
        return midnight, -NS_PER_S
    threshold = midnight - NS_PER_S
    if reading_ns >= threshold:
        threshold += DAY_NS
    return threshold, NS_PER_S


def arm_leap(leap: int, reading_ns: int) -> tuple[int | None, int]:
    """What a software clock keeps for ``set_leap(leap)``: ``(threshold, step)`` as :func:`leap_schedule`
    says, or ``(None, 0)`` for disarmed (0). ValueError for anything but 0, 1, 2."""
    if check_leap(leap) == LEAP_NONE:
        return None, 0
    return leap_schedule(reading_ns, leap)


def clamp_frequency(frequency_ppb: float, max_slew_rate_ppb: float = DEFAULT_MAX_SLEW_RATE_PPB) -> float:
    """Return ``frequency_ppb`` limited to +-``max_slew_rate_ppb``; ValueError for NaN or infinity."""
    if not math.isfinite(frequency_ppb):
        raise ValueError(f"frequency must be finite, not {frequency_ppb!r}")
    return max(-max_slew_rate_ppb, min(max_slew_rate_ppb, frequency_ppb))


def check_max_slew_rate(max_slew_rate_ppb: float) -> float:
    """Return ``max_slew_rate_ppb`` if it is in [500 ppm, :data:`MAX_SLEW_RATE_PPB`], else raise ValueError."""
    if not MAX_FREQUENCY_PPB <= max_slew_rate_ppb <= MAX_SLEW_RATE_PPB:
        raise ValueError(
            f"maxslewrate must be within {MAX_FREQUENCY_PPB / 1000:g}..{MAX_SLEW_RATE_PPB / 1000:g} ppm,"
            f" not {max_slew_rate_ppb / 1000:g}"
        )
    return max_slew_rate_ppb


# --- the operations as values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """Jump the clock by ``offset_ns`` (positive: forwards)."""

    offset_ns: int


@dataclass(frozen=True, slots=True)
class SetFrequency:
    """Set the frequency correction to ``frequency_ppb`` (absolute; positive: faster)."""

    frequency_ppb: float


@dataclass(frozen=True, slots=True)
class AccrueOffset:
    """Slew the clock by ``offset_ns`` (positive: forwards, gradually)."""

    offset_ns: int


@dataclass(frozen=True, slots=True)
class SetLeap:
    """Arm (1 insert, 2 delete) or disarm (0) a leap second."""

    leap: int


@dataclass(frozen=True, slots=True)
class SetSyncStatus:
    """Set ``STA_UNSYNC`` and the error estimates."""

    status: SyncStatus


ClockOp = Step | SetFrequency | AccrueOffset | SetLeap | SetSyncStatus


def apply(clock: Clock, ops: Iterable[ClockOp]) -> None:
    """Perform ``ops`` on ``clock`` in order."""
    for op in ops:
        match op:
            case Step(offset_ns=offset):
                clock.step_ns(offset)
            case SetFrequency(frequency_ppb=frequency):
                clock.set_frequency_ppb(frequency)
            case AccrueOffset(offset_ns=offset):
                clock.accrue_offset_ns(offset)
            case SetLeap(leap=leap):
                clock.set_leap(leap)
            case SetSyncStatus(status=status):
                clock.set_sync_status(status.synchronised, status.est_error_ns, status.max_error_ns)
