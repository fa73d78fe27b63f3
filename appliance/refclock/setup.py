"""Which reference clocks the config describes, in any of the three spellings (pure).

:func:`refclock_lines` turns every reference clock line but the local
clock's (:mod:`appliance.refclock.local` has that) into a
:class:`RefclockLine`: the driver (:data:`~appliance.refclock.driver.DRIVERS`),
the source's name as ntpq shows it (``NMEA(0)``, ``PPS(1)``, ``SHM(0)``,
``GPSD(0)``), the :class:`~appliance.refclock.source.RefclockSettings` the
line says (poll from ``minpoll``, stratum, refid, prefer, noselect,
``time1``/``time2`` as the driver reads them), the device options, and for
an NMEA receiver its :class:`GpsSetup`. :func:`refclock_warnings` names,
with file:line, each option the lines give that nothing acts on.

Pairing: an NMEA receiver with its own PPS (``ppspath``, ntpd's fudge
``flag1``) numbers those pulses itself. A ``pps`` line (``refclock pps``,
``server 127.127.22.u``) goes to the first NMEA receiver without one, as
ntpd's NMEA+ATOM pair has always been set up; with no such receiver it is
a source of its own, ntpd's ATOM: a bare PPS numbered by whatever the
system is synchronised to (a gpsd SHM segment, an upstream server). A
paired ``pps`` line's ``time1``, ``refid`` (of the pulse updates) and
``prefer`` act on the pair; one with ``noselect`` is never paired (its
pulses are not to be used: it stays its own source, not selected); its
``stratum`` and ``minpoll`` are warned about, the pair has the NMEA line's.

The rest of this docstring is about the NMEA receiver's spellings.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from appliance.config.model import Config, ConfigWarning, Location, Refclock, ServerLine
from appliance.nmea.stream import DATED_BITS, SENTENCE_BITS, SENTENCE_MASK
from appliance.refclock.driver import DRIVERS, DriverInfo, Time2, offsets_ns
from appliance.refclock.gps import Convention
from appliance.refclock.sample import SampleKind
from appliance.refclock.shm import DEFAULT_MAX_DELTA_NS, SHM_MODE_PRIVATE
from appliance.refclock.source import RefclockSettings
from appliance.timebase import NS_PER_S

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
    #: the refid of the updates made of pulses (a paired ``pps`` line's ``refid``; None: ``PPS``)
    pulse_refid: str | None = None
    #: ntpd's ``mode`` sentence bits, the sentences that time the seconds (1 RMC, 2 GGA, 4 GLL, 8 ZDA,
    #: 0x200 PUBX,04; 0: all)
    sentences: int = 0


def gps_setup(config: Config) -> GpsSetup | None:
    """The first NMEA receiver's setup, or None (what the boot files and unit devices are made for)."""
    for line in refclock_lines(config):
        if line.gps is not None:
            return line.gps
    return None


@dataclass(frozen=True, slots=True)
class _PpsLine:
    """A ``pps`` line that may pair with an NMEA receiver: its device, ``time1``, and what else it says."""

    path: str
    time1_ns: int
    location: Location
    said: _Said
    #: where its fudge is (ntpd's spelling: refid and stratum come from there), else the line itself
    fudge_at: Location


def _pps_lines(config: Config) -> list[_PpsLine]:
    """Every ``pps`` line, in either spelling: the NTPsec lines first, then ntpd's."""
    out = [
        _PpsLine(_pps_path(r.options, r.unit), r.time1_ns or 0, r.location, _Said.of_refclock(r), r.location)
        for r in config.refclocks
        if r.driver == "pps"
    ]
    for srv in config.servers:
        if srv.refclock is not None and srv.refclock[0] == PPS_DRIVER:
            fudge = config.fudge_for(srv.host)
            out.append(
                _PpsLine(
                    f"/dev/pps{srv.refclock[1]}",
                    (fudge.time1_ns or 0) if fudge else 0,
                    srv.location,
                    _Said.of_server(srv, config),
                    fudge.location if fudge else srv.location,
                )
            )
    return out


