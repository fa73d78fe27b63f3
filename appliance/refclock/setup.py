"""Which GPS receiver the config describes, in any of the three spellings (pure).

- NTPsec: ``refclock nmea unit 0 path /dev/serial0 baud 9600 time2 0.35`` and
  ``refclock pps unit 0 path /dev/pps0 [time1 S]``;
- ntpd: ``server 127.127.20.u mode M`` (NMEA on ``/dev/gpsU``; the baud rate
  in mode bits 4-6: 0 4800, 1 9600, 2 19200, 3 38400, 4 57600, 5 115200) with
  ``fudge 127.127.20.u time2 S``, and ``server 127.127.22.u`` (PPS on
  ``/dev/ppsU``) or fudge ``flag1 1`` on the NMEA clock (PPS on ``/dev/gpsppsU``);
- ours: ``refclock nmea ... ppspath /dev/pps0`` or ``ppspath gpio:4`` (a GPIO
  line through libgpiod), ``baud auto`` to detect the rate.

``time2`` (NMEA delay) is only where calibration starts; ``time1`` shifts the
pulse. :func:`gps_setup` returns None when no GPS is configured.

:func:`device_warnings` says, with the config line, which of the devices the
daemon would open (serial port, PPS device, GPIO chip) is missing or not a
character device; the caller passes the ``stat`` to ask with (``os.stat``
at the edge, a table in tests), so this module stays pure.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass

from appliance.config.model import Config, ConfigWarning, Location
from appliance.refclock.gps import Convention

NMEA_DRIVER = 20
PPS_DRIVER = 22
_MODE_BAUDS = {0: 4800, 1: 9600, 2: 19200, 3: 38400, 4: 57600, 5: 115200}
#: The GPIO chip whose lines ``ppspath gpio:N`` names (the Pi's 40-pin header; appliance.io.gpio opens it).
GPIO_CHIP = "/dev/gpiochip0"
#: ``st_mode`` of a path (following links); raises OSError when there is nothing there.
StatMode = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class GpsSetup:
    """One GPS receiver: serial port and rate, PPS source, and the pairing settings."""

    serial_path: str
    baud: int
    location: Location
    pps_path: str | None = None  # /dev/ppsN, or gpio:N
    pps_location: Location | None = None  # the line that names the PPS source
    nmea_delay_ns: int | None = None
    pps_offset_ns: int = 0
    convention: Convention = Convention.CURRENT
    autobaud: bool = False
    prefer: bool = False


def gps_setup(config: Config) -> GpsSetup | None:
    """The configured GPS receiver, or None."""
    for r in config.refclocks:
        if r.driver == "nmea":
            opts = dict(r.options)
            pps = opts.get("ppspath")
            pps_at = r.location if pps is not None else None
            if pps is None:
                line = next((p for p in config.refclocks if p.driver == "pps"), None)
                if line is not None:
                    pps, pps_at = _pps_path(line.options, line.unit), line.location
            pps_offset = next((p.time1_ns for p in config.refclocks if p.driver == "pps" and p.time1_ns), None)
            baud = opts.get("baud", "9600")
            return GpsSetup(
                serial_path=opts.get("path", f"/dev/gps{r.unit}"),
                baud=int(baud) if baud.isdigit() else 9600,
                location=r.location,
                pps_path=pps,
                pps_location=pps_at,
                nmea_delay_ns=r.time2_ns,
                pps_offset_ns=pps_offset or r.time1_ns or 0,
                autobaud=baud.lower() == "auto",
                prefer=r.prefer,
            )
    for s in config.servers:
        rc = s.refclock
        if rc is None or rc[0] != NMEA_DRIVER:
            continue
        unit = rc[1]
        fudge = config.fudge_for(s.host)
        flags = dict(fudge.flags) if fudge else {}
        pps = None
        pps_at = None
        if flags.get(1) and fudge is not None:
            pps, pps_at = f"/dev/gpspps{unit}", fudge.location
        for other in config.servers:
            orc = other.refclock
            if orc is not None and orc[0] == PPS_DRIVER:
                pps, pps_at = f"/dev/pps{orc[1]}", other.location
        mode = s.mode or 0
        return GpsSetup(
            serial_path=f"/dev/gps{unit}",
            baud=_MODE_BAUDS.get((mode >> 4) & 7, 4800),
            location=s.location,
            pps_path=pps,
            pps_location=pps_at,
            nmea_delay_ns=fudge.time2_ns if fudge else None,
            pps_offset_ns=(fudge.time1_ns or 0) if fudge else 0,
            prefer=s.prefer,
        )
    return None


def setup_warnings(config: Config) -> list[ConfigWarning]:
    """What is wrong with the GPS lines as a whole, though each line parsed: today one case.

    An NMEA receiver with neither PPS nor ``time2`` can never give the time:
    without pulses the NMEA-to-PPS offset cannot be measured, and only
    ``time2`` (ntpd's fudge, NTPsec's option) says it.
    """
    setup = gps_setup(config)
    if setup is None or setup.pps_path is not None or setup.nmea_delay_ns is not None:
        return []
    return [
        ConfigWarning(
            setup.location,
            "NMEA receiver without PPS and without time2: its sentences cannot be timed, so it gives no time; "
            "add the receiver's NMEA offset ('time2 0.5' for 0.5 s) or a PPS source",
        )
    ]


@dataclass(frozen=True, slots=True)
class Device:
    """A device file the daemon opens for the GPS: ``what`` it is, its path, the config line naming it."""

    what: str
    path: str
    location: Location


def gps_devices(config: Config) -> tuple[Device, ...]:
    """The device files the configured GPS needs: serial port, then the PPS device or the GPIO chip."""
    setup = gps_setup(config)
    if setup is None:
        return ()
    found = [Device("serial port", setup.serial_path, setup.location)]
    if setup.pps_path is not None:
        at = setup.pps_location or setup.location
        if setup.pps_path.startswith("gpio:"):
            found.append(Device("GPIO chip", GPIO_CHIP, at))
        else:
            found.append(Device("PPS device", setup.pps_path, at))
    return tuple(found)


def device_warnings(config: Config, stat_mode: StatMode) -> list[ConfigWarning]:
    """A warning, with its config line, for each GPS device that is missing or not a character device.

    ``stat_mode(path)`` gives the path's ``st_mode`` (links followed) or
    raises OSError. A warning, not an error: a USB receiver may be plugged
    in later, and the serial driver opens it when it appears.
    """
    out = []
    for d in gps_devices(config):
        try:
            mode = stat_mode(d.path)
        except FileNotFoundError:
            out.append(ConfigWarning(d.location, f"{d.what} {d.path} does not exist"))
            continue
        except OSError as e:
            out.append(ConfigWarning(d.location, f"{d.what} {d.path} cannot be checked: {e.strerror or e}"))
            continue
        if not stat.S_ISCHR(mode):
            out.append(ConfigWarning(d.location, f"{d.what} {d.path} is not a character device"))
    return out


def _pps_path(options: tuple[tuple[str, str], ...], unit: int) -> str:
    return dict(options).get("path", f"/dev/pps{unit}")
