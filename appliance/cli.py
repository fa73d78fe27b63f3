"""The ``stratum1`` command: serve, query, status, peers, check-config, default-config, unit-devices; doctor, hw.

Every failure a user can cause (a bad config, a port in use, a host that does
not answer) ends in one line on stderr and a non-zero exit, never a
traceback. Every command-line value is checked by argparse with a type that
knows its range (:func:`port_number`, :func:`rcvbuf_bytes`,
:func:`timeout_seconds`, :func:`ip_address`...); a bad one is one line and
exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import math
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import statuscli
from appliance.config import Config, ConfigError, default_config_text, load_config, parse_config
from appliance.config.model import ConfigWarning
from appliance.hw import command as hw_command
from appliance.io import privilege, systemd
from appliance.io.statusclient import DEFAULT_PATH as STATUS_SOCKET
from appliance.ntp.exchange import KissOfDeath, Measurement, client_request, evaluate
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE, PacketError
from appliance.ntp.server import NTP_PORT
from appliance.refclock.setup import device_warnings, refclock_lines, setup_warnings
from appliance.usage import OneLineParser, parse_subcommand

if TYPE_CHECKING:  # the daemon (and all it imports) is loaded by 'serve' alone: check-config and query start fast
    from appliance.daemon import Appliance

log = logging.getLogger("stratum1")

DEFAULT_CONFIG = "/etc/stratum1/ntp.conf"
#: The name of the built-in configuration (``default.conf``) in messages; it has no file to read again.
BUILT_IN = "<built-in default>"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in _OWN_PARSERS:  # their own parsers (appliance/command.py); listed below for --help
        from appliance.command import main as entry

        return entry(words)
    parser = _parser()
    args = parse_subcommand(parser, argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        for line in str(e).split("\n"):  # a file with several bad lines: each on its own line
            print(f"stratum1: {line}", file=sys.stderr)
    except CommandError as e:
        print(f"stratum1: {e}", file=sys.stderr)
    except OSError as e:
        msg = e.strerror or str(e)
        if e.filename:
            msg = f"{e.filename}: {msg}"
        print(f"stratum1: {msg}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILURE


_Parser = OneLineParser  # errors in one line: ``stratum1 serve: ...``


# -- command-line values: each type checks its range; argparse turns ValueError into one line ----------

#: The socket receive buffer sizes ``--rcvbuf`` accepts, in bytes (the kernel caps it at net.core.rmem_max).
RCVBUF_RANGE = (4096, 1 << 30)
#: The longest ``query --timeout``, in seconds.
MAX_TIMEOUT_S = 60.0
#: The most requests ``query --samples`` sends.
MAX_SAMPLES = 64


def _whole(text: str, what: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or not lo <= int(text) <= hi:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number in {lo}..{hi}, not {text!r}")
    return int(text)


def port_number(text: str) -> int:
    """``--port``: 1..65535, or 0 for a port the kernel picks (tests; the log says which)."""
    return _whole(text, "a UDP port", 0, 65535)


def rcvbuf_bytes(text: str) -> int:
    """``--rcvbuf``: a receive buffer size in :data:`RCVBUF_RANGE` bytes."""
    return _whole(text, "a receive buffer size in bytes", *RCVBUF_RANGE)


def sample_count(text: str) -> int:
    """``query --samples``: 1..:data:`MAX_SAMPLES` requests."""
    return _whole(text, "the number of requests", 1, MAX_SAMPLES)


def timeout_seconds(text: str) -> float:
    """``query --timeout``: a finite number of seconds above 0 and at most :data:`MAX_TIMEOUT_S`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise argparse.ArgumentTypeError(
            f"a timeout must be seconds above 0 and at most {MAX_TIMEOUT_S:g}, not {text!r}"
        )
    return value