def _nmea_setups(config: Config) -> list[tuple[Location, GpsSetup, _PpsLine | None]]:
    """Each NMEA line's setup, and the ``pps`` line it took (if any).

    A ``pps`` line with ``noselect`` is never taken: its pulses are not to be
    used, so it stays a source of its own, shown and not selected, as ntpd's
    ATOM association with ``noselect`` is.
    """
    out: list[tuple[Location, GpsSetup, _PpsLine | None]] = []
    taken: set[Location] = set()
    pps_lines = _pps_lines(config)

    def free_pps() -> _PpsLine | None:
        for p in pps_lines:
            if p.location not in taken and not p.said.noselect:
                taken.add(p.location)
                return p
        return None

    for r in config.refclocks:
        if r.driver != "nmea":
            continue
        opts = dict(r.options)
        pps = opts.get("ppspath")
        pps_at = r.location if pps is not None else None
        pps_offset = r.time1_ns or 0
        if pps is None and opts.get("flag1") == "1":
            pps, pps_at = f"/dev/gpspps{r.unit}", r.location
        found = free_pps() if pps is None else None
        if found is not None:
            pps, pps_offset, pps_at = found.path, found.time1_ns or pps_offset, found.location
        baud = opts.get("baud")
        if baud is None and "mode" in opts:
            baud = str(_MODE_BAUDS.get((int(opts["mode"]) >> 4) & 7, 9600))
        baud = baud or "9600"
        setup = GpsSetup(
            serial_path=opts.get("path", f"/dev/gps{r.unit}"),
            baud=int(baud) if baud.isdigit() else 9600,
            location=r.location,
            pps_path=pps,
            pps_location=pps_at,
            nmea_delay_ns=r.time2_ns,
            pps_offset_ns=pps_offset,
            autobaud=baud.lower() == "auto",
            prefer=r.prefer or (found is not None and found.said.prefer),
            pulse_refid=found.said.refid if found is not None else None,
            sentences=int(opts["mode"]) & SENTENCE_MASK if "mode" in opts else 0,
        )
        out.append((r.location, setup, found))
    for s in config.servers:
        rc = s.refclock
        if rc is None or rc[0] != NMEA_DRIVER:
            continue
        unit = rc[1]
        fudge = config.fudge_for(s.host)
        flags = dict(fudge.flags) if fudge else {}
        pps = None
        pps_at = None
        pps_offset = (fudge.time1_ns or 0) if fudge else 0
        found = None
        if flags.get(1) and fudge is not None:
            pps, pps_at = f"/dev/gpspps{unit}", fudge.location
        else:
            found = free_pps()
            if found is not None:
                pps, pps_offset, pps_at = found.path, found.time1_ns or pps_offset, found.location
        mode = s.mode or 0
        setup = GpsSetup(
            serial_path=f"/dev/gps{unit}",
            baud=_MODE_BAUDS.get((mode >> 4) & 7, 4800),
            location=s.location,
            pps_path=pps,
            pps_location=pps_at,
            nmea_delay_ns=fudge.time2_ns if fudge else None,
            pps_offset_ns=pps_offset,
            prefer=s.prefer or (found is not None and found.said.prefer),
            pulse_refid=found.said.refid if found is not None else None,
            sentences=mode & SENTENCE_MASK,
        )
        out.append((s.location, setup, found))
    return out


def _pairing_warnings(config: Config) -> list[ConfigWarning]:
    """A ``pps`` line paired with an NMEA receiver is one source with it: what of the pps line cannot act.

    Its ``time1`` (the pulse offset), ``refid`` (the refid of the pulse
    updates), ``prefer`` (the pair is preferred) and ``noselect`` (never
    paired) act; its stratum and poll are the NMEA line's.
    """
    out = []
    for _, setup, pps in _nmea_setups(config):
        if pps is None:
            continue
        nmea_at = setup.location
        paired = f"the PPS is paired with the NMEA receiver at {nmea_at} into one source"
        if pps.said.stratum is not None:
            which = "this PPS line" if pps.fudge_at == pps.location else f"the PPS line at {pps.location}"
            out.append(
                ConfigWarning(
                    pps.fudge_at,
                    f"stratum for {which} has no effect: {paired}, whose stratum that line gives; ignored",
                )
            )
        if pps.said.minpoll is not None:
            out.append(
                ConfigWarning(
                    pps.location,
                    f"minpoll for this PPS line has no effect: {paired}, which polls as that line says; ignored",
                )
            )
    return out


