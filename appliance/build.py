"""The builder: a config turned into one timekeeper and the running drivers that feed it.

One builder for the daemon (:class:`appliance.daemon.Appliance`) and the
virtual-time harness (:mod:`appliance.sim.harness`) alike: each calls
:func:`build_timekeeper` (the upstream associations, local clock, holdover
bound and leap hook the config says) and :func:`start_refclocks` with the
backends in an :class:`Edge`: the daemon its event loop and the real
devices, the harness a virtual loop, the fake receiver's bytes as the
serial port and the fake PPS as the PPS device.

One function per driver, each the same three steps: make the refclock
source the line says (:class:`~appliance.refclock.setup.RefclockLine`),
register it with the :class:`~appliance.sources.timekeeper.Timekeeper`
(with the driver's hooks), and start the driver on the event loop so that
its samples reach :meth:`~appliance.sources.timekeeper.Timekeeper.on_sample`
and its bare pulses :meth:`~appliance.sources.timekeeper.Timekeeper.on_pulse`
under the line's name. The daemon (:class:`appliance.daemon.Appliance`)
calls :func:`start_refclocks`; ``serve --simulate`` is one more NMEA line
whose receiver is :class:`appliance.fakes.gps.FakeGps` behind a pty and
whose PPS is :class:`appliance.fakes.pps.FakePps`.

Times: drivers that read the kernel's CLOCK_REALTIME (PPS devices, gpsd's
SHM segments and JSON) have their local timestamps mapped onto the served
clock by ``from_kernel_ns`` (the soft clock's; None when the served clock
is the kernel's).

The timers that keep the rest of the running parts honest live here too:
:func:`start_leap_table` (the leap-second table, logged and its expiry checked)
and :func:`start_drift_file` (the drift file, written at most hourly and
at the end).

Adding a driver: a pure decoder in ``refclock/``, the device in ``io/``, a
line in :data:`appliance.refclock.driver.DRIVERS` and
:data:`appliance.config.model.REFCLOCK_TYPES`, and a ``_start_NAME`` here
listed in :data:`_STARTERS`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.clock.base import Clock
from appliance.clock.discipline import Discipline
from appliance.clock.drift import DriftFile
from appliance.config.model import Config
from appliance.io.loop import EventLoop
from appliance.leap import LeapTable, expiry_warning, find_leap_table, leap_to_serve
from appliance.nmea.epoch import Fix
from appliance.nmea.rollover import RolloverPolicy
from appliance.nmea.stream import NmeaStream
from appliance.refclock.driver import Driver, Readings
from appliance.refclock.gps import Convention, GpsSettings, NmeaRefclock
from appliance.refclock.local import LocalClock
from appliance.refclock.sample import Pulse, Sample
from appliance.refclock.setup import GpsSetup, RefclockLine
from appliance.refclock.source import RefclockSource
from appliance.sources.client import Upstreams
from appliance.sources.timekeeper import DEFAULT_HOLDOVER_BOUND_NS, Timekeeper
from appliance.timebase import NS_PER_S

log = logging.getLogger("stratum1")

#: What opens a PPS device for the ``pps`` and ``nmea`` drivers (see :class:`Edge`).
PpsOpener = Callable[[str, Callable[[int], int] | None], Any]

#: The firmware's build date: the GPS week-rollover repair moves dates before it (minus a year) forward.
BUILD_DATE_NS = 1_795_392_000 * NS_PER_S  # 2026-11-23
#: A driver whose device cannot be opened is tried again this often (NTPsec's gpsd driver: 10 s).
REOPEN_S = 10.0


@dataclass(frozen=True, slots=True)
class Simulation:
    """``serve --simulate``: a fake receiver in a pty and a fake PPS, on the host's time as the truth.

    The served clock is a soft clock that starts ``initial_offset_ns`` wrong,
    so the GPS has something to correct.
    """

    receiver: str = "mtk3339"
    pps_jitter_ns: float = 1000.0
    initial_offset_ns: int = 250_000_000
    seed: int = 1


@dataclass(slots=True)
class Running:
    """What :func:`start_refclocks` started: call :meth:`close` to stop it all (last started, first stopped).

    >>> running = Running()
    >>> running.closers.append(lambda: print("serial port closed"))
    >>> running.close()
    serial port closed
    """

    closers: list[Callable[[], Any]] = field(default_factory=list)
    #: By source name: the NMEA pairings, the serial readers, the drivers (for tests and status pages).
    parts: dict[str, Any] = field(default_factory=dict)
    #: ``--simulate``'s fakes: gps (FakeGps), pty (PtyWriter), pps (FakePps).
    fakes: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:
                log.exception("closing failed")
        self.closers = []


class Loop(Protocol):
    """What the drivers need of an event loop: :class:`~appliance.io.loop.EventLoop`, or the simulation's.

    The virtual-time harness (:mod:`appliance.sim.harness`) passes a loop
    whose timers run on simulated time and that has no descriptors.
    """

    def call_every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None) -> Any: ...

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any: ...

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> None: ...

    def remove_reader(self, fileobj: Any) -> None: ...


class SerialPort(Protocol):
    """A receiver's serial port as the NMEA driver runs it (:class:`appliance.io.serial.SerialGps`)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SerialOpener(Protocol):
    """Makes the serial port of an NMEA line: :class:`~appliance.io.serial.SerialGps`'s constructor, or a fake's.

    The port reads ``path`` and feeds its bytes, with the time ``now_ns()``
    they arrived, to ``stream``; each fix goes to ``on_fix``.
    """

    def __call__(
        self,
        loop: Loop,
        path: str,
        stream: NmeaStream,
        on_fix: Callable[[Fix], Any],
        *,
        baud: int,
        autobaud: bool,
        now_ns: Callable[[], int],
    ) -> SerialPort: ...