def ip_address(text: str) -> str:
    """``--listen``: a numeric IPv4 or IPv6 address (``fe80::1%eth0`` with its scope), normalised."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address") from None


def path_name(text: str) -> str:
    """A file name: not empty, no NUL (the file itself is checked when it is read)."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def server_address(text: str) -> tuple[str, int]:
    """``query``'s ``HOST[:PORT]``: :func:`parse_host_port`, its errors as argparse's."""
    try:
        host, port = parse_host_port(text)
    except CommandError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not host or len(host) > 253 or any(ch.isspace() or ch == "\0" for ch in host):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or address")
    return host, port


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stratum1", description="GPS time appliance: NTP server and tools")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="serve NTP (in the foreground)")
    s.add_argument(
        "-c",
        "--config",
        type=path_name,
        help=f"ntp.conf to use (default {DEFAULT_CONFIG} if it exists, else built in); SIGHUP reads it again",
    )
    s.add_argument(
        "-l", "--listen", action="append", metavar="ADDR", type=ip_address, help="address to serve on (repeatable)"
    )
    s.add_argument("-p", "--port", type=port_number, help=f"UDP port (default {NTP_PORT}; 0: any free port)")
    s.add_argument(
        "--simulate",
        nargs="?",
        const="mtk3339",
        choices=("mtk3339", "ublox-m8", "next-second"),
        metavar="RECEIVER",
        help="run without hardware: a simulated GPS HAT (mtk3339, ublox-m8, next-second), serving on loopback",
    )
    s.add_argument(
        "--clock",
        choices=("kernel", "soft"),
        help="clock to discipline: kernel (adjtimex, needs CAP_SYS_TIME) or soft (never touches the host clock); "
        "default kernel when a GPS is configured, soft with --simulate",
    )
    s.add_argument("-n", "--foreground", action="store_true", help="stay in the foreground (always the case)")
    s.add_argument("--log", choices=("auto", "stderr", "journal"), default="auto", help="where log lines go")
    s.add_argument(
        "--rcvbuf",
        type=rcvbuf_bytes,
        metavar="BYTES",
        help=f"socket receive buffer in bytes ({RCVBUF_RANGE[0]}..{RCVBUF_RANGE[1]})",
    )
    s.add_argument(
        "--no-fastpath",
        dest="fastpath",
        action="store_false",
        help="answer every request from the Python path (the compiled data plane stays unused)",
    )
    s.add_argument(
        "-u",
        "--user",
        metavar="USER",
        help="once the sockets are bound and the devices open, run as USER (its groups from /etc/group) keeping "
        "only CAP_SYS_TIME for the kernel clock, nothing otherwise (needs root; default: stay as started)",
    )
    s.add_argument(
        "--status-socket",
        metavar="PATH",
        help=f"the status socket for 'stratum1 status' (default {STATUS_SOCKET} if its directory exists; with "
        "--simulate, one of its own in a temporary directory, printed at start; 'none': off)",
    )
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_serve)

    q = sub.add_parser("query", help="ask an NTP server for its time, like ntpdate -q")
    q.add_argument("server", metavar="HOST[:PORT]", type=server_address)
    q.add_argument(
        "-n", "--samples", type=sample_count, default=4, help=f"requests to send, 1..{MAX_SAMPLES} (best delay wins)"
    )
    q.add_argument(
        "-t",
        "--timeout",
        type=timeout_seconds,
        default=2.0,
        help=f"seconds to wait for each reply (above 0, at most {MAX_TIMEOUT_S:g})",
    )
    q.set_defaults(func=cmd_query)

    c = sub.add_parser("check-config", help="parse an ntp.conf and report errors and warnings")
    c.add_argument("file", type=path_name)
    c.set_defaults(func=cmd_check_config)

    d = sub.add_parser("default-config", help="print the built-in configuration")
    d.set_defaults(func=cmd_default_config)

    u = sub.add_parser(
        "unit-devices", help="print the systemd drop-in (DeviceAllow=, SupplementaryGroups=) for a config's devices"
    )
    u.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"ntp.conf to read (default {DEFAULT_CONFIG})")
    u.set_defaults(func=cmd_unit_devices)

    # Status: appliance/statuscli.py reads the daemon's status socket (issue 10).
    st = sub.add_parser("status", help="is the time good? an ntpstat-like summary, GPS, leap table, alarms")
    statuscli.add_arguments(st, line=True)
    st.set_defaults(func=statuscli.run)
    pe = sub.add_parser("peers", help="the sources, as ntpq -p shows them")
    statuscli.add_arguments(pe, line=False)
    pe.set_defaults(func=statuscli.run)
    # These have parsers of their own: main() hands them their arguments before this parser runs.
    for name, text in _OWN_PARSERS.items():
        sub.add_parser(name, help=text, add_help=False)

    # The board: appliance/hw/command.py has the subcommands; `doctor` is `hw doctor`.
    doc = sub.add_parser("doctor", help="check the GPS chain of this board (UART, console, PPS, NMEA, LCD)")
    hw_command.add_doctor_arguments(doc)
    doc.set_defaults(func=hw_command.run)
    hw = sub.add_parser("hw", help="the board: " + ", ".join(hw_command.SUBCOMMANDS))
    hw_command.build_parser(hw)
    hw.set_defaults(func=hw_command.run)
    _status_readers(sub)
    return p


