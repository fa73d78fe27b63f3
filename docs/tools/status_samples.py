#!/usr/bin/env python3
"""Print the sample outputs of docs/status.md: the real tools against a simulated appliance, healthy and sick.

    sudo python docs/tools/status_samples.py [--healthy-after 300] [--sick-after 40]

The set-up is tests/interop/test_status_ntpq.py's: a private network namespace holds the appliance under
test on 0.0.0.0:123 (``Simulation()``: the fake GPS HAT in a pty with PPS, the soft clock started 250 ms
wrong; an upstream server and the local clock configured, status socket in a temporary directory) and a
second appliance on 127.0.0.2:123 as that upstream (its local clock at stratum 2). Three clients on
127.0.0.3 .. 127.0.0.5 send 1, 2 and 3 plain requests (for the MRU list). After ``--healthy-after``
seconds it runs ntpq (``-p``, ``-c rv``, ``-c as``, ``-c "cv 1"``, ``-c mrulist``), ntpstat and ``stratum1
status`` / ``peers`` / ``status --line``; then it "unplugs" the GPS (``FakeGps.go_silent()`` and
``FakePps.stop()``: no sentences, no pulses), waits ``--sick-after`` seconds and runs them again. Output:
Markdown code blocks, ``$ command`` then what it printed, as docs/status.md shows them.

Needs root (network namespaces) and the referee tools that .ci/install-interop unpacks
(``STRATUM1_INTEROP_ROOT``, default /opt/stratum1-interop). Nothing leaves the namespace; the namespace and
both appliances go when it ends. Takes ``--healthy-after`` + ``--sick-after`` seconds and a little more.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "interop")]

import nsutil  # noqa: E402  (tests/interop: network namespaces by name, ended by this script)

from appliance.config import parse_config  # noqa: E402
from appliance.daemon import Appliance, ServeSettings, Simulation  # noqa: E402

TOOLS = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop")) / "bin"
MAIN_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict ::1
server 127.0.0.2 iburst
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""
UPSTREAM_CONF = """
restrict 127.0.0.1
server 127.127.1.0
fudge 127.127.1.0 stratum 2
"""
#: Client address -> plain requests it sends (they show in ``ntpq -c mrulist``).
CLIENTS = {"127.0.0.3": 1, "127.0.0.4": 2, "127.0.0.5": 3}
NTPQ = (["-p"], ["-c", "rv"], ["-c", "as"], ["-c", "cv 1"])


def start(ns: nsutil.NetNs, text: str, listen: str, simulation: Simulation | None, status: str | None) -> Appliance:
    config = parse_config(text, f"{listen}.conf")
    settings = ServeSettings(listen=(listen,), port=123, status_socket=status)
    app = ns.call(lambda: Appliance(config, settings, simulation=simulation))
    app.start_thread()
    return app


def client_requests(ns: nsutil.NetNs) -> None:
    for ip, n in CLIENTS.items():
        for _ in range(n):
            sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with sock:
                sock.bind((ip, 0))
                sock.settimeout(1.0)
                sock.sendto(b"\x23" + bytes(47), ("127.0.0.1", 123))
                try:
                    sock.recv(128)
                except TimeoutError:
                    pass


def block(command: str, argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    return f"```\n$ {command}\n{text.rstrip()}\n```\n"


def samples(ns: nsutil.NetNs, status: str, mrulist: bool) -> str:
    out = []
    for args in NTPQ:
        shown = " ".join(a if " " not in a else f'"{a}"' for a in args)
        out.append(block(f"ntpq {shown} 127.0.0.1", ns.cmd(str(TOOLS / "ntpq"), *args, "127.0.0.1")))
    if mrulist:
        out.append(block("ntpq -c mrulist 127.0.0.1", ns.cmd(str(TOOLS / "ntpq"), "-c", "mrulist", "127.0.0.1")))
    out.append(block("ntpstat", ns.cmd(str(TOOLS / "ntpstat"))))
    me = [sys.executable, "-m", "appliance"]
    for args in (["status"], ["peers"], ["status", "--line"]):
        out.append(block(f"stratum1 {' '.join(args)}", [*me, *args, "--socket", status]))
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--healthy-after", type=float, default=300.0, help="seconds before the healthy samples")
    p.add_argument("--sick-after", type=float, default=40.0, help="seconds after the GPS is unplugged")
    args = p.parse_args()
    if not nsutil.available():
        print("status_samples: network namespaces need root and iproute2", file=sys.stderr)
        return 2
    ns = nsutil.NetNs("st-doc")
    apps: list[Appliance] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            status = str(Path(tmp) / "status.sock")
            apps.append(start(ns, UPSTREAM_CONF, "127.0.0.2", None, None))
            main_app = start(ns, MAIN_CONF, "0.0.0.0", Simulation(), status)
            apps.append(main_app)
            time.sleep(5)
            client_requests(ns)
            time.sleep(max(0.0, args.healthy_after - 5))
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            print(f"## Healthy ({args.healthy_after:.0f} s after the start, {started})\n")
            print(samples(ns, status, mrulist=True))
            main_app.fakes["gps"].go_silent()
            main_app.fakes["pps"].stop()
            time.sleep(args.sick_after)
            print(f"## Sick (GPS unplugged {args.sick_after:.0f} s earlier)\n")
            print(samples(ns, status, mrulist=False))
            sys.stdout.flush()
    finally:
        for app in reversed(apps):
            app.stop()
            app.close()
        ns.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
