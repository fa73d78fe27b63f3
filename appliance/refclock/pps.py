"""PPS pulse checks: which edges handed up by a PPS backend are believable seconds. Pure.

A PPS backend (:mod:`appliance.io.pps`, :mod:`appliance.io.gpio`, the fake in
:mod:`appliance.fakes.pps`) hands up :class:`~appliance.refclock.sample.Pulse`
values: a local timestamp and, for the kernel PPS API (RFC 2783), the
kernel's sequence number. Before a pulse is paired with an NMEA second it must
look like a second boundary. :class:`PulseCheck` decides, one pulse at a time,
and counts what it refuses (:class:`PulseCounters`). The rules:

- **duplicate**: the same sequence number as the last pulse seen (the same
  kernel event fetched twice), or, without sequence numbers, the same
  timestamp. Refused, and it changes nothing.
- **out of order**: a sequence number older than the last one (compared
  modulo 2**32, as the kernel's ``__u32`` wraps), or a timestamp not later
  than the last pulse's (an event delivered late, or the local clock stepped
  backwards). Refused. It still becomes the "last pulse", so that the next
  pulse is judged against it: a device that was reopened (sequence back to
  1) or a clock step costs one pulse, not all of them.
- **interval**: the time since the reference must be within
  ``tolerance_ns`` of a whole number ``N >= 1`` of seconds. The default
  tolerance is 200 ms: far wider than any PPS jitter (microseconds from the
  kernel, a millisecond or so from Python-timestamped GPIO) and than the
  drift of an undisciplined clock over the longest gap checked (500 ppm over
  64 s is 32 ms), and far narrower than the half second that would make
  ``N`` ambiguous. A gap of ``N`` seconds is no error: the ``N - 1`` missing
  pulses are counted ``missed_seconds`` and the pulse is accepted.
- the **reference** is either the last pulse seen (accepted or not) or the
  last one accepted; passing against either is enough. So a glitch between
  two good pulses costs only the glitch, and a glitch that happened to come
  first is outvoted by the next two good pulses.
- **held**: the first pulse, and any pulse more than ``max_gap_ns`` after the
  last one, cannot be checked (nothing to compare it with, or the local clock
  may have drifted too far). It is held as the new reference and not
  accepted: every accepted pulse was checked against another one.

After the caller steps the local clock it calls :meth:`PulseCheck.clock_stepped`
with the step: the references move with the clock, so the next pulse is
checked as before (:meth:`PulseCheck.reset`, for a device reopened, holds it
instead).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

from appliance.refclock.sample import Pulse
from appliance.timebase import NS_PER_S

#: Default allowance around a whole number of seconds between pulses (ns).
DEFAULT_TOLERANCE_NS = 200_000_000
#: Default longest gap still checked; beyond it the pulse is held (ns).
DEFAULT_MAX_GAP_NS = 64 * NS_PER_S
_SEQ_MOD = 1 << 32


class Verdict(enum.Enum):
    """What :meth:`PulseCheck.check` decided about one pulse."""

    ACCEPTED = "accepted"
    HELD = "held"  # no reference to check against: kept as the reference, not accepted
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    BAD_INTERVAL = "bad_interval"


@dataclass(frozen=True, slots=True)
class PulseCounters:
    """A snapshot of one checker's counts (all start at 0).

    ``received == accepted + held + duplicate + out_of_order + bad_interval``.
    """

    #: Pulses handed to :meth:`PulseCheck.check`.
    received: int = 0
    accepted: int = 0
    #: First pulses and pulses after a long gap or a reset (kept as the reference).
    held: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    #: Pulses not within the tolerance of a whole number of seconds of the reference.
    bad_interval: int = 0
    #: Seconds without a pulse inside accepted gaps (a 3 s gap adds 2).
    missed_seconds: int = 0


_COUNTER_NAMES = tuple(f.name for f in fields(PulseCounters))


@dataclass(frozen=True, slots=True)
class PulseCheckConfig:
    """The checker's limits, in ns."""

    tolerance_ns: int = DEFAULT_TOLERANCE_NS
    max_gap_ns: int = DEFAULT_MAX_GAP_NS

    def __post_init__(self) -> None:
        if not 0 < self.tolerance_ns < NS_PER_S // 2:
            raise ValueError("tolerance must be between 0 and 0.5 s (exclusive)")
        if self.max_gap_ns < NS_PER_S:
            raise ValueError("max_gap must be at least 1 s")