@dataclass(frozen=True, slots=True)
class Edge:
    """What the drivers need of the running appliance: its loop, its timekeeper and the kernel clock's mapping.

    The backends default to the real devices; tests and the virtual-time
    harness pass their own (the same drivers, pairing and refclock sources
    run either way).
    """

    loop: Loop
    tk: Timekeeper
    from_kernel_ns: Callable[[int], int] | None = None
    #: Opens a PPS device path: (path, from_kernel_ns) -> a ``fetch()``/``close()`` source (None: the real
    #: ``/dev/ppsN`` or GPIO line; tests pass one that hands out :class:`appliance.fakes.pps.FakePpsDevice`).
    open_pps: PpsOpener | None = None
    #: Opens an NMEA line's serial port (None: :class:`appliance.io.serial.SerialGps`).
    open_serial: SerialOpener | None = None
    #: How often a PPS device is read, in s (None: :data:`appliance.io.pps.DEFAULT_POLL_S`).
    pps_poll_s: float | None = None
    #: The GPS week-rollover repair's build date (see :data:`BUILD_DATE_NS`).
    build_date_ns: int = BUILD_DATE_NS


def build_timekeeper(
    config: Config,
    clock: Clock,
    *,
    precision: int,
    now_ns: int,
    discipline: Discipline | None = None,
    leap_table: LeapTable | None = None,
    rng: random.Random | None = None,
) -> Timekeeper:
    """The timekeeper ``config`` describes, steering ``clock``: its upstream servers, local clock and holdover.

    ``now_ns`` starts the upstream associations' schedules (the time base
    the caller's NTP client polls them on); ``rng`` draws their poll
    jitter (None: the system's). ``discipline``: the loop to start with
    (warm from a drift file: :func:`start_drift_file`); ``leap_table``:
    the leap-second table the served leap indicator follows. The reference
    clocks are added by :func:`start_refclocks`; the caller runs the
    upstream servers' network and calls :meth:`Timekeeper.tick` every second.
    """
    upstreams = None
    if any(s.refclock is None for s in config.servers):
        upstreams = Upstreams(config.servers, now_ns, precision=precision, rng=rng, keys=config.keys)
    return Timekeeper(
        clock,
        discipline,
        precision=precision,
        local=LocalClock.from_config(config),
        upstreams=upstreams,
        holdover_bound_ns=config.holdover_ns or DEFAULT_HOLDOVER_BOUND_NS,
        leap=functools.partial(leap_to_serve, leap_table) if leap_table is not None else None,
    )


