#!/usr/bin/env python3
"""How long the real ``ntpq -c mrulist`` takes to read N clients from the appliance (the mode 6 rate limit).

    sudo python bench/mrulist_fetch.py [--clients 1000]

In a private network namespace: one appliance on 0.0.0.0:123 (the local clock; the compiled data plane
where it was built), N clients on 127.1.x.y sending one plain request each, then NTPsec's ntpq from
127.0.0.1 reading the whole list. Prints the entries in the table, ntpq's time and rows, and how many mode
6 requests the rate limit dropped meanwhile. Needs root and the referee tools (STRATUM1_INTEROP_ROOT,
default /opt/stratum1-interop). Nothing leaves the namespace.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "interop")]

import nsutil  # noqa: E402

from appliance.config import parse_config  # noqa: E402
from appliance.daemon import Appliance, ServeSettings  # noqa: E402

NTPQ = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop")) / "bin" / "ntpq"
CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="clients to put in the list (at most 65000)")
    args = p.parse_args()
    if not nsutil.available():
        print("mrulist_fetch: network namespaces need root and iproute2", file=sys.stderr)
        return 2
    ns = nsutil.NetNs("st-mrub")
    app: Appliance | None = None
    try:
        settings = ServeSettings(listen=("0.0.0.0",), port=123)
        app = ns.call(lambda: Appliance(parse_config(CONF, "bench.conf"), settings))
        app.start_thread()
        for i in range(args.clients):
            sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with sock:
                sock.bind((f"127.1.{i // 250}.{i % 250 + 1}", 0))
                sock.sendto(b"\x23" + bytes(47), ("127.0.0.1", 123))
        time.sleep(3)  # the replies gone, the mode 6 bucket full
        entries = len(app.server.mru.entries())
        dropped = app.server.control.rate_limited
        start = time.monotonic()
        out = subprocess.run(ns.cmd(str(NTPQ), "-n", "-c", "mrulist", "127.0.0.1"), capture_output=True, text=True)
        took = time.monotonic() - start
        rows = sum(1 for line in out.stdout.splitlines() if line[:1] == " " and line.strip()[:1].isdigit())
        print(f"mrulist_fetch: {entries} entries in the table ({args.clients} clients)")
        print(f"mrulist_fetch: ntpq -c mrulist took {took:.1f} s for {rows} rows (exit {out.returncode})")
        limited = app.server.control.rate_limited - dropped
        print(f"mrulist_fetch: mode 6 requests dropped by the rate limit meanwhile: {limited}")
        print(f"mrulist_fetch: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if app is not None:
            app.stop()
            app.close()
        ns.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