# -- serve -----------------------------------------------------------------


#: Commands with parsers of their own (appliance/exporter.py, appliance/plotcli.py, appliance/web/server.py).
_OWN_PARSERS = {
    "web": "the read-only status page for the LAN (stratum1 web --listen LAN-ADDR[:PORT])",
    "exporter": "Prometheus metrics from the status socket (stratum1 exporter --listen LAN-ADDR[:PORT])",
    "plot": "draw offset, jitter and frequency from the loopstats files (stratum1 plot -o FILE.svg)",
}


def _status_socket(requested: str | None) -> str | None:
    """The status socket's path: as asked ('none': off), else the default when its directory exists."""
    if requested is not None:
        return None if requested == "none" else requested
    return STATUS_SOCKET if os.path.isdir(os.path.dirname(STATUS_SOCKET)) else None


def _load_serving_config(path: str | None) -> Config:
    if path:
        return load_config(path)
    if os.path.exists(DEFAULT_CONFIG):
        return load_config(DEFAULT_CONFIG)
    return parse_config(default_config_text(), BUILT_IN)


def _config_file(config: Config) -> str | None:
    """The file SIGHUP reads again: the one ``config`` came from (None: the built-in default)."""
    return None if config.path == BUILT_IN else config.path


def _port_available(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def _may_set_clock(status: str = "/proc/self/status") -> bool:
    """True when this process may steer the system clock: CAP_SYS_TIME (bit 25) in its effective set."""
    try:
        for line in Path(status).read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 25 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def cmd_serve(args: argparse.Namespace) -> int:
    systemd.setup_logging(args.log, args.verbose)
    account = _account(args.user)  # -u: an unknown user or a switch not allowed fails here, before binding
    if account is not None and args.simulate:  # a simulation opens nothing privileged: switch before building it
        _drop_privileges(account, None)
        account = None
    # a signal during start-up waits for the loop, so every exit path cleans up
    held = HeldSignals(_SIGNALS)
    try:
        if not args.simulate or args.status_socket is not None:
            return _serve(args, account, _status_socket(args.status_socket), held)
        # a simulation never takes the installed daemon's socket: it serves its own, in a directory of its own
        status_dir = tempfile.mkdtemp(prefix="stratum1-sim-status-")
        try:
            return _serve(args, account, os.path.join(status_dir, "status.sock"), held)
        finally:
            shutil.rmtree(status_dir, ignore_errors=True)
    finally:
        held.release()


def _serve(
    args: argparse.Namespace, account: privilege.Account | None, status_socket: str | None, held: HeldSignals
) -> int:
    from appliance.daemon import LOOPBACK, SIMULATE_PORT, Appliance, ServeSettings, Simulation, listen_addresses

    config = _load_serving_config(args.config)
    for w in config_warnings(config, devices=not args.simulate):
        log.warning("%s", w)
    if args.simulate:
        listen = tuple(args.listen or LOOPBACK)
        port = args.port
        if port is None:
            port = NTP_PORT if _port_available(listen[0], NTP_PORT) else SIMULATE_PORT
    else:
        requested = tuple(args.listen) if args.listen else None
        found = wait_for_addresses(lambda again: listen_addresses(config, requested, quiet=again))
        if found is None:
            return 0  # stopped while waiting: nothing was served
        listen = found
        port = args.port if args.port is not None else NTP_PORT
    clock = args.clock
    if clock is None:
        sources = bool(refclock_lines(config)) or any(s.refclock is None for s in config.servers)
        clock = "kernel" if sources and not args.simulate else "soft"
        if clock == "kernel" and not _may_set_clock():
            log.warning(
                "not allowed to steer the system clock (needs root or CAP_SYS_TIME): "
                "serving a software-corrected clock instead (--clock soft)"
            )
            clock = "soft"
    settings = ServeSettings(
        listen=listen,
        port=port,
        rcvbuf=args.rcvbuf,
        clock=clock,
        fastpath=args.fastpath,
        status_socket=status_socket,
    )
    simulation = Simulation(receiver=args.simulate) if args.simulate else None
    app = Appliance(config, settings, simulation=simulation)
    try:
        if account is not None:  # -u: sockets bound, devices open, TAI offset set: switch now
            _drop_privileges(account, app)
        where = ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in app.addresses)
        state = app.server.state
        what = f"stratum {state.stratum}, refid {state.refid.decode('ascii', 'replace').rstrip(chr(0))}"
        if app.timekeeper is not None and app.timekeeper.refclocks:
            names = ", ".join(app.timekeeper.refclocks)
            what = f"waiting for the reference clocks {names} (stratum 1 once they give the time)"
        elif app.timekeeper is not None:
            what = "waiting for the upstream servers (their stratum + 1 once they answer)"
        elif not state.synchronised:
            what = "unsynchronised (no time source configured yet)"
        mode = f" (simulation: {args.simulate} GPS HAT, soft clock)" if args.simulate else ""
        print(f"stratum1: serving NTP on {where}{mode}: {what}", file=sys.stderr, flush=True)
        if args.simulate and app.status_socket is not None and app.status_socket != STATUS_SOCKET:
            option = f"--socket {app.status_socket}"
            print(f"stratum1: status: stratum1 status {option}, stratum1 peers {option}", file=sys.stderr, flush=True)
        log.info("config %s", config.path)
        planes = sorted({s.data_plane for s in app.sockets})
        log.info("data plane: %s", ", ".join(planes) or "none")
        handle_signals(app, _config_file(config))
        held.release()
        systemd.notify("READY=1")
        watchdog_s = systemd.watchdog_interval_s()
        if watchdog_s is not None:  # WatchdogSec=: pinged from the loop, so a stuck loop gets restarted
            app.loop.call_every(watchdog_s, lambda: systemd.notify("WATCHDOG=1"))
        app.run()
        app.log_counters()
    finally:
        held.release()
        app.close()
        log.info("stopped")
    return EXIT_OK


