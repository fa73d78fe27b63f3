"""Keeping time from the GPS: samples in, clock operations out, the system state to serve (pure).

The :class:`Timekeeper` joins three parts that know nothing of each other:
the GPS reference clock (:class:`~appliance.refclock.gps.GpsClock`: pulses
and fixes in, samples out), the discipline loop
(:class:`~appliance.clock.discipline.Discipline`: samples in, clock
operations out) and the clock behind :class:`~appliance.clock.base.Clock`
(kernel, soft or simulated). The caller passes pulses, fixes and the time;
nothing here reads a clock except through that interface.

What is served (the fallback chain):

1. GPS usable and the loop tracking: stratum 1, refid ``PPS`` while pulses
   are numbered, ``GPS`` on NMEA alone;
2. GPS lost: holdover at stratum 1 while the loop's estimated error stays
   under ``holdover_bound_ns`` (root dispersion grows with it, honestly);
3. then the local clock at its fudged stratum, when the config has one
   (``server 127.127.1.0``), else unsynchronised (leap 3, stratum 16).

Upstream NTP servers join this chain with selection (RFC 5905 section 11).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.clock.base import Clock, Step, apply
from appliance.clock.discipline import Discipline, Mode
from appliance.nmea.epoch import Fix
from appliance.ntp.packet import LEAP_NONE, refid_from_text
from appliance.refclock.gps import PPS_DISPERSION_NS, GpsClock
from appliance.refclock.local import LocalClock
from appliance.refclock.sample import Pulse, Sample
from appliance.sources.state import UNSYNCHRONISED, SystemState

#: Holdover keeps stratum 1 while the estimated error is below this (1 ms: an NTP client cannot tell).
DEFAULT_HOLDOVER_BOUND_NS = 1_000_000


@dataclass(slots=True)
class TimekeeperCounters:
    pps_samples: int = 0
    nmea_samples: int = 0
    clock_steps: int = 0


class Timekeeper:
    """GPS + discipline + clock, and the state they justify; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        gps: GpsClock,
        discipline: Discipline,
        *,
        precision: int,
        local: LocalClock | None = None,
        holdover_bound_ns: int = DEFAULT_HOLDOVER_BOUND_NS,
    ) -> None:
        self.clock = clock
        self.gps = gps
        self.discipline = discipline
        self.precision = precision
        self.local = local
        self.holdover_bound_ns = holdover_bound_ns
        self.counters = TimekeeperCounters()
        self._last_sample: Sample | None = None
        self._last_pps_ns: int | None = None

    # -- input: the refclock drivers call these --------------------------------

    def on_pulse(self, pulse: Pulse) -> None:
        now = self.clock.now_ns()
        trusted = self.discipline.mode(now) is not Mode.UNSYNCHRONISED and (
            self.discipline.error_estimate_ns(now) < 100_000_000
        )
        sample = self.gps.on_pulse(pulse, clock_within_0_4s=trusted)
        if sample is not None:
            self._use(sample)

    def on_fix(self, fix: Fix) -> None:
        for sample in self.gps.on_fix(fix):
            self._use(sample)

    def tick(self) -> None:
        """Run about once a second: ends slews and grows the error estimate when samples stop."""
        apply(self.clock, self.discipline.tick(self.clock.now_ns()))

    def _use(self, sample: Sample) -> None:
        pps = sample.dispersion_ns <= PPS_DISPERSION_NS
        if not pps and self._pps_recent(sample.local_ns):
            return  # NMEA samples only while there are no numbered pulses
        if pps:
            self.counters.pps_samples += 1
            self._last_pps_ns = sample.local_ns
        else:
            self.counters.nmea_samples += 1
        ops = self.discipline.update(sample, self.clock.offset_correction_ns())
        steps = [op for op in ops if isinstance(op, Step)]
        self.counters.clock_steps += len(steps)
        apply(self.clock, ops)
        if steps:
            # the clock jumped: pulses and epochs in flight carry the old timescale
            self.gps.reset()
        self._last_sample = sample

    def _pps_recent(self, now_ns: int) -> bool:
        return self._last_pps_ns is not None and now_ns - self._last_pps_ns < 3_000_000_000

    # -- output ------------------------------------------------------------------

    def state(self, now_ns: int) -> SystemState:
        """The system state to serve at ``now_ns`` (clock time), following the fallback chain."""
        mode = self.discipline.mode(now_ns)
        error = self.discipline.error_estimate_ns(now_ns)
        status = self.gps.status(now_ns)
        last = self._last_sample
        if mode is not Mode.UNSYNCHRONISED and last is not None:
            live = mode is Mode.TRACKING and status.usable
            if live or error < self.holdover_bound_ns:
                refid = "PPS" if self._pps_recent(now_ns) else "GPS"
                return SystemState(
                    leap=LEAP_NONE,
                    stratum=1,
                    precision=self.precision,
                    root_delay_ns=0,
                    root_dispersion_ns=error + last.dispersion_ns,
                    refid=refid_from_text(refid),
                    reference_ns=last.reference_ns,
                )
        if self.local is not None:
            return self.local.state(now_ns, self.precision)
        return UNSYNCHRONISED
