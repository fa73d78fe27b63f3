"""The reference clock driver interface: open / poll / close, handing up samples and pulses (pure).

After chrony's ``refclock.c``: a driver knows one kind of device and nothing
else. It does not filter, select, number pulses, apply ``time1``/``time2``
or know its stratum; the generic refclock source
(:mod:`appliance.refclock.source`) does all that, the same way for every
driver. A driver is three operations:

- ``open()``: attach to the device (a shared-memory segment, a socket, a
  ``/dev/pps`` handle). An error is an :class:`OSError` with a message that
  names the device; the caller logs it and may try again later.
- ``poll(now_ns)``: take what the device has now and return it as
  :class:`Readings` (possibly empty). ``now_ns`` is the served clock's
  reading at the call, passed in. Drivers that the device pushes data to (a
  socket) also have ``fileno()`` and read in ``poll`` when the event loop
  says the descriptor is readable (:class:`SelectableDriver`).
- ``close()``: let go of the device; ``open()`` may follow again.

Each driver keeps counters of what it dropped and why (``counters()``, a
name -> count mapping): bad input is dropped and counted, never raised.

:data:`DRIVERS` is the table of drivers stratum1 has, by NTPsec's name and
ntpd's type number (the ``t`` of ``127.127.t.u``), with what the generic
source needs to know of each: its default refid, its precision, and what
ntpd's ``time1`` and ``time2`` mean for it (they differ by driver: for
``shm`` ``time2`` is not an offset at all). Adding a driver is one module
in ``refclock/`` (the pure decoding), one in ``io/`` (the device), and one
line here.

>>> DRIVERS["shm"].ntpd_type, DRIVERS["shm"].refid
(28, 'SHM')
>>> driver_info(46).name
'gpsd'
>>> Readings().empty
True
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from appliance.refclock.sample import Pulse, Sample


@dataclass(frozen=True, slots=True)
class Readings:
    """What one ``poll`` handed up, in the order the device produced it."""

    samples: tuple[Sample, ...] = ()
    pulses: tuple[Pulse, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.samples and not self.pulses

    def __add__(self, other: Readings) -> Readings:
        return Readings(self.samples + other.samples, self.pulses + other.pulses)


@runtime_checkable
class Driver(Protocol):
    """A reference clock driver (see the module docstring)."""

    def open(self) -> None: ...

    def poll(self, now_ns: int) -> Readings: ...

    def close(self) -> None: ...

    def counters(self) -> Mapping[str, int]: ...


@runtime_checkable
class SelectableDriver(Driver, Protocol):
    """A driver fed by a descriptor: poll it when ``fileno()`` is readable (and on its poll timer)."""

    def fileno(self) -> int: ...


class Time2(enum.Enum):
    """What ntpd's ``fudge ... time2`` means for a driver."""

    SERIAL_OFFSET = "serial"  # an offset for TIME samples (the serial data); time1 is for pulses
    SAME_AS_TIME1 = "none"  # the driver has one kind of sample: time1 is its offset, time2 unused
    MAX_DELTA = "max_delta"  # shm: the largest |reference - local| believed, in seconds (with flag1)


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What the generic source needs to know of a driver (see :data:`DRIVERS`).

    ``precision`` is log2 seconds, as NTP states it; ``pulses`` says that the
    driver hands up bare :class:`Pulse` values that need a ``lock`` (or a
    synchronised system) to be numbered.
    """

    name: str
    ntpd_type: int
    refid: str
    precision: int
    time2: Time2
    pulses: bool = False
    description: str = ""


DRIVERS: Mapping[str, DriverInfo] = MappingProxyType(
    {
        "local": DriverInfo("local", 1, "LOCL", -20, Time2.SAME_AS_TIME1, description="the undisciplined local clock"),
        "nmea": DriverInfo("nmea", 20, "GPS", -9, Time2.SERIAL_OFFSET, description="NMEA receiver on a serial port"),
        "pps": DriverInfo("pps", 22, "PPS", -20, Time2.SAME_AS_TIME1, pulses=True, description="a bare PPS signal"),
        "shm": DriverInfo("shm", 28, "SHM", -20, Time2.MAX_DELTA, description="SysV shared memory NTP0..NTP3"),
        "gpsd": DriverInfo("gpsd", 46, "GPSD", -9, Time2.SERIAL_OFFSET, description="gpsd's JSON socket"),
    }
)


def driver_info(key: str | int) -> DriverInfo:
    """The driver named ``key`` (NTPsec name) or numbered ``key`` (ntpd type); KeyError names those that exist."""
    for info in DRIVERS.values():
        if key in (info.name, info.ntpd_type):
            return info
    known = ", ".join(f"{i.name} ({i.ntpd_type})" for i in DRIVERS.values())
    raise KeyError(f"no refclock driver {key!r}; stratum1 has {known}")


def offsets_ns(info: DriverInfo, time1_ns: int | None, time2_ns: int | None) -> tuple[int, int]:
    """ntpd's ``time1``/``time2`` for this driver as (offset for PULSE samples, offset for TIME samples), ns.

    Both are added to a sample's offset (reference minus local): positive
    when the local timestamps are taken late.

    >>> offsets_ns(DRIVERS["gpsd"], 1_000, 300_000_000)
    (1000, 300000000)
    >>> offsets_ns(DRIVERS["shm"], 1_000, 3600 * 10**9)
    (1000, 1000)
    """
    t1 = time1_ns or 0
    if info.time2 is Time2.SERIAL_OFFSET:
        return t1, time2_ns or 0
    return t1, t1