# -- signals -----------------------------------------------------------------

#: The signals the daemon handles: TERM and INT stop it, HUP reloads the configuration, USR1 logs the counters.
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


#: How often ``serve`` looks again for the addresses its ``interface listen`` lines name.
ADDRESS_RECHECK_S = 2.0


def wait_for_addresses(
    resolve: Callable[[bool], tuple[str, ...]],
    wait: Callable[[float], object] = lambda s: signal.sigtimedwait((signal.SIGTERM, signal.SIGINT), s),
) -> tuple[str, ...] | None:
    """``resolve(again)``, again every :data:`ADDRESS_RECHECK_S` while the ``interface listen`` lines name no address
    yet (:class:`~appliance.daemon.NoAddressYet`: an interface that DHCP has not given its address at boot),
    as ntpd binds an interface when it comes up; logged once. ``wait(seconds)`` returns something when a TERM
    or INT came meanwhile (start-up holds them: :class:`HeldSignals`): then None, and nothing is served."""
    from appliance.daemon import NoAddressYet

    said = False
    while True:
        try:
            return resolve(said)  # the lines' own warnings once, not every 2 s
        except NoAddressYet as e:
            if not said:
                log.warning("%s yet: waiting for one (looking again every %g s)", e, ADDRESS_RECHECK_S)
                said = True
        if wait(ADDRESS_RECHECK_S) is not None:
            log.info("stopped while waiting for an address to listen on")
            return None


class HeldSignals:
    """Blocks ``signals`` from now until :meth:`release` (idempotent): they stay pending, none is lost.

    Start-up holds them, so a TERM or HUP that arrives before the loop has
    its handlers is handled by the loop, after start-up, instead of ending
    the process with its temporary directories left behind.
    """

    def __init__(self, signals: Sequence[int]) -> None:
        self._signals = set(signals)
        self._held = True
        signal.pthread_sigmask(signal.SIG_BLOCK, self._signals)

    def release(self) -> None:
        if self._held:
            self._held = False
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self._signals)