def setup_warnings(config: Config) -> list[ConfigWarning]:
    """What is wrong with the GPS lines as a whole, though each line parsed: today one case.

    An NMEA receiver with neither PPS nor ``time2`` can never give the time:
    without pulses the NMEA-to-PPS offset cannot be measured, and only
    ``time2`` (ntpd's fudge, NTPsec's option) says it.
    """
    out = []
    for line in refclock_lines(config):
        setup = line.gps
        if setup is None or setup.pps_path is not None or setup.nmea_delay_ns is not None:
            continue
        out.append(
            ConfigWarning(
                setup.location,
                "NMEA receiver without PPS and without time2: its sentences cannot be timed, so it gives no time; "
                "add the receiver's NMEA offset ('time2 0.5' for 0.5 s) or a PPS source",
            )
        )
    return out + refclock_warnings(config) + _pairing_warnings(config)


@dataclass(frozen=True, slots=True)
class Device:
    """A device file the daemon opens for the GPS: ``what`` it is, its path, the config line naming it."""

    what: str
    path: str
    location: Location


def gps_devices(config: Config) -> tuple[Device, ...]:
    """The device files the configured refclocks need: serial ports, then PPS devices or the GPIO chip."""
    found = []
    for line in refclock_lines(config):
        setup = line.gps
        if setup is not None:
            found.append(Device("serial port", setup.serial_path, setup.location))
        pps = setup.pps_path if setup is not None else line.pps_path
        if pps is not None:
            at = (setup.pps_location or setup.location) if setup is not None else line.location
            if pps.startswith("gpio:"):
                found.append(Device("GPIO chip", GPIO_CHIP, at))
            else:
                found.append(Device("PPS device", pps, at))
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


# -- every refclock line as a source ------------------------------------------------------------

#: Default poll exponent of a refclock line without ``minpoll``: one update a second, as each pulse arrives.
DEFAULT_REFCLOCK_POLL = 0
#: Options of a refclock line that nothing acts on, by driver ("*": any): the reason, for the warning.
_IGNORED_OPTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "*": MappingProxyType({"subtype": "names no driver variant stratum1 has"}),
        "nmea": MappingProxyType(
            {
                "flag2": "(ntpd: PPS on the falling edge) is not supported; use the rising edge",
                "flag3": "(ntpd: kernel PPS discipline) is not supported; the daemon disciplines the clock",
                "flag4": "(ntpd: obscure the position) has no effect: the position is never shown",
            }
        ),
        "pps": MappingProxyType(
            {
                "flag2": "(ntpd: capture the falling edge) is not supported; use the rising edge",
                "flag3": "(ntpd: kernel PPS discipline) is not supported; the daemon disciplines the clock",
                "flag4": "(ntpd: record a timestamp) is not supported",
                "mode": "has no meaning for the pps driver",
                "baud": "has no meaning for the pps driver",
                "ppspath": "has no meaning for the pps driver (use 'path')",
            }
        ),
        "shm": MappingProxyType(
            {
                "flag2": "has no meaning for the shm driver",
                "flag3": "has no meaning for the shm driver",
                "flag4": "has no meaning for the shm driver",
                "path": "has no meaning for the shm driver (the unit names the segment)",
                "ppspath": "has no meaning for the shm driver",
                "baud": "has no meaning for the shm driver",
            }
        ),
        "gpsd": MappingProxyType(
            {
                "flag2": "has no meaning for the gpsd driver",
                "flag3": "has no meaning for the gpsd driver",
                "flag4": "has no meaning for the gpsd driver",
                "ppspath": "has no meaning for the gpsd driver",
                "baud": "has no meaning for the gpsd driver (gpsd sets the rate)",
            }
        ),
    }
)


@dataclass(frozen=True, slots=True)
class RefclockLine:
    """One reference clock as a source: its driver, what its line says, and the device to read.

    ``gps`` is an NMEA receiver's setup (its PPS paired); ``pps_path`` the
    device of a bare ``pps`` line; ``device`` gpsd's device filter (the
    ``path`` of a ``gpsd`` line, None: any); ``shm_max_delta_ns`` the
    largest offset an ``shm`` line believes (``time2`` in seconds, None with
    ``flag1``: no limit; ntpd's default 4 hours when neither).
    """

    info: DriverInfo
    unit: int
    location: Location
    settings: RefclockSettings
    gps: GpsSetup | None = None
    pps_path: str | None = None
    device: str | None = None
    shm_max_delta_ns: int | None = DEFAULT_MAX_DELTA_NS
    #: an ``shm`` line's ``mode`` (bit 0: the segment is private, 0600, from unit 2 on too)
    shm_mode: int = 0
    pps_taken_from: Location | None = None
    options: tuple[tuple[str, str], ...] = field(default=())

    @property
    def name(self) -> str:
        return self.settings.name


