"""The ``stratum1`` command: serve, query, check-config, default-config; doctor and hw (the board).

Every failure a user can cause (a bad config, a port in use, a host that does
not answer) ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from appliance.config import Config, ConfigError, default_config_text, load_config, parse_config
from appliance.daemon import (
    LOOPBACK,
    NTP_PORT,
    SIMULATE_PORT,
    Appliance,
    ServeSettings,
    Simulation,
    listen_addresses,
)
from appliance.hw import command as hw_command
from appliance.io import systemd
from appliance.ntp.exchange import KissOfDeath, Measurement, client_request, evaluate
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE, PacketError
from appliance.refclock.setup import gps_setup, setup_warnings

log = logging.getLogger("stratum1")

DEFAULT_CONFIG = "/etc/stratum1/ntp.conf"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"stratum1: {e}", file=sys.stderr)
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stratum1", description="GPS time appliance: NTP server and tools")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="serve NTP (in the foreground)")
    s.add_argument("-c", "--config", help=f"ntp.conf to use (default {DEFAULT_CONFIG} if it exists, else built in)")
    s.add_argument("-l", "--listen", action="append", metavar="ADDR", help="address to serve on (repeatable)")
    s.add_argument("-p", "--port", type=int, help=f"UDP port (default {NTP_PORT})")
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
    s.add_argument("--rcvbuf", type=int, help="socket receive buffer in bytes")
    s.add_argument(
        "--no-fastpath",
        dest="fastpath",
        action="store_false",
        help="answer every request from the Python path (the compiled data plane stays unused)",
    )
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_serve)

    q = sub.add_parser("query", help="ask an NTP server for its time, like ntpdate -q")
    q.add_argument("server", metavar="HOST[:PORT]")
    q.add_argument("-n", "--samples", type=int, default=4, help="requests to send (best delay wins)")
    q.add_argument("-t", "--timeout", type=float, default=2.0, help="seconds to wait for each reply")
    q.set_defaults(func=cmd_query)

    c = sub.add_parser("check-config", help="parse an ntp.conf and report errors and warnings")
    c.add_argument("file")
    c.set_defaults(func=cmd_check_config)

    d = sub.add_parser("default-config", help="print the built-in configuration")
    d.set_defaults(func=cmd_default_config)

    # The board: appliance/hw/command.py has the subcommands; `doctor` is `hw doctor`.
    doc = sub.add_parser("doctor", help="check the GPS chain of this board (UART, console, PPS, NMEA, LCD)")
    hw_command.add_doctor_arguments(doc)
    doc.set_defaults(func=hw_command.run)
    hw = sub.add_parser("hw", help="board profiles: list, render, detect, doctor")
    hw_command.build_parser(hw)
    hw.set_defaults(func=hw_command.run)
    return p


# -- serve -----------------------------------------------------------------


def _load_serving_config(path: str | None) -> Config:
    if path:
        return load_config(path)
    if os.path.exists(DEFAULT_CONFIG):
        return load_config(DEFAULT_CONFIG)
    return parse_config(default_config_text(), "<built-in default>")


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
    config = _load_serving_config(args.config)
    for w in [*config.warnings, *setup_warnings(config)]:
        log.warning("%s", w)
    if args.simulate:
        listen = tuple(args.listen or LOOPBACK)
        port = args.port
        if port is None:
            port = NTP_PORT if _port_available(listen[0], NTP_PORT) else SIMULATE_PORT
    else:
        listen = listen_addresses(config, tuple(args.listen) if args.listen else None)
        port = args.port if args.port is not None else NTP_PORT
    clock = args.clock
    if clock is None:
        sources = gps_setup(config) is not None or any(s.refclock is None for s in config.servers)
        clock = "kernel" if sources and not args.simulate else "soft"
        if clock == "kernel" and not _may_set_clock():
            log.warning(
                "not allowed to steer the system clock (needs root or CAP_SYS_TIME): "
                "serving a software-corrected clock instead (--clock soft)"
            )
            clock = "soft"
    settings = ServeSettings(listen=listen, port=port, rcvbuf=args.rcvbuf, clock=clock, fastpath=args.fastpath)
    simulation = Simulation(receiver=args.simulate) if args.simulate else None
    app = Appliance(config, settings, simulation=simulation)
    try:
        where = ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in app.addresses)
        state = app.server.state
        what = f"stratum {state.stratum}, refid {state.refid.decode('ascii', 'replace').rstrip(chr(0))}"
        if app.timekeeper is not None and app.timekeeper.gps is not None:
            what = "waiting for the GPS (stratum 1 once pulses are numbered)"
        elif app.timekeeper is not None:
            what = "waiting for the upstream servers (their stratum + 1 once they answer)"
        elif not state.synchronised:
            what = "unsynchronised (no time source configured yet)"
        mode = f" (simulation: {args.simulate} GPS HAT, soft clock)" if args.simulate else ""
        print(f"stratum1: serving NTP on {where}{mode}: {what}", file=sys.stderr, flush=True)
        log.info("config %s", config.path)
        planes = sorted({s.data_plane for s in app.sockets})
        log.info("data plane: %s", ", ".join(planes) or "none")
        app.loop.on_signal(signal.SIGTERM, app.stop)
        app.loop.on_signal(signal.SIGINT, app.stop)
        app.loop.on_signal(signal.SIGUSR1, app.log_counters)
        systemd.notify("READY=1")
        app.run()
        app.log_counters()
    finally:
        app.close()
    return EXIT_OK


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
    host, port = parse_host_port(args.server)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise CommandError(f"cannot resolve {host}: {e.strerror}") from e
    family, _, _, _, addr = infos[0]
    best: Measurement | None = None
    last_error = "no reply"
    for i in range(max(1, args.samples)):
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
        raise CommandError(f"{args.server}: {last_error}")
    print(format_query(str(addr[0]), best))
    return EXIT_OK if best.synchronised else EXIT_FAILURE


# -- config ----------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    warnings = [*config.warnings, *setup_warnings(config)]
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


if __name__ == "__main__":
    sys.exit(main())
