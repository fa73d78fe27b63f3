"""What a reference clock driver hands up: samples and pulses (the refclock/sources boundary).

A driver knows nothing about selection or discipline. It produces:

- :class:`Sample`: "at local time ``local_ns`` the reference said it was
  ``reference_ns``" (both POSIX ns), with the reference's leap warning and
  the driver's own dispersion estimate. ``offset_ns`` is reference minus
  local: positive means the local clock is behind and must move forwards.
- :class:`Pulse`: a bare edge at local time ``local_ns`` that marks the start
  of *some* second. It carries no second number; :mod:`appliance.refclock`
  pairs it with the seconds an NMEA source numbers (chrony's ``lock``).

Times are local-clock readings taken as close to the event as the hardware
allows (kernel PPS timestamps, the arrival of a sentence's first byte).

A sample says what it is in :attr:`Sample.kind` (:class:`SampleKind`):
``TIME`` when the local time is when a message naming a second was taken
(NMEA, gpsd's TOFF and TPV, a shared-memory segment), ``PULSE`` when it is
the local time of a PPS edge that has been numbered. Nobody infers the kind
from the dispersion.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.ntp.packet import LEAP_NONE


class SampleKind(enum.Enum):
    """What a sample's local time marks."""

    TIME = "time"  # when a message that names a second was timestamped (serial data, SHM, TOFF)
    PULSE = "pulse"  # a numbered PPS edge


@dataclass(frozen=True, slots=True)
class Sample:
    """One comparison of the local clock against a reference (all times POSIX ns)."""

    local_ns: int
    reference_ns: int
    leap: int = LEAP_NONE
    dispersion_ns: int = 0
    kind: SampleKind = SampleKind.TIME

    @property
    def offset_ns(self) -> int:
        """Reference minus local in ns: positive when the local clock is behind."""
        return self.reference_ns - self.local_ns


@dataclass(frozen=True, slots=True)
class Pulse:
    """A PPS edge at local time ``local_ns`` (POSIX ns); ``sequence`` is the kernel's count, if any."""

    local_ns: int
    sequence: int | None = None