def refclock_lines(config: Config) -> tuple[RefclockLine, ...]:
    """Every reference clock line but the local clock's, in the config's order (see the module docstring)."""
    setups = {at: (setup, pps.location if pps else None) for at, setup, pps in _nmea_setups(config)}
    taken = {pps_at for _, pps_at in setups.values() if pps_at is not None}
    out: list[RefclockLine] = []
    for r in config.refclocks:
        if r.driver != "local":
            out.append(_line(r.driver, r.unit, r.location, _Said.of_refclock(r), setups, taken))
    for s in config.servers:
        rc = s.refclock
        if rc is None or rc[0] == 1:
            continue
        info = next(i for i in DRIVERS.values() if i.ntpd_type == rc[0])
        out.append(_line(info.name, rc[1], s.location, _Said.of_server(s, config), setups, taken))
    return tuple(x for x in out if x.pps_taken_from is None)


def refclock_warnings(config: Config) -> list[ConfigWarning]:
    """A file:line warning for each refclock option that has no effect, and for a poll range."""
    out = []
    for r in config.refclocks:
        if r.driver == "local":
            continue
        for opt, _value in r.options:
            why = _IGNORED_OPTIONS["*"].get(opt) or _IGNORED_OPTIONS.get(r.driver, {}).get(opt)
            if why:
                out.append(ConfigWarning(r.location, f"refclock {r.driver} option '{opt}' {why}, ignored"))
        out += _poll_warning(r.location, r.minpoll, r.maxpoll)
        if r.driver == "nmea":
            out += _nmea_mode_warning(r.location, f"refclock nmea unit {r.unit}", dict(r.options).get("mode"))
        if r.driver == "gpsd":
            opts = dict(r.options)
            flag1 = r.location if opts.get("flag1") == "1" else None
            out += _gpsd_warnings(r.location, f"refclock gpsd unit {r.unit}", r.unit, opts.get("mode"), flag1)
        if r.driver == "shm":
            out += _shm_mode_warning(r.location, f"refclock shm unit {r.unit}", dict(r.options).get("mode"))
            out += _shm_time2_warning(r.location, r.time2_ns, dict(r.options).get("flag1") == "1")
    for s in config.servers:
        rc = s.refclock
        if rc is None or rc[0] == 1:
            continue
        out += _poll_warning(s.location, s.minpoll, s.maxpoll)
        fudge = config.fudge_for(s.host)
        driver = next(i.name for i in DRIVERS.values() if i.ntpd_type == rc[0])
        if fudge is not None:
            for n, _on in fudge.flags:
                why = _IGNORED_OPTIONS.get(driver, {}).get(f"flag{n}")
                if why:
                    out.append(ConfigWarning(fudge.location, f"fudge flag{n} for {s.host} {why}, ignored"))
        if s.mode is not None and driver == "pps":
            why = _IGNORED_OPTIONS[driver]["mode"]
            out.append(ConfigWarning(s.location, f"server {s.host} option 'mode' {why}, ignored"))
        if driver == "nmea":
            out += _nmea_mode_warning(s.location, f"server {s.host}", None if s.mode is None else str(s.mode))
        if driver == "gpsd":
            flag1 = fudge.location if fudge is not None and dict(fudge.flags).get(1) else None
            mode = None if s.mode is None else str(s.mode)
            out += _gpsd_warnings(s.location, f"server {s.host}", rc[1], mode, flag1)
        if driver == "shm":
            out += _shm_mode_warning(s.location, f"server {s.host}", None if s.mode is None else str(s.mode))
            if fudge is not None:
                out += _shm_time2_warning(fudge.location, fudge.time2_ns, dict(fudge.flags).get(1, False))
    return out


#: ntpd's NMEA ``mode`` bits (refclock_nmea.c, NTPsec driver_nmea) other than the baud rate (bits 4-6) and the
#: sentence selection (bits 0-3 and 9, :func:`appliance.nmea.stream.selected_types`): none of them is acted on.
_NMEA_MODE_BAUD_BITS = 0x70
_NMEA_MODE_BITS = MappingProxyType(
    {
        0x80: "0x80 (measure the sentence delay from its end)",
        0x100: "0x100 (Garmin PGRMF)",
        0x10000: "0x10000 (extra statistics)",
        0x20000: "0x20000 (trust the receiver's date without PPS)",
        0x40000: "0x40000 (trust the date)",
    }
)