def handle_signals(app: Appliance, config_file: str | None) -> None:
    """TERM and INT stop ``app`` (it then saves the drift file and removes what it made); HUP reads
    ``config_file`` again and applies it (:func:`reload_config`); USR1 logs the request counters.
    """

    def stop(name: str) -> None:
        log.info("%s: stopping", name)
        app.stop()

    app.loop.on_signal(signal.SIGTERM, lambda: stop("SIGTERM"))
    app.loop.on_signal(signal.SIGINT, lambda: stop("SIGINT"))
    app.loop.on_signal(signal.SIGHUP, lambda: reload_config(app, config_file))
    app.loop.on_signal(signal.SIGUSR1, app.log_counters)


def reload_config(app: Appliance, config_file: str | None) -> bool:
    """Read ``config_file`` again and apply it to ``app``; log what changed and what needs a restart.

    A configuration with an error is logged (file:line) and not applied: the
    appliance keeps serving with the one it has. Returns whether it was applied.
    """
    if config_file is None:
        log.warning("SIGHUP: serving the built-in configuration, there is no file to read again")
        return False
    try:
        config = load_config(config_file)
    except ConfigError as e:
        for line in str(e).split("\n"):
            log.error("SIGHUP: %s; still serving with the configuration read before", line)
        return False
    for w in config_warnings(config, devices=app.simulation is None):
        log.warning("%s", w)
    report = app.reload(config)
    log.info("SIGHUP: %s reloaded: %s", config_file, report.summary())
    return True


# -- least privilege (appliance/io/privilege.py) ------------------------------


def _account(name: str | None) -> privilege.Account | None:
    """The account ``-u`` names, checked: an unknown user, or not root and not that user, is a one-line error."""
    if name is None:
        return None
    try:
        account = privilege.resolve_account(name)
        privilege.check_switch(account)
    except privilege.PrivilegeError as e:
        raise CommandError(str(e)) from e
    return account


def _drop_privileges(account: privilege.Account, app: Appliance | None) -> None:
    """Become ``account`` with the capabilities ``app`` still uses (CAP_SYS_TIME for the kernel clock); log it."""
    try:
        credentials = privilege.drop_privileges(account, privilege.capabilities_for(app and app.clock))
    except privilege.PrivilegeError as e:
        raise CommandError(str(e)) from e
    files = [f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)]
    blocked = privilege.unreadable_module_path(files)
    if blocked is not None:  # the daemon imports more as it runs (build, reload): fail now rather than then
        raise CommandError(
            f"-u {account.name}: user {account.name} may not read {blocked}, where this Python and stratum1's "
            f"modules are: install them where {account.name} may read them (the Debian package's are in "
            f"/usr/lib/python3), or start without -u"
        )
    log.info("%s", privilege.describe(account, credentials))
    if app is not None and app.drift_file is not None and not os.access(app.drift_file.path.parent, os.W_OK):
        log.warning("%s is not writable by %s: the drift will not be saved", app.drift_file.path.parent, account.name)


# -- query -----------------------------------------------------------------


def parse_host_port(text: str, default_port: int = NTP_PORT) -> tuple[str, int]:
    """Split ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            return host, _port(rest[1:])
        return host, default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, _port(port)
    return text, default_port


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CommandError(f"bad port {text!r}")
    return int(text)


def query_once(addr: tuple[object, ...], family: int, timeout: float) -> Measurement:
    """Send one request to ``addr`` and evaluate the reply (raises PacketError, TimeoutError)."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        data, xmt = client_request(time.time_ns())
        s.send(data)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            reply = s.recv(2048)
            t4 = time.time_ns()
            try:
                return evaluate(reply, xmt, t4)
            except PacketError as e:
                if e.reason != "origin":
                    raise
                # not an answer to this request: keep waiting until the deadline


def format_query(host: str, m: Measurement) -> str:
    """Two lines: ntpdate -q's first line, then refid, leap and root figures."""
    leap = {LEAP_NONE: "none", LEAP_INSERT: "insert", LEAP_DELETE: "delete"}.get(m.leap, "unsynchronised")
    return (
        f"server {host}, stratum {m.stratum}, offset {m.offset_ns / 1e9:.6f}, delay {m.delay_ns / 1e9:.5f}\n"
        f"  refid {m.refid_text}, leap {leap}, root delay {m.root_delay_ns / 1e9:.6f}, "
        f"root dispersion {m.root_dispersion_ns / 1e9:.6f}, precision 2^{m.precision}"
    )


