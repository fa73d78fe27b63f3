"""``stratum1 exporter``: Prometheus metrics over HTTP, its own small process fed from the status socket.

Off by default (its unit, ``systemd/stratum1-exporter.service``, is not enabled), and bound to the address
given with ``--listen`` (a LAN address: it never picks the wildcard by itself). Every scrape reads one
snapshot from the daemon's status socket (:mod:`appliance.io.statussock`) and writes it with
``prometheus_client`` (:mod:`appliance.status.metrics` has the names); when the daemon does not answer the
scrape carries ``stratum1_up 0`` alone. The daemon never waits for this process: the socket is served by its
own thread with bounded buffers.

``prometheus_client`` is an optional dependency (``pip install stratum1[metrics]``; Debian
``python3-prometheus-client``).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from appliance.io.statusclient import DEFAULT_PATH, read_status
from appliance.status.metrics import families
from appliance.status.snapshot import Snapshot
from appliance.usage import OneLineParser

DEFAULT_PORT = 9123


class SnapshotCollector:
    """A ``prometheus_client`` collector: one status socket read per scrape."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            snap = Snapshot.from_json(read_status(self.socket_path, timeout_s=2.0))
        except (OSError, ValueError):
            yield GaugeMetricFamily("stratum1_up", "1 when the daemon's status socket answered", value=0.0)
            return
        yield GaugeMetricFamily("stratum1_up", "1 when the daemon's status socket answered", value=1.0)
        for f in families(snap):
            cls = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
            m = cls(f.name, f.help, labels=list(f.labels))
            for labels, value in f.samples:
                m.add_metric(list(labels), value)
            yield m


def exposition(socket_path: str) -> bytes:
    """One scrape's text exposition (what GET /metrics returns)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(socket_path))
    return bytes(generate_latest(registry))


def _listen(text: str) -> tuple[str, int]:
    return listen_address(text, DEFAULT_PORT)


def host_port(host: str, port: int) -> str:
    """``HOST:PORT`` as a URL writes it: an IPv6 address in brackets (``http://[::1]:9123/``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_address(text: str, default_port: int) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[ADDR]:PORT`` with a numeric address (argparse type; also ``stratum1 web``'s)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        ipaddress.ip_address(host)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a numeric address (the LAN one), [ADDR]:PORT or ADDR:PORT"
        ) from e
    try:
        number = int(port) if port else default_port
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: the port is not a number") from e
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 1..65535")
    return host, number


def main(argv: Sequence[str]) -> int:
    p = OneLineParser(prog="stratum1 exporter", description="Prometheus metrics from the status socket")
    p.add_argument(
        "--listen",
        required=True,
        type=_listen,
        metavar="ADDR[:PORT]",
        help=f"the (LAN) address to serve /metrics on; port default {DEFAULT_PORT}",
    )
    p.add_argument("--socket", default=DEFAULT_PATH, help=f"the daemon's status socket (default {DEFAULT_PATH})")
    args = p.parse_args(list(argv))
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        print("stratum1 exporter: needs prometheus_client (apt install python3-prometheus-client)", file=sys.stderr)
        return 2
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(args.socket))
    host, port = args.listen
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        print(f"stratum1 exporter: cannot listen on {host_port(host, port)}: {e.strerror}", file=sys.stderr)
        return 1
    where = host_port(host, port)
    print(f"stratum1 exporter: serving http://{where}/metrics from {args.socket}", file=sys.stderr, flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
    return 0