def _nmea_mode_warning(at: Location, what: str, mode: str | None) -> list[ConfigWarning]:
    """The NMEA ``mode`` bits stratum1 does not act on (all but the baud rate's and the sentence selection's),
    each named; and a sentence selection with no dated sentence (the date then comes from the second's RMC
    or ZDA, which the receiver must send too)."""
    if mode is None:
        return []
    m = int(mode)
    out = []
    if m & SENTENCE_MASK and not m & DATED_BITS:
        chosen = [name for bit, _, name in SENTENCE_BITS if m & bit]
        out.append(
            ConfigWarning(
                at,
                f"{what} mode {mode}: the sentence selection chooses {' and '.join(chosen)}, which "
                f"{'carries' if len(chosen) == 1 else 'carry'} no date; ntpd takes the date from the system "
                "clock, which on a Pi without a real-time clock is days off after a power cut: stratum1 takes "
                "it from the receiver's RMC or ZDA of the same second (for the date only: the chosen sentence "
                "times it), so the receiver must send one of them too",
            )
        )
    rest = m & ~(SENTENCE_MASK | _NMEA_MODE_BAUD_BITS)
    if rest:
        names = [_NMEA_MODE_BITS.get(bit, f"0x{bit:x}") for bit in (1 << i for i in range(32)) if rest & bit]
        out.append(
            ConfigWarning(
                at,
                f"{what} mode {mode}: only the baud rate (bits 4-6) and the sentence selection are ntpd's bits "
                f"stratum1 knows; {', '.join(names)} not supported, ignored",
            )
        )
    return out


#: The first gpsd unit that is a PPS-only secondary of unit ``u - 128`` (NTPsec's driver_gpsd).
GPSD_SECONDARY_UNIT = 128


def _gpsd_kinds(unit: int, mode: str | None, kinds: frozenset[SampleKind]) -> frozenset[SampleKind]:
    """What a gpsd line takes: a secondary unit (128 and up) and ``mode 1`` (strict) the PPS edges only,
    ``mode 0`` (NTPsec: serial time only) the time reports only; no mode or ``mode 2`` (automatic) both."""
    if unit >= GPSD_SECONDARY_UNIT or mode == "1":
        return frozenset({SampleKind.PULSE})
    if mode == "0":
        return frozenset({SampleKind.TIME})
    return kinds


def _gpsd_warnings(
    at: Location, what: str, unit: int, mode: str | None, flag1_at: Location | None
) -> list[ConfigWarning]:
    out = []
    if mode is not None and int(mode) > 2:
        out.append(
            ConfigWarning(at, f"{what} mode {mode}: gpsd's modes are 0, 1 and 2 (3 and up are reserved), ignored")
        )
    if flag1_at is not None:
        why = (
            "(NTPsec: this secondary unit may be the PPS peer) has no effect: its pulses are selected as any "
            "source's samples are (use 'prefer')"
            if unit >= GPSD_SECONDARY_UNIT
            else "has no meaning for the gpsd driver's primary unit"
        )
        out.append(ConfigWarning(flag1_at, f"{what} flag1 {why}, ignored"))
    return out


def _shm_mode_warning(at: Location, what: str, mode: str | None) -> list[ConfigWarning]:
    """The ``mode`` of an shm line: bit 0 makes the segment private (acted on); the other bits are reserved."""
    if mode is None or not int(mode) & ~SHM_MODE_PRIVATE:
        return []
    return [
        ConfigWarning(
            at,
            f"{what} mode {mode}: only bit 0 (1: a private, owner-only segment) means something; "
            f"the other bits (0x{int(mode) & ~SHM_MODE_PRIVATE:x}) are reserved, ignored",
        )
    ]


#: The ``time2`` ntpd's shm driver takes (s); a value outside is ignored and the default used.
SHM_TIME2_RANGE_S = (1, 86_400)