def cmd_query(args: argparse.Namespace) -> int:
    host, port = args.server
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise CommandError(f"cannot resolve {host}: {e.strerror}") from e
    family, _, _, _, addr = infos[0]
    best: Measurement | None = None
    last_error = "no reply"
    for i in range(args.samples):
        if i:
            time.sleep(0.2)
        try:
            m = query_once(addr, family, args.timeout)
        except KissOfDeath as e:
            raise CommandError(f"{host}: Kiss-o'-Death {e.code}: the server asks us to stop") from e
        except PacketError as e:
            last_error = f"bad reply: {e}"
            continue
        except TimeoutError:
            last_error = f"no reply within {args.timeout:g} s"
            continue
        except OSError as e:
            if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                last_error = e.strerror or str(e)
                continue
            raise
        if best is None or m.delay_ns < best.delay_ns:
            best = m
    if best is None:
        raise CommandError(f"{label}: {last_error}")
    print(format_query(str(addr[0]), best))
    return EXIT_OK if best.synchronised else EXIT_FAILURE


# -- config ----------------------------------------------------------------


def config_warnings(config: Config, *, devices: bool = True) -> list[ConfigWarning]:
    """Everything to warn about in ``config``: its lines, the GPS set-up, and (``devices``) the device files."""
    found = [*config.warnings, *setup_warnings(config)]
    if devices:
        found += device_warnings(config, _stat_mode) + file_warnings(config, _stat_mode)
    return found


def file_warnings(config: Config, stat_mode: Callable[[str], int]) -> list[ConfigWarning]:
    """A warning, with its line, for a ``leapfile`` that is not a file or a ``statsdir`` that is not a directory
    here (serve says the same later, without the line, when it cannot read or write them)."""
    out = []
    at = dict(config.paths_at)
    for name, path, want, kind, then in (
        ("leapfile", config.leapfile, stat.S_ISREG, "a file", "leap seconds cannot be read from it"),
        ("statsdir", config.statsdir, stat.S_ISDIR, "a directory", "statistics files cannot be written there"),
    ):
        if path is None or name not in at:
            continue
        try:
            mode = stat_mode(path)
        except FileNotFoundError:
            out.append(ConfigWarning(at[name], f"{name} {path} does not exist: {then}"))
            continue
        except OSError as e:
            out.append(ConfigWarning(at[name], f"{name} {path} cannot be checked: {e.strerror or e}"))
            continue
        if not want(mode):
            out.append(ConfigWarning(at[name], f"{name} {path} is not {kind}: {then}"))
    return out


def _stat_mode(path: str) -> int:
    return os.stat(path).st_mode


def listen_warnings(config: Config) -> list[ConfigWarning]:
    """What ``serve`` would say of the ``interface`` lines on this machine: each that names nothing here, and
    (when they all do) that it would refuse to serve rather than serve on every address."""
    from appliance.config.listen import listen_plan
    from appliance.io.ifaddrs import interface_addresses

    wanted = [x for x in config.listen if x.action == "listen"]
    if not config.listen:
        return []
    plan = listen_plan(config.listen, interface_addresses())
    found = list(plan.warnings)
    if not plan.addresses:
        found.append(
            ConfigWarning(
                wanted[0].location,
                "the 'interface listen' lines name no address of this machine: serve would refuse to start "
                "rather than serve on every address",
            )
        )
    return found


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    warnings = config_warnings(config) + listen_warnings(config)
    for w in warnings:
        print(w)
    refclocks = sum(1 for s in config.servers if s.refclock) + len(config.refclocks)
    print(
        f"{args.file}: OK: {len(config.servers) - sum(1 for s in config.servers if s.refclock)} servers/pools, "
        f"{refclocks} reference clocks, {len(config.restricts)} restrict lines, {len(warnings)} warnings"
    )
    return EXIT_OK


def cmd_default_config(args: argparse.Namespace) -> int:
    sys.stdout.write(default_config_text())
    return EXIT_OK


def cmd_unit_devices(args: argparse.Namespace) -> int:
    """The drop-in systemd/stratum1-devices.generator installs (appliance/io/unitdevices.py)."""
    from appliance.io.unitdevices import device_needs, render_dropin

    config = load_config(args.config)
    sys.stdout.write(render_dropin(device_needs(config), args.config))
    return EXIT_OK


# -- status readers: the display process and the Pool-readiness check (issue 13) ------------------------