def start_refclocks(edge: Edge, lines: tuple[RefclockLine, ...], simulation: Simulation | None = None) -> Running:
    """Start a driver for each line (and ``simulation``'s receiver first); see the module docstring."""
    running = Running()
    try:
        if simulation is not None:
            # the fake receiver stands in for the first NMEA line's device (its settings, time1 included, stay)
            fed = next((line for line in lines if line.info.name == "nmea"), None)
            _start_simulation(edge, simulation, running, fed)
            lines = tuple(line for line in lines if line is not fed)
        for line in lines:
            _STARTERS[line.info.name](edge, line, running)
    except BaseException:
        running.close()
        raise
    return running


# -- nmea ---------------------------------------------------------------------------------------


def _start_nmea(edge: Edge, line: RefclockLine, running: Running) -> None:
    setup = line.gps
    assert setup is not None
    stream = NmeaStream(RolloverPolicy(edge.build_date_ns), sentences=setup.sentences)
    nmea = _add_nmea(edge, line.settings, setup, setup.convention, stream, explicit_refid=line.settings.refid != "GPS")
    open_serial = edge.open_serial
    if open_serial is None:
        from appliance.io.serial import SerialGps

        open_serial = SerialGps
    serial = open_serial(
        edge.loop,
        setup.serial_path,
        stream,
        functools.partial(_fix, edge.tk, line.name, nmea),
        baud=setup.baud,
        autobaud=setup.autobaud,
        now_ns=edge.tk.clock.now_ns,
    )
    if setup.pps_path:
        _start_pps_device(edge, setup.pps_path, functools.partial(_nmea_pulse, edge.tk, line.name, nmea), running)
    serial.start()
    running.closers.append(serial.stop)
    running.parts[line.name] = nmea
    running.parts[f"{line.name} serial"] = serial


def _add_nmea(
    edge: Edge,
    settings: Any,
    setup: GpsSetup | None,
    convention: Convention,
    stream: NmeaStream,
    *,
    explicit_refid: bool,
) -> NmeaRefclock:
    """The pairing of an NMEA line, selected by the timekeeper; a clock step restates ``stream`` and the pairing."""
    nmea = NmeaRefclock(
        GpsSettings(convention, setup.nmea_delay_ns if setup else None, setup.pps_offset_ns if setup else 0)
    )
    has_pps = setup is None or setup.pps_path is not None
    pulse_refid = "PPS" if has_pps and not explicit_refid else None
    if setup is not None and setup.pulse_refid is not None:
        pulse_refid = setup.pulse_refid  # the refid of the pps line paired with it
    edge.tk.add_refclock(
        RefclockSource(settings),
        why_unusable=nmea.why_unusable,
        stepped=functools.partial(_nmea_stepped, stream, nmea),
        pulse_refid=pulse_refid,
    )
    return nmea


def _nmea_stepped(stream: NmeaStream, nmea: NmeaRefclock, step_ns: int) -> None:
    """The clock was stepped: the epoch being read and the pairing carry on, on the new scale."""
    stream.clock_stepped(step_ns)
    nmea.stepped(step_ns)


def _fix(tk: Timekeeper, name: str, nmea: NmeaRefclock, fix: Any) -> None:
    for sample in nmea.on_fix(fix):
        tk.on_sample(name, sample)


def _nmea_pulse(tk: Timekeeper, name: str, nmea: NmeaRefclock, pulse: Pulse) -> None:
    trusted = tk.clock_trusted(tk.clock.now_ns())
    for sample in nmea.on_pulse(pulse, clock_within_0_4s=trusted):
        tk.on_sample(name, sample)


