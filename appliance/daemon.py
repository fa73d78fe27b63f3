"""The composition root: the one place that picks backends and wires the appliance together.

An :class:`Appliance` owns its event loop, sockets, server core and sources;
the reference clocks' drivers, the leap-second table and the drift file are
started by :mod:`appliance.build`, the network-namespace plumbing of
:meth:`Appliance.start_thread` is :mod:`appliance.io.netns`;
nothing is global, so tests run two in one process. The CLI builds one from a
:class:`~appliance.config.model.Config` and :class:`ServeSettings` and runs
it; tests build one on loopback, run it in a thread and stop it.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from appliance.build import (
    BUILD_DATE_NS,
    Edge,
    PpsOpener,
    Running,
    Simulation,
    build_timekeeper,
    start_drift_file,
    start_leap_table,
    start_refclocks,
    utc_date,
    warn_if_expired,
)
from appliance.clock.base import Clock
from appliance.clock.discipline import Discipline
from appliance.clock.drift import DriftFile
from appliance.clock.soft import ClockMap, SoftClock
from appliance.config.changes import config_changes
from appliance.config.errors import ConfigError
from appliance.config.listen import ALL_ADDRESSES, listen_plan
from appliance.config.model import Config
from appliance.io.fastpath import mru_table, rate_limiter
from appliance.io.ifaddrs import interface_addresses
from appliance.io.loop import EventLoop
from appliance.io.netns import NetNs
from appliance.io.statsfiles import StatsWriter
from appliance.io.statussock import StatusServer
from appliance.io.udp import UdpServerSocket, compiled_wait, kernel_drops
from appliance.leap import find_leap_table, leap_to_serve, leapfile_signature
from appliance.nmea.link import SerialLink
from appliance.ntp.access import AccessTable, address_value
from appliance.ntp.keys import describe_keys
from appliance.ntp.mode6 import ControlHandler
from appliance.ntp.mru import MruTable
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer
from appliance.refclock.gps import GpsClock, NmeaRefclock
from appliance.refclock.local import LocalClock
from appliance.refclock.setup import RefclockLine, refclock_lines
from appliance.sources.client import Association, Reply, Upstreams
from appliance.sources.timekeeper import DEFAULT_HOLDOVER_BOUND_NS, Timekeeper, TimekeeperStatus
from appliance.state import UNSYNCHRONISED, SystemState
from appliance.status.clocks import ClockLine, clock_lines, clock_statuses, nmea_badformat
from appliance.status.collect import AssocIds, snapshot_from
from appliance.status.payload import status_line
from appliance.status.snapshot import ClockStatus, Snapshot
from appliance.status.text import leap_jump_line, lock_break_line, rollover_line
from appliance.timebase import log2_from_ns

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
#: How often (s) the leap-second file is looked at for a change (a stat, read again only when it changed).
LEAP_CHECK_S = 3600.0
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


__all__ = ["BUILD_DATE_NS", "Simulation"]  # serve --simulate and the rollover date live in appliance.build


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


class NoAddressYet(ConfigError):
    """The ``interface listen`` lines name no address of this machine now (an interface not up yet, an address
    not assigned yet): ``stratum1 serve`` waits for one (:func:`appliance.cli.wait_for_addresses`)."""


def listen_addresses(
    config: Config,
    requested: tuple[str, ...] | None,
    interfaces: Sequence[tuple[str, str]] | None = None,
    *,
    quiet: bool = False,
) -> tuple[str, ...]:
    """The addresses to bind: those asked for on the command line, else the config's ``interface`` lines.

    The lines are resolved against ``interfaces`` (``(name, address)`` pairs; None: this machine's, read
    only when a line needs them) by :func:`appliance.config.listen.listen_plan`; each line that names
    nothing here is logged with its file:line (not when ``quiet``: a look again). Lines that name nothing at
    all are a :class:`NoAddressYet`:
    serving on the wildcard instead would serve where the user said not to.
    """
    if requested:
        return requested
    lines = config.listen
    if interfaces is None:
        simple = all(x.action == "listen" and _literal(x.address) for x in lines)
        interfaces = () if simple else interface_addresses()
    plan = listen_plan(lines, interfaces)
    for w in () if quiet else plan.warnings:
        log.warning("%s", w)
    if not plan.addresses:
        where = ", ".join(str(x.location) for x in lines if x.action == "listen")
        raise NoAddressYet(
            f"nothing to listen on: the 'interface listen' lines ({where}) name no address of this machine"
        )
    return plan.addresses


def _literal(address: str) -> bool:
    """Whether an ``interface listen`` word needs no look at the machine's interfaces."""
    if address in ("all", "wildcard", "ipv4", "ipv6"):
        return True
    try:
        ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return True


