#!/usr/bin/env python3
"""How long the real ``ntpq -c mrulist`` takes to read N clients from the appliance (the mode 6 rate limit).

    sudo python bench/mrulist_fetch.py [--clients 1000]

In a private network namespace: one appliance on 0.0.0.0:123 (the local clock; the compiled data plane
where it was built), N clients on 127.1.x.y sending one plain request each, then NTPsec's ntpq from
127.0.0.1 reading the whole list. Prints the entries in the table, ntpq's time and rows, and how many mode
6 requests the rate limit dropped meanwhile. First, in this process, what one READ_MRU answer (8
fragments) costs the serving thread with a full table (8192 clients), compiled and Python table: the
serving loop does nothing else meanwhile. Needs root and the referee tools (STRATUM1_INTEROP_ROOT,
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


def answer_cost() -> None:
    """Print what one READ_MRU answer from a full table costs, for each kind of table: the first answer (from
    the oldest) and one going on after the 100th newest entry (what ntpq asks next)."""
    from appliance.io import fastpath
    from appliance.ntp.mru import MAX_DEPTH, MruTable
    from appliance.timebase import ntp64_from_ns

    now = 1_795_000_000 * 10**9
    kinds = [("python", MruTable)] + ([("compiled", fastpath.FastMru)] if fastpath.available() else [])
    for name, make in kinds:
        table = make(MAX_DEPTH)
        for i in range(MAX_DEPTH):
            table.record(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 123, now - 10**9 + i, 0x23, 0)
        j = MAX_DEPTH - 100
        t = ntp64_from_ns(now - 10**9 + j)
        go_on = f", addr.0=10.{j >> 16 & 255}.{j >> 8 & 255}.{j & 255}:123, last.0=0x{t >> 32:08x}.{t & 0xFFFFFFFF:08x}"
        for what, extra in (("first", ""), ("going on", go_on)):
            size, times = _time_answers(table, extra.encode(), now)
            print(
                f"mrulist_fetch: one READ_MRU answer, {what} ({size} octets), {MAX_DEPTH} clients, {name} table: "
                f"median {times[len(times) // 2] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms ({len(times)} runs)"
            )


def _time_answers(table: object, extra: bytes, now: int) -> tuple[int, list[float]]:
    from appliance.ntp.mode6 import HEADER, OP_READ_MRU, OP_REQ_NONCE, ControlHandler
    from appliance.state import local_clock_state

    state = local_clock_state(10, -20, now)
    times = []
    size = 0
    for k in range(21):
        handler = ControlHandler()  # a fresh rate limit each time
        reply = handler.handle(HEADER.pack(0x16, OP_REQ_NONCE, 1, 0, 0, 0, 0), 0, state, now + k, "::1", table)  # type: ignore[arg-type]
        assert reply is not None
        data = reply[12 : 12 + HEADER.unpack_from(reply)[6]].strip() + b", frags=8" + extra
        request = HEADER.pack(0x16, OP_READ_MRU, 2, 0, 0, 0, len(data)) + data + b"\0" * (-len(data) % 4)
        start = time.perf_counter()
        answer = handler.handle(request, 0, state, now + k, "::1", table)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        assert answer is not None and answer[1] & 0x40 == 0, answer[:12]
        size = len(answer)
    return size, sorted(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="clients to put in the list (at most 65000)")
    args = p.parse_args()
    answer_cost()
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
