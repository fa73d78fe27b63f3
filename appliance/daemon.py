"""The composition root: the one place that picks backends and wires the appliance together.

An :class:`Appliance` owns its event loop, sockets, server core and sources;
nothing is global, so tests run two in one process. The CLI builds one from a
:class:`~appliance.config.model.Config` and :class:`ServeSettings` and runs
it; tests build one on loopback, run it in a thread and stop it.
"""

from __future__ import annotations

import datetime
import errno
import functools
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.clock.base import Clock
from appliance.clock.discipline import Discipline
from appliance.clock.drift import DriftFile
from appliance.clock.soft import SoftClock
from appliance.config.changes import config_changes
from appliance.config.model import Config
from appliance.io.fastpath import rate_limiter
from appliance.io.loop import EventLoop
from appliance.io.statsfiles import StatsWriter
from appliance.io.statussock import StatusServer
from appliance.io.udp import UdpServerSocket
from appliance.leap import LeapTable, expiry_warning, find_leap_table, leap_to_serve
from appliance.nmea.rollover import RolloverPolicy
from appliance.nmea.stream import NmeaStream
from appliance.ntp.access import AccessTable
from appliance.ntp.mode6 import ControlHandler
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer
from appliance.refclock.gps import Convention, GpsClock, GpsSettings
from appliance.refclock.local import LocalClock
from appliance.refclock.setup import GpsSetup, gps_setup
from appliance.sources.client import Association, Reply, Upstreams
from appliance.sources.state import UNSYNCHRONISED, SystemState
from appliance.sources.timekeeper import DEFAULT_HOLDOVER_BOUND_NS, Timekeeper, TimekeeperStatus
from appliance.status.collect import AssocIds, snapshot_from
from appliance.status.snapshot import Snapshot
from appliance.timebase import NS_PER_S, log2_from_ns

log = logging.getLogger("stratum1")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stratum1")
    except PackageNotFoundError:
        return "(source tree)"