class Appliance:
    """One running stratum1: config in, NTP served on the settings' addresses."""

    def __init__(
        self,
        config: Config,
        settings: ServeSettings,
        *,
        read_ns: Callable[[], int] = time.time_ns,
        simulation: Simulation | None = None,
        open_pps: PpsOpener | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.simulation = simulation
        base_read_ns = read_ns
        self._open_pps = open_pps  # None: the real devices (tests pass fakes: appliance.build.Edge)
        self.loop = EventLoop()
        self.precision = measure_precision(read_ns)
        self.local_clock = LocalClock.from_config(config)
        self.leap_table = start_leap_table(config.leapfile, read_ns())
        self._leap_signature = leapfile_signature(config.leapfile)
        self.loop.call_every(LEAP_CHECK_S, self.check_leap_file)
        self.loop.call_every(86_400.0, self._warn_daily_if_expired)
        self.clock: Clock | None = None
        self.timekeeper: Timekeeper | None = None
        self.drift_file: DriftFile | None = None
        self.fakes: dict[str, Any] = {}
        self._closers: list[Callable[[], Any]] = []
        self._netns = NetNs.current()  # start_thread() serves from here, whichever thread calls it
        from_kernel_ns: Callable[[int], int] | None = None
        lines = refclock_lines(config)
        self.refclocks: Running | None = None
        upstream = any(s.refclock is None for s in config.servers)
        if simulation is not None or lines or upstream:
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
        self._clock_lines: tuple[Config | None, tuple[ClockLine, ...]] = (None, ())
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
            mru=mru_table() if settings.fastpath else MruTable(),
            keys=config.keys,
        )
        self.sockets: list[UdpServerSocket] = []
        self._from_kernel_ns = from_kernel_ns
        # The compiled data plane reads CLOCK_REALTIME itself: when that is the clock served, or a soft clock
        # over it (then it maps its readings with the soft clock's map, handed over after every change).
        soft = self.clock if isinstance(self.clock, SoftClock) and base_read_ns is time.time_ns else None
        self._soft = soft if settings.fastpath and soft is not None and soft.clock_map() is not None else None
        realtime = from_kernel_ns is None and _reads_realtime(self.clock, read_ns)
        self._fast = settings.fastpath and (realtime or self._soft is not None)
        self._thread: threading.Thread | None = None
        try:  # whatever fails part-way, what was made so far (sockets, temporary directories) goes
            for address in settings.listen:
                self._open(address)
            if self._soft is not None:
                watched = self._soft
                watched.watch(self._follow_clock)
                self._closers.append(lambda: watched.unwatch(self._follow_clock))
            self.loop.set_wait(compiled_wait(self.sockets))  # plain requests answered in C, wait included
            if self.clock is not None:
                self._start_timekeeper(self.clock, lines, simulation)
            self.refresh_state()
        except BaseException:
            self.close()
            raise
        self.loop.call_every(1.0 if self.timekeeper else 16.0, self.refresh_state)
        self.loop.call_every(3600.0, self.log_counters)
        self._start_status(settings.status_socket)
        if config.keys_file is not None:
            log.info("keys: %s", describe_keys(config.keys, config.keys_file))

    def _follow_clock(self, clock_map: ClockMap | None) -> None:
        """The soft clock served changed: each socket's compiled plane maps its times with the new map."""
        for sock in self.sockets:
            sock.set_clock_map(clock_map)

    def _rate_limiter(self, config: Config) -> RateLimiter:
        """The table for ``discard``: the compiled one where the compiled data plane may serve."""
        return rate_limiter(config.discard) if self.settings.fastpath else RateLimiter(config.discard)

    # -- SIGHUP: a new configuration, applied where no restart is needed --------------------------------

    def reload(self, config: Config) -> ReloadReport:
        """Serve ``config`` from now on, as far as a running appliance can (see :mod:`appliance.config.changes`).

        Applied at once: ``restrict`` lines and ``discard`` (both data
        planes), upstream servers (associations added and removed), the
        local clock and ``localclock``, ``holdover``, the keys. Everything else that
        changed is named in the report's ``restart``. Call on the loop's thread.
        """
        changes = config_changes(self.config, config)
        restart = list(changes.restart)
        applied = []
        if changes.restricts or changes.discard or changes.servers:
            limiter = self._rate_limiter(config) if changes.discard else self.server.limiter
            access = AccessTable.from_rules(config.restricts, sources=self.server.access.sources)
            self.server.reconfigure(access, limiter, _peers(config))
            applied += ["restrict lines"] if changes.restricts else []
            applied += ["rate limits (discard)"] if changes.discard else []
        if changes.keys:
            self.server.keys = config.keys
            upstreams = self.timekeeper.upstreams if self.timekeeper is not None else None
            if upstreams is not None and not changes.servers:  # the same lines: their keys' new secrets
                upstreams.reconfigure(config.servers, time.monotonic_ns(), config.keys)
            applied.append("keys")
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
        if self.refresh_leap_table("SIGHUP"):  # read again at every SIGHUP, as the key file is
            applied.append("leap-second table")
        self.refresh_state()
        return ReloadReport(tuple(applied), tuple(restart))

    def check_leap_file(self) -> None:
        """Every :data:`LEAP_CHECK_S`: a leap-second file replaced or rewritten (a tzdata upgrade, a fresh
        download) is read again, as ntpd does, so that a leap second announced in it is served without a
        restart."""
        if leapfile_signature(self.config.leapfile) != self._leap_signature:
            self.refresh_leap_table("the leap-second file changed")

    def _warn_daily_if_expired(self) -> None:
        if self.leap_table is not None:
            warn_if_expired(self.leap_table, self.read_ns())

    def refresh_leap_table(self, why: str) -> bool:
        """Read the leap-second file again (``leapfile``, else tzdata's); take it when it loads and differs.

        A file that no longer loads leaves the table read before in use (logged). Returns whether the table
        changed; the served leap bits, and the kernel's TAI offset on the kernel clock, follow it."""
        self._leap_signature = leapfile_signature(self.config.leapfile)
        found = find_leap_table(self.config.leapfile)
        old, new = self.leap_table, found.table
        if new is None:
            for message in found.messages[:-1] if old is not None else found.messages:
                log.warning("%s: %s", why, message)
            if old is not None:
                log.warning("%s: still using the leap-second table read before (%s)", why, old.path)
            return False
        if old is not None and (old.path, old.updated_ns, old.expires_ns, old.entries) == (
            new.path,
            new.updated_ns,
            new.expires_ns,
            new.entries,
        ):
            return False
        now_ns = self.read_ns()
        self.leap_table = new
        if old is None:
            before = "there was none before"
        else:
            verb = "expired" if old.expired(now_ns) else "expires"
            before = f"the one before: {old.path}, {verb} {utc_date(old.expires_ns)}"
        log.info(
            "%s: leap-second table %s read again: TAI-UTC %d s, expires %s (%s)",
            why,
            new.path,
            new.tai_offset(now_ns),
            utc_date(new.expires_ns),
            before,
        )
        warn_if_expired(new, now_ns)
        if self.timekeeper is not None:
            self.timekeeper.leap = functools.partial(leap_to_serve, new)
        clock = self.clock
        if clock is not None and not isinstance(clock, SoftClock) and hasattr(clock, "set_tai_offset"):
            try:
                clock.set_tai_offset(new.tai_offset(now_ns))
            except OSError as e:
                log.warning("cannot set the kernel's TAI offset: %s", e)
        return True

    def _reload_upstreams(self, config: Config) -> bool:
        """Follow the new ``server``/``pool``/``peer`` lines; False when there is no clock they could steer."""
        tk = self.timekeeper
        if tk is None:
            return False
        if tk.upstreams is None:
            upstreams = Upstreams(config.servers, time.monotonic_ns(), precision=self.precision, keys=config.keys)
            tk.upstreams = upstreams
            self._start_upstreams(tk, upstreams)
            log.info("servers: now polling %s", ", ".join(upstream_hosts(config)) or "none")
            return True
        added, removed = tk.upstreams.reconfigure(config.servers, time.monotonic_ns(), config.keys)
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
                clock_map=self._soft.clock_map() if self._soft is not None else None,
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

    def _start_timekeeper(self, clock: Clock, lines: tuple[RefclockLine, ...], simulation: Simulation | None) -> None:
        """One timekeeper steers ``clock`` from the reference clocks, the upstream servers, the local clock.

        Any of them may be missing: no refclock lines (upstreams only), no
        ``server``/``pool`` lines (refclocks only). The timekeeper ticks every second.
        """
        discipline = self._start_drift_file(clock, simulation)
        tk = build_timekeeper(
            self.config,
            clock,
            precision=self.precision,
            now_ns=time.monotonic_ns(),  # io/ntpclient.py polls the servers on the monotonic clock
            discipline=discipline,
            leap_table=self.leap_table,
        )
        self.local_clock = tk.local
        upstreams = tk.upstreams
        self.timekeeper = tk
        self._status: TimekeeperStatus | None = None
        running = start_refclocks(Edge(self.loop, tk, self._from_kernel_ns, self._open_pps), lines, simulation)
        self.refclocks = running
        self._closers.append(running.close)
        self.fakes.update(running.fakes)
        if "NMEA(0) serial" in running.parts:
            self.serial = running.parts["NMEA(0) serial"]
        for line in lines:
            log.info("reference clock %s: %s driver (%s)", line.name, line.info.name, line.location)
        log.info("sources: %s", ", ".join(e.name for e in tk.estimates(clock.now_ns())) or "none")
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

    def _start_drift_file(self, clock: Clock, simulation: Simulation | None) -> Discipline:
        """The config's ``driftfile``, kept by the timers :func:`appliance.build.start_drift_file` sets."""

        def in_use() -> Discipline | None:  # Timekeeper.discipline: the loop in use now
            return self.timekeeper.discipline if self.timekeeper is not None else None

        drift, discipline = start_drift_file(
            self.loop, self.config.driftfile, clock, in_use, self._closers, private=simulation is not None
        )
        self.drift_file = drift
        return discipline

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

    def refresh_state(self) -> None:
        state = self.current_state(self.read_ns())
        if state != self.server.state:
            self.server.set_state(state)
        if self.timekeeper is not None and self.timekeeper.upstreams is not None:
            peers = _peers(self.config, self.timekeeper.upstreams)  # a peer line's name, once resolved
            if peers != self.server.peers:
                self.server.peers = peers
        self._apply_restrict_source()
        if self.timekeeper is not None:
            self._log_status(self.timekeeper.status())
        self.publish_status()

    def _apply_restrict_source(self) -> None:
        """``restrict source``: a host entry with its flags for each association's address, kept current as
        servers are resolved and pool servers come and go (ntpd adds and removes them with the associations)."""
        access = self.server.access
        if access.source_flags is None:
            return
        addresses = set(_peers(self.config))
        upstreams = self.timekeeper.upstreams if self.timekeeper is not None else None
        if upstreams is not None:
            addresses.update(a.address for a in upstreams.associations if _is_address(a.address))
        if addresses != access.sources:
            self.server.reconfigure(access.with_sources(addresses), self.server.limiter)

    # -- status (issue 10): the snapshot producer and the socket ------------------------------------

    def _first_gps(self) -> GpsClock | None:
        """The first NMEA receiver's pairing (fix, satellites, pulses) for the snapshot's GPS lines."""
        if self.refclocks is None:
            return None
        return next((p.gps for p in self.refclocks.parts.values() if isinstance(p, NmeaRefclock)), None)

    def _first_serial(self) -> SerialLink | None:
        """That receiver's serial port, as its driver sees it (None when the driver does not say: a fake's)."""
        if self.refclocks is None:
            return None
        parts = self.refclocks.parts
        name = next((n for n, p in parts.items() if isinstance(p, NmeaRefclock)), None)
        link = getattr(parts.get(f"{name} serial"), "link", None)
        return link() if callable(link) else None

    def _clocks(self) -> tuple[ClockStatus, ...]:
        """Each reference clock's own state (ntpq ``cv``): the config's say, its filter's and driver's counts."""
        from appliance.io.shm import ShmDriver  # as build.py: only where a shm line is configured is it used

        if self.timekeeper is None:
            return ()
        if self._clock_lines[0] is not self.config:
            self._clock_lines = (self.config, clock_lines(self.config))
        parts = self.refclocks.parts if self.refclocks is not None else {}
        badformat = {}
        gps_name = None
        for name, part in parts.items():
            if isinstance(part, NmeaRefclock) and gps_name is None:
                gps_name = name
            stream = getattr(part, "stream", None)  # an NMEA receiver's serial reader ("NMEA(0) serial")
            if name.endswith(" serial") and stream is not None:
                badformat[name.removesuffix(" serial")] = nmea_badformat(stream.counters)
            elif isinstance(part, ShmDriver):
                badformat[name] = part.counters()["bad_mode"]
        counters = {name: rs.counters for name, rs in self.timekeeper.refclocks.items()}
        return clock_statuses(self._clock_lines[1], counters, badformat, gps_name)

    def publish_status(self) -> None:
        """Build this second's snapshot (mode 6 reads it); hand it to the status socket and the statistics files."""
        previous = self.snapshot
        self.snapshot = snapshot_from(
            self.timekeeper,
            self.server.counters,
            self.read_ns(),
            ids=self._assoc_ids,
            started_ns=self.started_ns,
            version=VERSION,
            precision=self.precision,
            leap_table=self.leap_table,
            previous=previous,
            served=self.server.state,
            gps=self._first_gps(),
            serial=self._first_serial(),
            clocks=self._clocks(),
            queue_drops=kernel_drops(self.sockets),
        )
        broken = lock_break_line(previous, self.snapshot)
        if broken is not None:
            log.warning("%s", broken)
        repaired = rollover_line(previous, self.snapshot)
        if repaired is not None:
            log.warning("%s", repaired)
        leapt = leap_jump_line(previous, self.snapshot)
        if leapt is not None:
            log.warning("%s", leapt)
        if self._status_server is not None:
            self._status_server.publish(status_line(self.snapshot))
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
            why = e.strerror or str(e)
            log.warning("status socket %s: %s: this daemon's status is not served (--status-socket PATH)", path, why)
            return
        self._closers.append(self._status_server.close)
        self.publish_status()

    @property
    def status_socket(self) -> str | None:
        """The path the status socket listens on; None when there is none (off, or it could not be opened)."""
        return None if self._status_server is None else self._status_server.path

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
        self.loop.set_wait(None)
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


def _is_address(text: str) -> bool:
    try:
        address_value(text)
    except ValueError:
        return False
    return True


def _peers(config: Config, upstreams: Upstreams | None = None) -> frozenset[str]:
    """The addresses of the ``peer`` lines, which may ask in symmetric mode: the numeric ones, and the
    addresses ``upstreams`` resolved a ``peer`` line's host name to."""
    lines = [s for s in config.servers if s.kind == "peer" and s.refclock is None]
    numeric = {_numeric(s.host) for s in lines if _numeric(s.host)}
    names = {s.host for s in lines if not _numeric(s.host)}
    if names and upstreams is not None:
        numeric |= {a.address for a in upstreams.associations if a.host in names}
    return frozenset(numeric)


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