def _status_readers(sub: argparse._SubParsersAction[_Parser]) -> None:
    from appliance.lcd import runner as lcd_runner

    lcd = sub.add_parser("lcd", help="show the status on an I2C LCD (HD44780 16x2/20x4) or OLED (SSD1306)")
    lcd_runner.add_arguments(lcd)
    lcd.set_defaults(func=lcd_runner.command)

    pc = sub.add_parser("pool-check", help="run what the NTP Pool's monitors run and predict the score they give")
    pc.add_argument("addresses", nargs="+", metavar="ADDRESS", help="the server's public address or name (all of its)")
    pc.add_argument("-p", "--port", type=port_number, default=NTP_PORT, help=f"its NTP port (default {NTP_PORT})")
    pc.add_argument("--source", type=ip_address, help="send from this address of this host (an outside one)")
    pc.add_argument("--netns", metavar="NAME", help="send from inside this network namespace (ip netns)")
    pc.add_argument(
        "--reference",
        action="append",
        type=server_address,
        metavar="HOST[:PORT]",
        help="a trusted upstream to measure offsets against (repeatable; default: this host's own clock)",
    )
    pc.add_argument("-n", "--checks", type=check_count, default=1, help="checks per address (1..20; default 1)")
    pc.add_argument(
        "--interval",
        type=check_interval,
        default=60.0,
        metavar="SECONDS",
        help="between checks of one address (10..900; default 60): the monitors check every few minutes, and "
        "checks closer together meet a rate limit that they never meet",
    )
    pc.set_defaults(func=cmd_pool_check)


def check_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of checks from 1 to 20")
    return n


def check_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 10 <= value <= 900:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 10 to 900")
    return value


def cmd_pool_check(args: argparse.Namespace) -> int:
    """Monitor-style checks of every address (appliance/io/poolcheck.py), scored by appliance/pool.py."""
    from appliance.io.poolcheck import monitor_check, open_socket, reference_offset
    from appliance.pool import CEILING, inside_kind, report

    if args.netns is not None and not os.path.exists(f"/run/netns/{args.netns}"):
        raise CommandError(f"no network namespace {args.netns!r} (/run/netns/{args.netns})")
    if args.source is not None:  # said once, here, rather than as a bare errno at the first check
        family = socket.AF_INET6 if ":" in args.source else socket.AF_INET
        try:
            open_socket(family, source=args.source, netns=args.netns).close()
        except OSError as e:
            where = f"in network namespace {args.netns}" if args.netns else "on this host"
            why = e.strerror or str(e)
            raise CommandError(
                f"--source {args.source}: {why} (it must be an address of an interface {where}: ip -br addr)"
            ) from e
    addresses: list[str] = []
    for name in args.addresses:
        try:
            infos = socket.getaddrinfo(name, args.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise CommandError(f"cannot resolve {name}: {e.strerror}") from e
        addresses += [str(i[4][0]) for i in infos if str(i[4][0]) not in addresses]
    inside = {a: kind for a in addresses if (kind := inside_kind(a)) is not None}
    for address, kind in inside.items():
        print(
            f"warning: {address} is a {kind} address: the Pool takes only public ones, and a check of it meets "
            "none of what its monitors meet (the router's port forward, the access lines for the outside world: "
            "loopback and local networks have their own); no verdict for it"
        )
    reference_ns, where = 0, "this host's clock (no --reference: trust it, or name trusted servers)"
    if args.reference:
        reference_ns, seen = reference_offset(args.reference, source=args.source, netns=args.netns)
        for line in seen:
            print(line)
        where = f"the references (this host is {reference_ns / 1e6:+.3f} ms off them)"
    checks = []
    for i in range(args.checks):
        if i:
            time.sleep(args.interval)
        for address in addresses:
            checks.append(
                monitor_check(address, args.port, source=args.source, netns=args.netns, reference_ns=reference_ns)
            )
    lines, lowest = report(checks, where)
    print("\n".join(lines))
    ready = lowest >= CEILING - 0.05 and not inside
    if inside and lowest >= CEILING - 0.05:
        print(
            f"verdict: none: {', '.join(inside)} cannot be checked as the Pool checks; run it against the public "
            "address from outside (a VPS, --source, --netns: docs/pool-check.md, Where to run it from)"
        )
    else:
        print("verdict: " + ("ready for the NTP Pool" if ready else "points lost: see above"))
    return EXIT_OK if ready else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
