"""``stratum1 web``: the read-only status page on a LAN address, served by the standard library.

Why the standard library (:mod:`wsgiref` with a thread per request) and not aiohttp: the page answers a few
people on a LAN, a handful of small requests every few seconds each; the standard library does that with no
dependency to package for Debian, audit and keep up to date on the appliance, and the application is plain
WSGI (:mod:`appliance.web.app`), so it could run behind any WSGI server if it ever needed more.

It binds to the one numeric address ``--listen`` names (no default, never the wildcard by itself: ``0.0.0.0``
or ``::`` must be asked for), reads the daemon's status socket at every page or JSON request and the
loopstats files for ``/plot.svg``. Requests are logged at debug level only (``--verbose``): the page polls.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from appliance.exporter import host_port, listen_address
from appliance.io.statusclient import DEFAULT_PATH, explain, read_status
from appliance.plotcli import DEFAULT_STATSDIR, load
from appliance.status.plot import svg
from appliance.usage import OneLineParser
from appliance.web.app import StatusApp

log = logging.getLogger("stratum1.web")

DEFAULT_PORT = 8123
PLOT_SPAN_S = 86400


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s " + format, self.address_string(), *args)


def day_plot(statsdir: str) -> str:
    end = time.time()
    points = load(statsdir, end - PLOT_SPAN_S, end)
    return svg(points, f"the last day: {len(points)} loopstats points")


def make_app(socket_path: str, statsdir: str) -> StatusApp:
    def status() -> bytes:
        try:
            return read_status(socket_path, timeout_s=2.0)
        except OSError as e:
            raise OSError(explain(socket_path, e)) from e

    return StatusApp(status, lambda: day_plot(statsdir))


def main(argv: Sequence[str]) -> int:
    p = OneLineParser(prog="stratum1 web", description="the read-only status page for the LAN")
    p.add_argument(
        "--listen",
        required=True,
        type=lambda text: listen_address(text, DEFAULT_PORT),
        metavar="ADDR[:PORT]",
        help=f"the numeric (LAN) address to serve on; port default {DEFAULT_PORT}",
    )
    p.add_argument("--socket", default=DEFAULT_PATH, help=f"the daemon's status socket (default {DEFAULT_PATH})")
    p.add_argument("--statsdir", default=DEFAULT_STATSDIR, help=f"the loopstats files (default {DEFAULT_STATSDIR})")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = p.parse_args(list(argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    host, port = args.listen
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(host, port, make_app(args.socket, args.statsdir), server_class, _Quiet)
    except OSError as e:
        print(f"stratum1 web: cannot listen on {host_port(host, port)}: {e.strerror}", file=sys.stderr)
        return 1
    bound = server.server_address
    where = host_port(host, bound[1])
    print(f"stratum1 web: serving http://{where}/ from {args.socket}", file=sys.stderr, flush=True)
    stopper = threading.Thread(target=server.serve_forever, daemon=True)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    stopper.start()
    while stopper.is_alive():
        stopper.join(0.5)
    server.server_close()
    return 0