def _start_simulation(edge: Edge, simulation: Simulation, running: Running, line: RefclockLine | None) -> None:
    """``--simulate``: a fake receiver in a pty, with a fake PPS, on the host's time.

    It feeds ``line`` (the config's first ``nmea`` line: its name and settings, ``time1`` and the like,
    apply as they would to the real receiver), or ``NMEA(0)`` with the defaults when there is none.
    """
    from appliance.fakes.gps import MODELS, FakeGps, PtyWriter
    from appliance.fakes.pacing import DueTimer
    from appliance.fakes.pps import FakePps
    from appliance.io.serial import SerialGps
    from appliance.refclock.source import RefclockSettings

    tk = edge.tk
    clock = tk.clock
    clock.step_ns(simulation.initial_offset_ns)
    convention = Convention.NEXT if MODELS[simulation.receiver].labels == "next" else Convention.CURRENT
    setup = None if line is None else line.gps
    stream = NmeaStream(RolloverPolicy(BUILD_DATE_NS), sentences=0 if setup is None else setup.sentences)
    if line is None:
        name = "NMEA(0)"
        settings = RefclockSettings(name=name, refid="GPS", poll=0)
        nmea = _add_nmea(edge, settings, None, convention, stream, explicit_refid=False)
    else:
        name = line.name
        nmea = _add_nmea(edge, line.settings, setup, convention, stream, explicit_refid=line.settings.refid != "GPS")
    true_ns = time.time_ns
    receiver = FakeGps(simulation.receiver, start_ns=true_ns(), seed=simulation.seed)
    link_dir = tempfile.mkdtemp(prefix="stratum1-sim-")
    running.closers.append(lambda: shutil.rmtree(link_dir, ignore_errors=True))
    # the driver opens a symlink, so the fake receiver can be unplugged and plugged back in
    writer = PtyWriter(receiver, true_ns, link=f"{link_dir}/gps0")
    running.closers.append(writer.close)
    # each sentence is written when due and each edge ticked at its second: the loop wakes a few times a
    # second, as on real hardware, not every few milliseconds
    running.closers.append(writer.follow(edge.loop).cancel)
    # the true time is the kernel's CLOCK_REALTIME: an edge's stamp is that time mapped onto the served clock,
    # as the kernel stamps a real edge (no reading of two clocks one after the other, which comes out early)
    local_at = edge.from_kernel_ns
    pps = FakePps(true_ns, clock.now_ns, jitter_ns=simulation.pps_jitter_ns, seed=simulation.seed, local_at=local_at)
    on_pulse = functools.partial(_nmea_pulse, tk, name, nmea)

    def pulses() -> None:
        for p in pps.tick():
            on_pulse(p)

    # the fake PPS stands in for the line's PPS: a line without one (its pps line 'noselect') gets no pulses
    if line is None or line.gps is None or line.gps.pps_path is not None:
        timer = DueTimer(edge.loop, true_ns, lambda: pps.next_edge_ns, pulses)
        running.closers.append(timer.cancel)
    running.fakes.update(gps=receiver, pty=writer, pps=pps)
    serial = SerialGps(
        edge.loop,
        writer.path,
        stream,
        functools.partial(_fix, tk, name, nmea),
        now_ns=clock.now_ns,
    )
    serial.start()
    running.closers.append(serial.stop)
    running.parts[name] = nmea
    running.parts[f"{name} serial"] = serial


# -- pps --------------------------------------------------------------------------------------


def _start_pps(edge: Edge, line: RefclockLine, running: Running) -> None:
    """A bare PPS (ntpd's ATOM): its edges numbered by whatever the system is synchronised to."""
    assert line.pps_path is not None
    edge.tk.add_refclock(RefclockSource(line.settings))
    _start_pps_device(edge, line.pps_path, functools.partial(edge.tk.on_pulse, line.name), running)