class PulseCheck:
    """Checks successive pulses of one PPS source; see the module docstring.

    >>> c = PulseCheck()
    >>> [c.check(Pulse(t, s)).value for t, s in [(0, 1), (1_000_000_100, 2), (1_400_000_000, 3), (3_000_000_050, 4)]]
    ['held', 'accepted', 'bad_interval', 'accepted']
    >>> c.counters.missed_seconds
    1
    """

    __slots__ = ("_config", "_counts", "_last", "_anchor")

    def __init__(self, config: PulseCheckConfig | None = None) -> None:
        self._config = config if config is not None else PulseCheckConfig()
        self._counts: dict[str, int] = dict.fromkeys(_COUNTER_NAMES, 0)
        self._last: Pulse | None = None  # the last pulse seen that was not a duplicate
        self._anchor: Pulse | None = None  # the last pulse accepted or held

    @property
    def config(self) -> PulseCheckConfig:
        return self._config

    @property
    def counters(self) -> PulseCounters:
        """The counts so far (a frozen snapshot)."""
        return PulseCounters(**self._counts)

    @property
    def last_accepted(self) -> Pulse | None:
        """The reference pulse: the last one accepted or held, or None."""
        return self._anchor

    def reset(self) -> None:
        """Forget the references (after a clock step, a device reopen): the next pulse is held."""
        self._last = None
        self._anchor = None

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate the references on its new scale."""
        same = self._last is self._anchor  # one pulse as both references stays one
        if self._last is not None:
            self._last = replace(self._last, local_ns=self._last.local_ns + step_ns)
        if same:
            self._anchor = self._last
        elif self._anchor is not None:
            self._anchor = replace(self._anchor, local_ns=self._anchor.local_ns + step_ns)

    def check(self, pulse: Pulse) -> Verdict:
        """Judge ``pulse`` against the pulses before it; count and return the verdict."""
        self._counts["received"] += 1
        verdict = self._judge(pulse)
        self._counts[verdict.value] += 1
        return verdict

    def _judge(self, pulse: Pulse) -> Verdict:
        last = self._last
        if last is None:
            return self._hold(pulse)
        if _same_event(pulse, last):
            return Verdict.DUPLICATE
        self._last = pulse
        if _older(pulse, last):
            return Verdict.OUT_OF_ORDER
        gap = pulse.local_ns - last.local_ns
        if gap > self._config.max_gap_ns:
            return self._hold(pulse)
        n = self._whole_seconds(gap)
        anchor = self._anchor
        if n is None and anchor is not None and anchor is not last and anchor.local_ns < pulse.local_ns:
            n = self._whole_seconds(pulse.local_ns - anchor.local_ns)
        if n is None:
            return Verdict.BAD_INTERVAL
        self._counts["missed_seconds"] += n - 1
        self._anchor = pulse
        return Verdict.ACCEPTED

    def _hold(self, pulse: Pulse) -> Verdict:
        self._last = self._anchor = pulse
        return Verdict.HELD

    def _whole_seconds(self, interval_ns: int) -> int | None:
        """Return N when ``interval_ns`` is N >= 1 seconds within the tolerance (and N s <= max gap)."""
        n = (interval_ns + NS_PER_S // 2) // NS_PER_S
        if n < 1 or n * NS_PER_S > self._config.max_gap_ns + self._config.tolerance_ns:
            return None
        if abs(interval_ns - n * NS_PER_S) > self._config.tolerance_ns:
            return None
        return n


def _same_event(a: Pulse, b: Pulse) -> bool:
    if a.sequence is not None and b.sequence is not None:
        return a.sequence == b.sequence
    return a.local_ns == b.local_ns


def _older(pulse: Pulse, last: Pulse) -> bool:
    """True when ``pulse`` comes before ``last``: by sequence (mod 2**32) or by time."""
    if pulse.sequence is not None and last.sequence is not None:
        if (pulse.sequence - last.sequence) % _SEQ_MOD >= _SEQ_MOD // 2:
            return True
    return pulse.local_ns <= last.local_ns