def shm_max_delta_ns(time2_ns: int | None, *, flag1: bool = False) -> int | None:
    """The largest offset an shm line believes, as ntpd's ``shm_control`` has it (None: any, ``flag1``).

    ``time2`` from 1 to 86400 s, rounded to whole seconds; anything else (a value under 1 s among them) is
    ignored and 4 hours used.

    >>> [shm_max_delta_ns(t) // NS_PER_S for t in (None, 600 * NS_PER_S, 2_600_000_000, NS_PER_S // 2)]
    [14400, 600, 3, 14400]
    """
    if flag1:
        return None
    lo, hi = SHM_TIME2_RANGE_S
    if time2_ns is None or not lo * NS_PER_S <= time2_ns <= hi * NS_PER_S:
        return DEFAULT_MAX_DELTA_NS
    return (time2_ns + NS_PER_S // 2) // NS_PER_S * NS_PER_S


def _shm_time2_warning(at: Location, time2_ns: int | None, flag1: bool) -> list[ConfigWarning]:
    if time2_ns is None:
        return []
    said = f"time2 {time2_ns / NS_PER_S:g}"
    if flag1:
        return [ConfigWarning(at, f"shm {said} has no effect: flag1 believes any offset; ignored")]
    lo, hi = SHM_TIME2_RANGE_S
    if lo * NS_PER_S <= time2_ns <= hi * NS_PER_S:
        return []
    return [
        ConfigWarning(
            at,
            f"shm {said}: for the shm driver time2 is the largest offset believed, {lo} to {hi} s as in ntpd; "
            "this value is outside that, so ntpd's default (4 h) is used, as ntpd does",
        )
    ]


def _poll_warning(at: Location, lo: int | None, hi: int | None) -> list[ConfigWarning]:
    if hi is not None and hi != (lo if lo is not None else DEFAULT_REFCLOCK_POLL):
        return [ConfigWarning(at, "a reference clock polls at one interval: 'minpoll' is used, 'maxpoll' ignored")]
    return []


@dataclass(frozen=True, slots=True)
class _Said:
    """What one refclock line says, in either form."""

    options: dict[str, str]
    minpoll: int | None
    stratum: int | None
    refid: str | None
    time1_ns: int | None
    time2_ns: int | None
    prefer: bool
    noselect: bool

    @classmethod
    def of_refclock(cls, r: Refclock) -> _Said:
        return cls(dict(r.options), r.minpoll, r.stratum, r.refid, r.time1_ns, r.time2_ns, r.prefer, r.noselect)

    @classmethod
    def of_server(cls, s: ServerLine, config: Config) -> _Said:
        f = config.fudge_for(s.host)
        options = {f"flag{n}": "1" if on else "0" for n, on in f.flags} if f else {}
        if s.mode is not None:
            options["mode"] = str(s.mode)
        return cls(
            options,
            s.minpoll,
            f.stratum if f else None,
            f.refid if f else None,
            f.time1_ns if f else None,
            f.time2_ns if f else None,
            s.prefer,
            s.noselect,
        )


def _line(
    driver: str,
    unit: int,
    at: Location,
    said: _Said,
    setups: dict[Location, tuple[GpsSetup, Location | None]],
    taken: set[Location],
) -> RefclockLine:
    info = DRIVERS[driver]
    gps = setups[at][0] if driver == "nmea" else None
    if driver == "nmea":
        pulse_offset, time_offset = 0, 0  # the pairing applies time1 and starts its calibration from time2
        kinds = frozenset(SampleKind)
    else:
        pulse_offset, time_offset = offsets_ns(info, said.time1_ns, said.time2_ns)
        kinds = frozenset({SampleKind.PULSE}) if info.pulses else frozenset(SampleKind)
    if driver == "gpsd":
        kinds = _gpsd_kinds(unit, said.options.get("mode"), kinds)
    precision = info.precision
    if gps is not None and gps.pps_path is not None:
        precision = -20  # the PPS edge, not the serial time, is what its samples are
    settings = RefclockSettings(
        name=f"{info.name.upper()}({unit})",
        refid=said.refid or info.refid,
        stratum=said.stratum or 0,
        poll=said.minpoll if said.minpoll is not None else DEFAULT_REFCLOCK_POLL,
        pulse_offset_ns=pulse_offset,
        time_offset_ns=time_offset,
        precision=precision,
        prefer=said.prefer or (gps is not None and gps.prefer),
        noselect=said.noselect,
        kinds=kinds,
    )
    max_delta: int | None = DEFAULT_MAX_DELTA_NS
    if info.time2 is Time2.MAX_DELTA:
        max_delta = shm_max_delta_ns(said.time2_ns, flag1=said.options.get("flag1") == "1")
    pps_path = None
    if driver == "pps":
        pps_path = said.options.get("path", f"/dev/pps{unit}")
    return RefclockLine(
        info,
        unit,
        at,
        settings,
        gps=gps,
        pps_path=pps_path,
        device=said.options.get("path") if driver == "gpsd" else None,
        shm_max_delta_ns=max_delta,
        shm_mode=int(said.options.get("mode", "0")) if driver == "shm" else 0,
        pps_taken_from=at if driver == "pps" and at in taken else None,
        options=tuple(said.options.items()),
    )