def _start_pps_device(edge: Edge, path: str, on_pulse: Callable[[Pulse], Any], running: Running) -> None:
    """Read ``/dev/ppsN`` (or ``gpio:N``) and hand each edge, on the served clock, to ``on_pulse``."""
    from appliance.io.gpio import ClockMapper, GpioError, open_gpio_pps
    from appliance.io.pps import KernelPps, PpsError, PpsPoller

    to_clock = edge.from_kernel_ns
    if edge.open_pps is not None:
        fake = PpsPoller(edge.open_pps(path, to_clock), on_pulse, name=path)
        if edge.pps_poll_s is not None:
            fake.start(edge.loop, edge.pps_poll_s)
        else:
            fake.start(edge.loop)
        running.closers.append(fake.stop)
        return
    try:
        if path.startswith("gpio:"):
            source: Any = open_gpio_pps(int(path[5:]), mapper=ClockMapper(from_kernel_ns=to_clock))
        else:
            source = KernelPps(path, from_kernel_ns=to_clock)
    except (OSError, ValueError, ImportError, PpsError, GpioError) as e:
        log.error("PPS %s unusable, serving without it: %s", path, e)
        return
    # a /dev/ppsN that was unplugged is opened afresh (by group, after the privilege switch)
    reopen = None if path.startswith("gpio:") else functools.partial(KernelPps, path, from_kernel_ns=to_clock)
    poller = PpsPoller(source, on_pulse, name=path, reopen=reopen)
    if to_clock is None and isinstance(source, KernelPps):
        # /dev/ppsN stamps on the served (kernel) clock itself: a step leaves an edge fetched late on the old
        # scale (a GPIO line's monotonic stamps are mapped when read, after the step: no restating there)
        edge.tk.add_step_listener(poller.clock_stepped)
    if edge.pps_poll_s is not None:
        poller.start(edge.loop, edge.pps_poll_s)
    else:
        poller.start(edge.loop)
    running.closers.append(poller.stop)


# -- shm and gpsd: drivers of the open / poll / close interface -----------------------------------


def _start_shm(edge: Edge, line: RefclockLine, running: Running) -> None:
    from appliance.io.shm import ShmDriver

    edge.tk.add_refclock(RefclockSource(line.settings))
    driver = ShmDriver(line.unit, mode=line.shm_mode, max_delta_ns=line.shm_max_delta_ns)
    _run_polled(edge, line, driver, running)


def _start_gpsd(edge: Edge, line: RefclockLine, running: Running) -> None:
    from appliance.io.gpsd import GpsdDriver

    edge.tk.add_refclock(RefclockSource(line.settings))
    driver = GpsdDriver(device=line.device)
    _run_polled(edge, line, driver, running, selectable=True)


def _run_polled(edge: Edge, line: RefclockLine, driver: Driver, running: Running, *, selectable: bool = False) -> None:
    """Open ``driver`` (again every :data:`REOPEN_S` while that fails), poll it, hand up what it read.

    A selectable driver is read when its descriptor is readable; the others
    every ``2**driver_poll`` s. Either way its timer also notices a driver
    that closed (gpsd went away) and opens it again.
    """
    tk = edge.tk
    name = line.name
    reading = [False]  # whether the loop watches the descriptor
    failing = [False]

    def hand_up(readings: Readings) -> None:
        for sample in readings.samples:
            tk.on_sample(name, _on_clock(edge, sample))
        for pulse in readings.pulses:
            tk.on_pulse(name, Pulse(_kernel(edge, pulse.local_ns)))

    def readable() -> None:
        hand_up(driver.poll(tk.clock.now_ns()))
        if getattr(driver, "is_open", True) is False and reading[0]:
            edge.loop.remove_reader(driver)
            reading[0] = False

    def ensure_open() -> bool:
        if getattr(driver, "is_open", False):
            return True
        try:
            driver.open()
        except OSError as e:
            if not failing[0]:
                log.warning("%s (%s): %s; trying again every %.0f s", name, line.location, e, REOPEN_S)
            failing[0] = True
            return False
        if failing[0]:
            log.info("%s: open again", name)
        failing[0] = False
        if selectable and not reading[0]:
            edge.loop.add_reader(driver, readable)
            reading[0] = True
        return True

    last_try = [0.0]

    def timer() -> None:
        now = time.monotonic()
        if not getattr(driver, "is_open", False):
            if now - last_try[0] < REOPEN_S:
                return
            last_try[0] = now
            if not ensure_open():
                return
        if not selectable:
            hand_up(driver.poll(tk.clock.now_ns()))

    ensure_open()
    interval = 2.0**line.settings.driver_poll
    handle = edge.loop.call_every(interval, timer)

    def close() -> None:
        handle.cancel()
        if reading[0]:
            edge.loop.remove_reader(driver)
        driver.close()

    running.closers.append(close)
    running.parts[name] = driver


