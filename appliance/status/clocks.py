"""Each reference clock's own state for ntpq's ``cv`` (ntpd's per-clock ``refclockstat``), sans I/O.

ntpd answers READCLOCK from the asked clock's own record: its description, fudge times and flags, how many
polls it made, how many brought no answer, how much input it could not read. stratum1 does the same from
three places, joined here by the source's name (``NMEA(0)``, ``SHM(1)``, ``LOCAL(0)``):

- the configuration (:func:`clock_lines`, once per configuration): what the clock is, its ``time1``/``time2``
  and ``flag1``..``flag4`` as written on its ``refclock`` line or its ``fudge`` line;
- the clock's filter (:class:`~appliance.refclock.source.RefclockCounters`): polls, polls that ended
  without the samples for an update (ntpd's ``noreply``), samples refused as bad (``baddata``);
- the driver's own counts, where it keeps them (``badformat``): an NMEA receiver's sentences with a bad or
  missing checksum, cut short, too long or undecodable (:class:`~appliance.nmea.counters.NmeaCounters`),
  a shared-memory segment read in a mode it cannot be (``bad_mode``).

The GPS's fix, satellites and pulses (the snapshot's one :class:`~appliance.status.snapshot.GpsStatus`) are
the first NMEA receiver's: only that clock's ``cv`` shows them (``gps_name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.config.model import Config
from appliance.nmea.counters import NmeaCounters
from appliance.refclock.driver import DRIVERS
from appliance.refclock.setup import refclock_lines
from appliance.refclock.source import RefclockCounters
from appliance.status.snapshot import ClockStatus


@dataclass(frozen=True, slots=True)
class ClockLine:
    """What the configuration says of one clock: its name, what it is, ``time1``/``time2`` (ns) and flags."""

    name: str
    device: str
    time1_ns: int | None = None
    time2_ns: int | None = None
    flags: int = 0


def clock_lines(config: Config) -> tuple[ClockLine, ...]:
    """Every reference clock of ``config`` (the local clock's too), in the config's order."""
    said: dict[str, tuple[int | None, int | None, int]] = {}
    for r in config.refclocks:
        flags = _flags((int(k[4:]), v == "1") for k, v in r.options if k in ("flag1", "flag2", "flag3", "flag4"))
        said[_name(r.driver, r.unit)] = (r.time1_ns, r.time2_ns, flags)
    for s in config.servers:
        rc = s.refclock
        if rc is None:
            continue
        info = next((i for i in DRIVERS.values() if i.ntpd_type == rc[0]), None)
        if info is None:
            continue
        f = config.fudge_for(s.host)
        said[_name(info.name, rc[1])] = (f.time1_ns, f.time2_ns, _flags(f.flags)) if f else (None, None, 0)
    devices = {"LOCAL(0)": DRIVERS["local"].description}
    for line in refclock_lines(config):
        device = line.info.description
        if line.gps is not None:
            device += f" {line.gps.serial_path}"
            if line.gps.pps_path is not None:
                device += f" with PPS {line.gps.pps_path}"
        elif line.pps_path is not None:
            device += f" {line.pps_path}"
        elif line.device is not None:
            device += f" {line.device}"
        devices[line.name] = device
    out = []
    for name, device in devices.items():
        t1, t2, flags = said.get(name, (None, None, 0))
        out.append(ClockLine(name, device, t1, t2, flags))
    return tuple(out)


def clock_statuses(
    lines: tuple[ClockLine, ...],
    counters: Mapping[str, RefclockCounters],
    badformat: Mapping[str, int],
    gps_name: str | None = None,
) -> tuple[ClockStatus, ...]:
    """Each clock of ``lines`` with its filter's ``counters`` and its driver's ``badformat`` (by name; a clock
    absent from either has no such counts); ``gps_name`` the clock the GPS lines belong to."""
    named = {line.name for line in lines}
    # a clock no line names (the simulated receiver of --simulate): what its driver is
    extra = tuple(ClockLine(name, _description(name)) for name in counters if name not in named)
    out = []
    for line in lines + extra:
        c = counters.get(line.name)  # none for the local clock: it has no filter
        out.append(
            ClockStatus(
                name=line.name,
                device=line.device,
                time1_ns=line.time1_ns,
                time2_ns=line.time2_ns,
                flags=line.flags,
                polls=c.polls if c else None,
                noreply=c.too_few if c else None,
                baddata=c.future + c.stale + c.unsynchronised if c else None,
                badformat=badformat.get(line.name),
                gps=line.name == gps_name,
            )
        )
    return tuple(out)


def nmea_badformat(c: NmeaCounters) -> int:
    """An NMEA receiver's unreadable sentences: bad or missing checksum, cut short, too long, undecodable."""
    return c.bad_checksum + c.no_checksum + c.truncated + c.too_long + c.decode_error


def _description(name: str) -> str:
    info = DRIVERS.get(name.partition("(")[0].lower())
    return info.description if info is not None else name


def _name(driver: str, unit: int) -> str:
    return f"{driver.upper()}({unit})"


def _flags(flags: Iterable[tuple[int, bool]]) -> int:
    return sum(1 << (n - 1) for n, on in flags if on and 1 <= n <= 4)
