"""Interleaved mode (RFC 9769) against basic mode: the offsets a chronyd client measures over loopback.

Client and servers read the same host clock, so every offset the client
measures is error: the asymmetry between when the server's transmit
timestamp says the reply left and when it did. The script runs, for each
server (``stratum1 serve`` serving the local clock, and ``chronyd`` with
``local stratum 8`` as the reference) and each mode (``xleave`` or not), one
``chronyd -x -d`` client polling 8 times a second for ``--seconds``, and
prints from its measurements log the count of replies in each mode (4B basic,
4I interleaved) and the median, 90th percentile and maximum of |offset| and
the median delay. Nothing here touches the clock (every chronyd has ``-x``,
no command port or socket); only loopback ports are used.

    python bench/interleave.py                  # 30 s per run, 4 runs
    python bench/interleave.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHRONYD = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop")) / "bin" / "chronyd"
LOCAL_CONF = (
    "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nrestrict default nomodify notrap nopeer noquery\n"
    "restrict 127.0.0.1\n"  # the local clock is told to clients a default entry matches as unsynchronised
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_stratum1(work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "ntp.conf"
    conf.write_text(LOCAL_CONF)
    cmd = [sys.executable, "-m", "appliance", "serve", "-c", str(conf), "-l", "127.0.0.1", "-p", str(port)]
    cmd += ["--status-socket", "none", "--log", "stderr"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(work / "stratum1.log", "wb"))


def start_chronyd_server(chronyd: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "server.conf"
    conf.write_text(
        f"port {port}\nlocal stratum 8\nallow 127.0.0.1\ncmdport 0\nbindcmdaddress /\npidfile {work}/server.pid\n"
    )
    return subprocess.Popen(
        [str(chronyd), "-x", "-d", "-f", str(conf), "-u", "root"],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "server.log", "wb"),
    )


def measure(chronyd: Path, work: Path, port: int, xleave: bool, seconds: float) -> list[list[str]]:
    run = work / ("xleave" if xleave else "basic")
    run.mkdir()
    conf = run / "client.conf"
    conf.write_text(
        f"server 127.0.0.1 port {port} minpoll -3 maxpoll -3{' xleave' if xleave else ''}\n"
        f"cmdport 0\nbindcmdaddress /\npidfile {run}/client.pid\nlogdir {run}\nlog measurements\n"
    )
    client = subprocess.Popen(
        [str(chronyd), "-x", "-d", "-f", str(conf), "-u", "root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(seconds)
    finally:
        client.send_signal(signal.SIGTERM)
        client.wait(10)
    log = run / "measurements.log"
    return [ln.split() for ln in log.read_text().splitlines() if ln[:1].isdigit()] if log.exists() else []


def summary(rows: list[list[str]]) -> str:
    if not rows:
        return "no measurements"
    modes = [r[-3] for r in rows]
    offsets = sorted(abs(float(r[-9])) * 1e6 for r in rows)  # Offset column, in us
    delays = [float(r[-8]) * 1e6 for r in rows]
    p90 = offsets[int(0.9 * (len(offsets) - 1))]
    return (
        f"{len(rows):4d} replies ({modes.count('4B')} basic, {modes.count('4I')} interleaved); |offset| median "
        f"{statistics.median(offsets):6.2f} us, p90 {p90:6.2f} us, max {offsets[-1]:7.2f} us; "
        f"delay median {statistics.median(delays):6.2f} us"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="each client's run (default 30)")
    ap.add_argument("--chronyd", type=Path, default=CHRONYD)
    args = ap.parse_args()
    print(
        f"bench/interleave.py: chronyd client polling 8/s for {args.seconds:.0f} s per run, over loopback; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="stratum1-interleave-") as tmp:
        for name in ("stratum1", "chronyd"):
            work = Path(tmp) / name
            work.mkdir()
            port = free_port()
            server = (
                start_stratum1(work, port) if name == "stratum1" else start_chronyd_server(args.chronyd, work, port)
            )
            try:
                time.sleep(2.0)
                for xleave in (False, True):
                    rows = measure(args.chronyd, work, port, xleave, args.seconds)
                    print(f"{name:>8} {'xleave' if xleave else 'basic ':>6}: {summary(rows)}")
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(10)


if __name__ == "__main__":
    main()