def _kernel(edge: Edge, t_ns: int) -> int:
    return edge.from_kernel_ns(t_ns) if edge.from_kernel_ns is not None else t_ns


def _on_clock(edge: Edge, sample: Sample) -> Sample:
    if edge.from_kernel_ns is None:
        return sample
    return dataclasses.replace(sample, local_ns=edge.from_kernel_ns(sample.local_ns))


# -- the leap-second table and the drift file -------------------------------------------------------


def start_leap_table(leapfile: str | None, now_ns: int) -> LeapTable | None:
    """The leap-second table (``leapfile``, else tzdata's), logged, its expiry checked (the daemon reads the
    file again when it changes, ``Appliance.check_leap_file``, and warns daily while the table is expired)."""
    found = find_leap_table(leapfile)
    for message in found.messages:
        log.warning("%s", message)
    table = found.table
    if table is not None:
        offset = table.tai_offset(now_ns)
        log.info("leap-second table %s: TAI-UTC %d s, expires %s", table.path, offset, utc_date(table.expires_ns))
        warn_if_expired(table, now_ns)
    return table


def warn_if_expired(table: LeapTable, now_ns: int) -> None:
    """Log the loud warning of an expired table (nothing while it is current)."""
    warning = expiry_warning(table, now_ns)
    if warning is not None:
        log.warning("%s", warning)


def utc_date(t_ns: int) -> str:
    return datetime.datetime.fromtimestamp(t_ns // 1_000_000_000, datetime.UTC).strftime("%Y-%m-%d")


def start_drift_file(
    loop: EventLoop,
    driftfile: str | None,
    clock: Clock,
    in_use: Callable[[], Discipline | None],
    closers: list[Callable[[], Any]],
    *,
    private: bool = False,
) -> tuple[DriftFile | None, Discipline]:
    """Read ``driftfile`` and keep it; return it and the discipline to start with (warm from the file).

    The file's frequency is set on ``clock`` too. The discipline ``in_use()``
    (the one tracking now) is written at most hourly while it tracks, and at
    the end (a closer appended to ``closers``). ``private`` (``--simulate``):
    the file lives in a temporary directory, never where the config says.
    """
    if driftfile is None:
        return None, Discipline()
    path = Path(driftfile)
    if private:
        sim_dir = tempfile.mkdtemp(prefix="stratum1-sim-drift-")
        closers.append(lambda: shutil.rmtree(sim_dir, ignore_errors=True))
        path = Path(sim_dir) / path.name
    drift = DriftFile(path)
    frequency_ppb = drift.load(time.monotonic_ns())
    if frequency_ppb is not None:
        clock.set_frequency_ppb(frequency_ppb)

    def keep(final: bool) -> None:
        discipline = in_use()
        if discipline is None:
            return
        status = discipline.status(clock.now_ns())
        if not final:
            drift.update(time.monotonic_ns(), status)
        elif drift.close(time.monotonic_ns(), status):
            log.info("drift file %s saved: %+.3f ppm", drift.path, status.frequency_ppb / 1000.0)

    loop.call_every(60.0, lambda: keep(False))
    closers.append(lambda: keep(True))
    return drift, Discipline(frequency_ppb=frequency_ppb)


_STARTERS: dict[str, Callable[[Edge, RefclockLine, Running], None]] = {
    "nmea": _start_nmea,
    "pps": _start_pps,
    "shm": _start_shm,
    "gpsd": _start_gpsd,
}