NTP_PORT = 123
#: What mode 6's ``version`` variable and the status snapshot say.
VERSION = "stratum1 " + _package_version()
SIMULATE_PORT = 11123
ALL_ADDRESSES = ("0.0.0.0", "::")
LOOPBACK = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Where to serve: addresses and port, and the receive buffer size (None: the kernel's)."""

    listen: tuple[str, ...] = ALL_ADDRESSES
    port: int = NTP_PORT
    rcvbuf: int | None = None
    #: "soft" (a software-corrected clock: never touches the host clock) or "kernel" (adjtimex).
    clock: str = "soft"
    #: Let the compiled data plane answer plain client requests where it can (appliance.io.fastpath).
    fastpath: bool = True
    #: The status socket's path (appliance.io.statussock); None: no socket.
    status_socket: str | None = None


#: The firmware's build date: the GPS week-rollover repair moves dates before it (minus a year) forward.
BUILD_DATE_NS = 1_795_392_000 * NS_PER_S  # 2026-11-23


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


def measure_precision(read_ns: Callable[[], int], samples: int = 200) -> int:
    """The clock's precision as log2 seconds: the smallest step seen between successive readings."""
    best = None
    last = read_ns()
    for _ in range(samples):
        now = read_ns()
        step = now - last
        if step > 0 and (best is None or step < best):
            best = step
        last = now
    return log2_from_ns(best or 1000)


def listen_addresses(config: Config, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The addresses to bind: those asked for on the command line, else the config's, else all."""
    if requested:
        return requested
    chosen: list[str] = []
    for entry in config.listen:
        a = entry.address
        if a in ("all", "wildcard"):
            return ALL_ADDRESSES
        if a == "ipv4":
            chosen.append("0.0.0.0")
        elif a == "ipv6":
            chosen.append("::")
        else:
            try:
                chosen.append(str(ipaddress.ip_address(a.split("%")[0])))
            except ValueError:
                log.warning("%s: interface names are not supported in 'interface listen', ignored", entry.location)
    return tuple(chosen) or ALL_ADDRESSES


class Appliance:
    """One running stratum1: config in, NTP served on the settings' addresses."""

    def __init__(
        self,
        config: Config,
        settings: ServeSettings,
        *,
        read_ns: Callable[[], int] = time.time_ns,
        simulation: Simulation | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.simulation = simulation
        self.loop = EventLoop()
        self.precision = measure_precision(read_ns)
        self.local_clock = LocalClock.from_config(config)
        self.leap_table = self._load_leap_table(config, read_ns())
        self.clock: Clock | None = None
        self.timekeeper: Timekeeper | None = None
        self.drift_file: DriftFile | None = None
        self.fakes: dict[str, Any] = {}
        self._closers: list[Callable[[], Any]] = []
        self._netns = _NetNs.current()  # start_thread() serves from here, whichever thread calls it
        from_kernel_ns: Callable[[int], int] | None = None
        setup = gps_setup(config)
        upstream = any(s.refclock is None for s in config.servers)
        if simulation is not None or setup is not None or upstream:
            clock = self._make_clock(settings.clock, read_ns)
            if isinstance(clock, SoftClock):
                from_kernel_ns = clock.at_base_ns
            elif self.leap_table is not None and hasattr(clock, "set_tai_offset"):
                try:  # the kernel clock: CLOCK_TAI right too
                    clock.set_tai_offset(self.leap_table.tai_offset(read_ns()))
                except OSError as e:
                    log.warning("cannot set the kernel's TAI offset: %s", e)
            self.clock = clock
            read_ns = clock.now_ns
        self.read_ns = read_ns
        # -- status (issue 10): one snapshot a second, read by mode 6 and the status socket --------
        self.started_ns = read_ns()
        self.snapshot: Snapshot | None = None
        self._assoc_ids = AssocIds()
        self._status_server: StatusServer | None = None
        self.stats: StatsWriter | None = None
        if config.statsdir is not None and any(g.enabled for g in config.filegens):
            self.stats = StatsWriter(config.statsdir, config.filegens)
        uname = os.uname()
        control = ControlHandler(
            snapshot=lambda: self.snapshot, version=VERSION, host=(uname.machine, f"{uname.sysname}/{uname.release}")
        )
        # -- end status --
        self.server = NtpServer(
            AccessTable.from_rules(config.restricts),
            self._rate_limiter(config),
            peers=_peers(config),
            control=control,
        )
        self.sockets: list[UdpServerSocket] = []
        self._from_kernel_ns = from_kernel_ns
        # The compiled data plane reads CLOCK_REALTIME itself: only when that is the clock served.
        self._fast = settings.fastpath and from_kernel_ns is None and _reads_realtime(self.clock, read_ns)
        self._thread: threading.Thread | None = None
        try:  # whatever fails part-way, what was made so far (sockets, temporary directories) goes
            for address in settings.listen:
                self._open(address)
            if self.clock is not None:
                self._start_timekeeper(self.clock, setup, simulation)
            self.refresh_state()
        except BaseException:
            self.close()
            raise
        self.loop.call_every(1.0 if self.timekeeper else 16.0, self.refresh_state)
        self.loop.call_every(3600.0, self.log_counters)
        self._start_status(settings.status_socket)

    def _rate_limiter(self, config: Config) -> RateLimiter:
        """The table for ``discard``: the compiled one where the compiled data plane may serve."""
        return rate_limiter(config.discard) if self.settings.fastpath else RateLimiter(config.discard)

    # -- SIGHUP: a new configuration, applied where no restart is needed --------------------------------

    def reload(self, config: Config) -> ReloadReport:
        """Serve ``config`` from now on, as far as a running appliance can (see :mod:`appliance.config.changes`).

        Applied at once: ``restrict`` lines and ``discard`` (both data
        planes), upstream servers (associations added and removed), the
        local clock and ``localclock``, ``holdover``. Everything else that
        changed is named in the report's ``restart``. Call on the loop's thread.
        """
        changes = config_changes(self.config, config)
        restart = list(changes.restart)
        applied = []
        if changes.restricts or changes.discard or changes.servers:
            limiter = self._rate_limiter(config) if changes.discard else self.server.limiter
            self.server.reconfigure(AccessTable.from_rules(config.restricts), limiter, _peers(config))
            applied += ["restrict lines"] if changes.restricts else []
            applied += ["rate limits (discard)"] if changes.discard else []
        if changes.servers:
            if self._reload_upstreams(config):
                applied.append("servers")
            else:
                restart.append("servers (the appliance started with no clock to steer)")
        if changes.local_clock:
            self.local_clock = LocalClock.from_config(config)
            if self.timekeeper is not None:
                self.timekeeper.set_local(self.local_clock)
            applied.append("local clock")
        if changes.holdover:
            if self.timekeeper is not None:
                self.timekeeper.holdover_bound_ns = config.holdover_ns or DEFAULT_HOLDOVER_BOUND_NS
            applied.append("holdover")
        self.config = config
        self.refresh_state()
        return ReloadReport(tuple(applied), tuple(restart))

    def _reload_upstreams(self, config: Config) -> bool:
        """Follow the new ``server``/``pool``/``peer`` lines; False when there is no clock they could steer."""
        tk = self.timekeeper
        if tk is None:
            return False
        if tk.upstreams is None:
            upstreams = Upstreams(config.servers, time.monotonic_ns(), precision=self.precision)
            tk.upstreams = upstreams
            self._start_upstreams(tk, upstreams)
            log.info("servers: now polling %s", ", ".join(upstream_hosts(config)) or "none")
            return True
        added, removed = tk.upstreams.reconfigure(config.servers, time.monotonic_ns())
        for host in added:
            log.info("servers: %s added", host)
        for host in removed:
            log.info("servers: %s removed", host)
        self.ntp_client.reschedule()
        return True

    def _open(self, address: str) -> None:
        try:
            sock = UdpServerSocket(
                address,
                self.settings.port,
                self.server,
                read_ns=self.read_ns,
                from_kernel_ns=self._from_kernel_ns,
                rcvbuf=self.settings.rcvbuf,
                fast=self._fast,
            )
        except OSError as e:
            if e.errno == errno.EAFNOSUPPORT or (":" in address and not socket.has_ipv6):
                log.warning("IPv6 is not available here: not listening on %s", address)
                return
            raise ListenError(address, self.settings.port, e) from e
        self.sockets.append(sock)
        self.loop.add_reader(sock, sock.on_readable)

    @staticmethod
    def _make_clock(kind: str, read_ns: Callable[[], int]) -> Clock:
        if kind == "kernel":
            from appliance.clock.kernel import KernelClock

            return KernelClock()
        return SoftClock(read_ns)

    def _start_timekeeper(self, clock: Clock, setup: GpsSetup | None, simulation: Simulation | None) -> None:
        """One timekeeper steers ``clock`` from the GPS (real or simulated), the upstream servers, the local clock.

        Any of them may be missing: no GPS section (upstreams only), no
        ``server``/``pool`` lines (GPS only). The timekeeper ticks every second.
        """
        gps = None
        if setup is not None or simulation is not None:
            convention = setup.convention if setup else Convention.CURRENT
            if simulation is not None:
                from appliance.fakes.gps import MODELS

                convention = Convention.NEXT if MODELS[simulation.receiver].labels == "next" else Convention.CURRENT
            delay = setup.nmea_delay_ns if setup else None
            gps = GpsClock(GpsSettings(convention, delay, setup.pps_offset_ns if setup else 0))
        discipline = self._start_drift_file(clock, simulation)
        upstreams = None
        if any(s.refclock is None for s in self.config.servers):
            upstreams = Upstreams(self.config.servers, time.monotonic_ns(), precision=self.precision)
        tk = Timekeeper(
            clock,
            gps,
            discipline,
            precision=self.precision,
            local=self.local_clock,
            upstreams=upstreams,
            holdover_bound_ns=self.config.holdover_ns or DEFAULT_HOLDOVER_BOUND_NS,
            leap=functools.partial(leap_to_serve, self.leap_table) if self.leap_table is not None else None,
            gps_prefer=setup.prefer if setup else False,
            gps_noselect=_gps_noselect(self.config),
        )
        self.timekeeper = tk
        self._status: TimekeeperStatus | None = None
        if gps is not None:
            self._start_gps(tk, setup, simulation)
        if upstreams is not None:
            self._start_upstreams(tk, upstreams)
        self.loop.call_every(1.0, tk.tick)

    def _start_upstreams(self, tk: Timekeeper, upstreams: Upstreams) -> None:
        """Poll the ``server``/``pool`` lines' servers on the loop; their samples go to ``tk``."""
        from appliance.io.ntpclient import NtpClientIO

        def on_reply(a: Association, reply: Reply) -> None:
            if reply.sample is not None:
                tk.on_upstream(a.name, reply.sample)

        client = NtpClientIO(
            self.loop, upstreams, read_ns=tk.clock.now_ns, from_kernel_ns=self._from_kernel_ns, on_reply=on_reply
        )
        self.ntp_client = client
        self._closers.append(client.close)
        self.loop.call_later(0.0, client.start)  # names are resolved on the loop, not in the constructor

    def _start_gps(self, tk: Timekeeper, setup: GpsSetup | None, simulation: Simulation | None) -> None:
        """Wire the GPS receiver (real or simulated) into ``tk``."""
        clock = tk.clock
        stream = NmeaStream(RolloverPolicy(BUILD_DATE_NS))
        from appliance.io.serial import SerialGps

        if simulation is not None:
            from appliance.fakes.gps import FakeGps, PtyWriter
            from appliance.fakes.pps import FakePps

            clock.step_ns(simulation.initial_offset_ns)
            true_ns = time.time_ns
            receiver = FakeGps(simulation.receiver, start_ns=true_ns(), seed=simulation.seed)
            import shutil
            import tempfile

            link_dir = tempfile.mkdtemp(prefix="stratum1-sim-")
            self._closers.append(lambda: shutil.rmtree(link_dir, ignore_errors=True))
            # the driver opens a symlink, so the fake receiver can be unplugged and plugged back in
            writer = PtyWriter(receiver, true_ns, link=f"{link_dir}/gps0")
            writer.attach(self.loop, 0.005)
            pps = FakePps(true_ns, clock.now_ns, jitter_ns=simulation.pps_jitter_ns, seed=simulation.seed)

            def pulses() -> None:
                for p in pps.tick():
                    tk.on_pulse(p)

            self.loop.call_every(0.01, pulses)
            self.fakes.update(gps=receiver, pty=writer, pps=pps)
            self._closers.append(writer.close)
            serial = SerialGps(self.loop, writer.path, stream, tk.on_fix, now_ns=clock.now_ns)
        else:
            assert setup is not None
            serial = SerialGps(
                self.loop,
                setup.serial_path,
                stream,
                tk.on_fix,
                baud=setup.baud,
                autobaud=setup.autobaud,
                now_ns=clock.now_ns,
            )
            if setup.pps_path:
                self._start_pps(setup.pps_path, tk)
        serial.start()
        self.serial = serial
        self._closers.append(serial.stop)

    def _start_drift_file(self, clock: Clock, simulation: Simulation | None) -> Discipline:
        """Read the config's ``driftfile`` and keep it; return the discipline to start with (warm from the file).

        The file's frequency is set on ``clock`` too. The file is written at most
        hourly while the timekeeper's discipline tracks, and at :meth:`close`.
        With ``simulation`` it lives in a temporary directory, never where the config says.
        """
        if self.config.driftfile is None:
            return Discipline()
        path = Path(self.config.driftfile)
        if simulation is not None:
            import shutil
            import tempfile

            sim_dir = tempfile.mkdtemp(prefix="stratum1-sim-drift-")
            self._closers.append(lambda: shutil.rmtree(sim_dir, ignore_errors=True))
            path = Path(sim_dir) / path.name
        drift = DriftFile(path)
        frequency_ppb = drift.load(time.monotonic_ns())
        if frequency_ppb is not None:
            clock.set_frequency_ppb(frequency_ppb)

        def keep(final: bool) -> None:
            if self.timekeeper is not None:  # Timekeeper.discipline: the loop in use now
                status = self.timekeeper.discipline.status(clock.now_ns())
                if not final:
                    drift.update(time.monotonic_ns(), status)
                elif drift.close(time.monotonic_ns(), status):
                    log.info("drift file %s saved: %+.3f ppm", drift.path, status.frequency_ppb / 1000.0)

        self.loop.call_every(60.0, lambda: keep(False))
        self._closers.append(lambda: keep(True))
        self.drift_file = drift
        return Discipline(frequency_ppb=frequency_ppb)

    def _start_pps(self, path: str, tk: Timekeeper) -> None:
        from appliance.io.gpio import ClockMapper, GpioError, open_gpio_pps
        from appliance.io.pps import KernelPps, PpsError, PpsPoller

        # pulse timestamps are the kernel's CLOCK_REALTIME: map them onto the served clock (soft clock)
        to_clock = self._from_kernel_ns
        try:
            if path.startswith("gpio:"):
                source: Any = open_gpio_pps(int(path[5:]), mapper=ClockMapper(from_kernel_ns=to_clock))
            else:
                source = KernelPps(path, from_kernel_ns=to_clock)
        except (OSError, ValueError, ImportError, PpsError, GpioError) as e:
            log.error("PPS %s unusable, serving from NMEA alone: %s", path, e)
            return
        # a /dev/ppsN that was unplugged is opened afresh (by group, after the privilege switch)
        reopen = None if path.startswith("gpio:") else functools.partial(KernelPps, path, from_kernel_ns=to_clock)
        poller = PpsPoller(source, tk.on_pulse, name=path, reopen=reopen)
        poller.start(self.loop)
        self._closers.append(poller.stop)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.address for s in self.sockets]

    def current_state(self, now_ns: int) -> SystemState:
        """The system state to serve at ``now_ns`` (sources and selection plug in here)."""
        if self.timekeeper is not None:
            return self.timekeeper.state(now_ns)
        if self.local_clock is not None:
            state = self.local_clock.state(now_ns, self.precision)
            if self.leap_table is not None:
                state = replace(state, leap=leap_to_serve(self.leap_table, now_ns, state.leap))
            return state
        return UNSYNCHRONISED

    def _load_leap_table(self, config: Config, now_ns: int) -> LeapTable | None:
        """The leap-second table (``leapfile``, else tzdata's), logged; its expiry is checked daily."""
        found = find_leap_table(config.leapfile)
        for message in found.messages:
            log.warning("%s", message)
        table = found.table
        if table is not None:
            offset = table.tai_offset(now_ns)
            log.info("leap-second table %s: TAI-UTC %d s, expires %s", table.path, offset, _utc_date(table.expires_ns))
            self._warn_if_expired(table, now_ns)
            self.loop.call_every(86_400.0, lambda: self._warn_if_expired(table, self.read_ns()))
        return table

    @staticmethod
    def _warn_if_expired(table: LeapTable, now_ns: int) -> None:
        warning = expiry_warning(table, now_ns)
        if warning is not None:
            log.warning("%s", warning)

    def refresh_state(self) -> None:
        state = self.current_state(self.read_ns())
        if state != self.server.state:
            self.server.set_state(state)
        if self.timekeeper is not None:
            self._log_status(self.timekeeper.status())
        self.publish_status()

    # -- status (issue 10): the snapshot producer and the socket ------------------------------------

    def publish_status(self) -> None:
        """Build this second's snapshot (mode 6 reads it); hand it to the status socket and the statistics files."""
        self.snapshot = snapshot_from(
            self.timekeeper,
            self.server.counters,
            self.read_ns(),
            ids=self._assoc_ids,
            started_ns=self.started_ns,
            version=VERSION,
            precision=self.precision,
            leap_table=self.leap_table,
            previous=self.snapshot,
            served=self.server.state,
        )
        if self._status_server is not None:
            self._status_server.publish(self.snapshot.to_json().encode() + b"\n")
        if self.stats is not None:
            self.stats.observe(self.snapshot)

    def _start_status(self, path: str | None) -> None:
        """Listen on the status socket (a thread of its own; see appliance.io.statussock)."""
        if self.timekeeper is None:  # refresh_state runs every 16 s then: keep the snapshot (counters) fresh
            self.loop.call_every(1.0, self.publish_status)
        if path is None:
            return
        try:
            self._status_server = StatusServer(path)
        except OSError as e:
            log.warning("status socket %s: %s (stratum1 status will not answer)", path, e)
            return
        self._closers.append(self._status_server.close)
        self.publish_status()

    def _start_status_thread(self) -> None:
        """Serve the status socket from its own thread: started by :meth:`run`, after ``-u``'s privilege switch
        (capabilities are per thread: a thread started before the switch would keep them)."""
        if self._status_server is not None and not self._status_server.started:
            self._status_server.start()

    # -- end status --

    def _log_status(self, status: TimekeeperStatus) -> None:
        """Log when the basis, the system peer or the falsetickers change (a GPS outvoted shows here)."""
        last = self._status
        self._status = status
        if last is not None and (last.basis, last.system_peer, last.falsetickers) == (
            status.basis,
            status.system_peer,
            status.falsetickers,
        ):
            return
        log.log(logging.WARNING if status.falsetickers else logging.INFO, "time source: %s", status.summary())
        for line in status.source_lines():
            log.debug("  %s", line)

    def log_counters(self) -> None:
        c = self.server.counters
        log.info(
            "received %d, served %d, KoD %d, dropped %d %s",
            c.received,
            c.served,
            c.kod_sent,
            c.dropped_total,
            dict(sorted(c.dropped.items())),
        )

    def run(self) -> None:
        """Serve until :meth:`stop` (blocking, on this thread)."""
        self._start_status_thread()
        self.loop.run()

    def start_thread(self) -> None:
        """Serve on a background thread (tests), in the network namespace the appliance was built in.

        The upstream client opens a socket per request on the loop's thread: built inside a test's
        private namespace, the appliance must keep its packets (and name lookups) there.
        """

        def run() -> None:
            if self._netns is not None:
                self._netns.enter()
            self.run()

        self._thread = threading.Thread(target=run, name="stratum1", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.loop.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
            self._thread = None

    def close(self) -> None:
        if self._netns is not None:
            self._netns.close()
            self._netns = None
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("closing failed")
        self._closers = []
        for s in self.sockets:
            self.loop.remove_reader(s)
            s.close()
        self.sockets = []
        self.loop.close()

    def __enter__(self) -> Appliance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close()


class _NetNs:
    """The network namespace a thread is in (Linux), to put another thread there (``setns``)."""

    _PATH = "/proc/thread-self/ns/net"
    _CLONE_NEWNET = 0x40000000

    def __init__(self, fd: int, inode: int) -> None:
        self.fd = fd
        self.inode = inode

    @classmethod
    def current(cls) -> _NetNs | None:
        try:
            fd = os.open(cls._PATH, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # not Linux: one namespace
        return cls(fd, os.fstat(fd).st_ino)

    def enter(self) -> None:
        """Move the calling thread into this namespace, if it is elsewhere (needs CAP_SYS_ADMIN then)."""
        try:
            if os.stat(self._PATH).st_ino == self.inode:
                return
        except OSError:
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self.fd, self._CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter the appliance's network namespace: {os.strerror(err)}")

    def close(self) -> None:
        os.close(self.fd)


class ListenError(OSError):
    """A listen address could not be bound; says which and why in one line."""

    def __init__(self, address: str, port: int, cause: OSError) -> None:
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        hint = ""
        if cause.errno == errno.EACCES and port < 1024:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port 11123)"
        elif cause.errno == errno.EADDRINUSE:
            hint = " (another NTP server is running: stop chronyd/ntpd/systemd-timesyncd, or pick --port)"
        super().__init__(cause.errno, f"cannot listen on {where}: {cause.strerror}{hint}")


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What :meth:`Appliance.reload` applied, and what changed that only a restart applies (in words)."""

    applied: tuple[str, ...]
    restart: tuple[str, ...]

    def summary(self) -> str:
        """One log line: "applied: restrict lines, servers; needs a restart: driftfile" (or "nothing changed")."""
        parts = []
        if self.applied:
            parts.append("applied: " + ", ".join(self.applied))
        if self.restart:
            parts.append("needs a restart: " + ", ".join(self.restart))
        return "; ".join(parts) or "nothing changed"


def upstream_hosts(config: Config) -> list[str]:
    """The upstream servers' hosts (``server``, ``pool``, ``peer`` lines that are not reference clocks)."""
    return [s.host for s in config.servers if s.refclock is None]


def _peers(config: Config) -> frozenset[str]:
    """The numeric addresses of the ``peer`` lines: they may ask in symmetric mode."""
    return frozenset(_numeric(s.host) for s in config.servers if s.kind == "peer" and _numeric(s.host))


def _gps_noselect(config: Config) -> bool:
    """True when the GPS's config line says ``noselect`` (watch it, never select it)."""
    drivers = {"nmea", "pps"}
    if any(r.noselect for r in config.refclocks if r.driver in drivers):
        return True
    return any(s.noselect for s in config.servers if s.refclock is not None and s.refclock[0] in (20, 22))


def _reads_realtime(clock: Clock | None, read_ns: Callable[[], int]) -> bool:
    """Whether the time served is the kernel's CLOCK_REALTIME as it stands (the compiled data plane's clock)."""
    if clock is None:
        return read_ns is time.time_ns
    return bool(getattr(clock, "reads_realtime", False))


def _numeric(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def _utc_date(t_ns: int) -> str:
    return datetime.datetime.fromtimestamp(t_ns // 1_000_000_000, datetime.UTC).strftime("%Y-%m-%d")
