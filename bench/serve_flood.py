#!/usr/bin/env python3
"""Serving benchmark: flood stratum1 and chronyd on loopback and compare what they sustain.

    python bench/serve_flood.py [--seconds S] [--rcvbuf B] [--address 127.0.0.1] ...

For each server (stratum1 as ``python -m appliance.cli serve``, and chronyd
4.x run with ``-x`` so it never touches the clock) it measures the CPU time
per reply at fixed offered rates (``--rates``, default 1k, 10k, 40k and 100k
requests/s), and it finds the highest
offered request rate answered with under 1 % loss, and prints, at that rate:
responses per second, p50/p99 response latency and the median and p99 of
|offset|. Client and server share one clock, so the offset a client measures
is the server's timestamp error. See bench/README.md for the method.

The load generator is bench/flood.c, compiled with ``gcc -O2`` into a
temporary directory at run time: one paced C process, each request's transmit
timestamp read right before its own send(2), replies read with recvmmsg(2)
and stamped by the kernel (SO_TIMESTAMPNS).

Traffic goes to the loopback address only; every run is bounded in rate and
time and stops by itself. The whole benchmark takes about a minute and a
half with the defaults.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The private copy .ci/install-interop unpacks (a wrapper that sets its library path), else an installed one.
INTEROP_ROOT = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop"))
CHRONYD_CANDIDATES = (str(INTEROP_ROOT / "bin/chronyd"), "/usr/sbin/chronyd")
RMEM_DEFAULT = Path("/proc/sys/net/core/rmem_default")
LOSS_LIMIT = 0.01
LIGHT_RATE = 1000.0
DISTURBED_CPU = 0.85  # a lossy step where the server used less of its CPU than this is run again
DISTURBED_RETRIES = 2
FINAL_TRIES = 4

# -- the load generator ----------------------------------------------------------


@dataclass
class Result:
    """One flood run against one server, as flood.c reports it (times in ns)."""

    target: float
    seconds: float
    sent: int
    recv: int
    loss: float
    send_rate: float
    resp_rate: float
    lat_p50: int
    lat_p99: int
    off_p50: int
    off_abs_p50: int
    off_abs_p99: int
    req_p50: int
    rep_p50: int
    kod: int
    bad: int
    client_drops: int
    cpu: float = 0.0  # server CPU seconds used during the run
    server_drops: int = 0  # datagrams the server's socket dropped (receive buffer full)

    @property
    def client_kept_up(self) -> bool:
        return self.send_rate >= 0.97 * self.target

    @property
    def passed(self) -> bool:
        return self.sent > 0 and self.loss < LOSS_LIMIT and self.client_kept_up and not self.bad

    @property
    def cpu_share(self) -> float:
        return self.cpu / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.recv / self.cpu if self.cpu > 0 else 0.0


def parse_flood(line: str) -> Result:
    if not line.startswith("FLOOD "):
        raise RuntimeError(f"flood: unexpected output {line!r}")
    kv = dict(item.split("=", 1) for item in line.split()[1:])
    ints = {
        "sent",
        "recv",
        "lat_p50",
        "lat_p99",
        "off_p50",
        "off_abs_p50",
        "off_abs_p99",
        "req_p50",
        "rep_p50",
        "kod",
        "bad",
        "client_drops",
    }
    fields = {}
    for name in Result.__dataclass_fields__:
        if name in ("cpu", "server_drops"):
            continue
        value = kv[name]
        fields[name] = int(value) if name in ints else float(value)
    return Result(**fields)  # type: ignore[arg-type]


def build_flood(tmp: Path) -> Path:
    exe = tmp / "flood"
    cmd = ["gcc", "-O2", "-Wall", "-o", str(exe), str(HERE / "flood.c")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"serve_flood: building the load generator failed:\n{done.stderr}")
    return exe


# -- the servers -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used, in seconds.

    The sum of its threads' ``sum_exec_runtime`` (/proc/PID/task/*/schedstat, in ns): the figure the
    kernel derives utime + stime from, without their clock-tick resolution (10 ms, 1 % of a second's
    CPU at 1000 replies/s). Where schedstat is missing, utime + stime from /proc/PID/stat.
    """
    try:
        return sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_memory(address: str, port: int) -> tuple[int, int]:
    """(receive buffer, drops) of the UDP socket bound to address:port, as ``ss -m`` reports them."""
    try:
        out = subprocess.run(["ss", "-uamnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1, -1
    rb = re.search(r"\brb(\d+)", out)
    drops = re.search(r"\bd(\d+)\)", out)
    return (int(rb.group(1)) if rb else -1, int(drops.group(1)) if drops else -1)


def free_udp_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    rcvbuf: int = -1
    results: list[tuple[str, Result]] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def launcher(cpu: int | None, nice: int, rt: int = 0) -> list[str]:
    """The command prefix that pins a process to ``cpu`` and gives it priority ``nice``.

    Run it with ``start_new_session=True``: with autogroup scheduling (the
    kernel default) a nice value only counts inside its session's group, so
    the prefix also sets the new session's group nice (/proc/self/autogroup).
    """
    cmd: list[str] = []
    if nice:
        cmd += ["sh", "-c", 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec "$@"', str(nice)]
        cmd += ["nice", "-n", str(nice)]
    if rt:
        cmd += ["chrt", "-f", str(rt)]
    if cpu is not None:
        cmd += ["taskset", "-c", str(cpu)]
    return cmd


def start_stratum1(
    tmp: Path, address: str, port: int, prefix: list[str], rcvbuf_arg: int | None, fastpath: bool = True
) -> Server:
    conf = tmp / "ntp.conf"
    conf.write_text(
        "# stratum1 serving benchmark: local clock at stratum 10, no rate limiting\n"
        "server 127.127.1.0\n"
        "fudge 127.127.1.0 stratum 10\n"
        "restrict default nomodify notrap nopeer noquery\n"
    )
    log = tmp / "stratum1.log"
    cmd = [*prefix, sys.executable, "-m", "appliance.cli", "serve", "-c", str(conf)]
    cmd += ["--listen", address, "--port", str(port), "--verbose"]
    if not fastpath:
        cmd.append("--no-fastpath")
    if rcvbuf_arg:
        cmd += ["--rcvbuf", str(rcvbuf_arg)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    server = Server("stratum1", port, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        plane = re.search(r"data plane: (\w+)", text)
        if "serving NTP on" in text and plane:
            print(f"serve_flood: stratum1 data plane: {plane.group(1)}", flush=True)
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    sys.exit(f"serve_flood: stratum1 did not start:\n{log.read_text(errors='replace')}")


def start_chronyd(tmp: Path, chronyd: str, address: str, port: int, prefix: list[str], flood: Path) -> Server:
    conf = tmp / "chrony.conf"
    conf.write_text(
        "# chronyd for the serving benchmark: local reference at stratum 8, no rate limiting\n"
        f"port {port}\n"
        f"bindaddress {address}\n"
        f"allow {address}\n"
        "local stratum 8\n"
        "cmdport 0\n"
        "bindcmdaddress /\n"
        f"pidfile {tmp / 'chronyd.pid'}\n"
    )
    log = tmp / "chronyd.log"
    cmd = [*prefix, chronyd, "-x", "-d", "-f", str(conf)]
    if os.geteuid() == 0:
        cmd[len(prefix) + 1 : len(prefix) + 1] = ["-u", "root"]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server("chronyd", port, proc, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        r = run_flood(flood, address, port, 200, 0.1, None, 0, grace_ms=100)
        if r.recv > 0 and r.kod == 0:
            return server
        time.sleep(0.2)
    server.stop()
    sys.exit(f"serve_flood: chronyd did not start answering:\n{log.read_text(errors='replace')}")


def run_flood(
    flood: Path,
    address: str,
    port: int,
    rate: float,
    seconds: float,
    cpu: int | None,
    nice: int,
    grace_ms: int = 300,
) -> Result:
    cmd = [*launcher(cpu, nice), str(flood), address, str(port), f"{rate:.0f}", f"{seconds:g}", str(grace_ms)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError(f"flood failed: {done.stderr.strip()}")
    return parse_flood(done.stdout.strip().splitlines()[-1])


def measure(server: Server, args: argparse.Namespace, flood: Path, rate: float, seconds: float) -> Result:
    """One flood run with the server's CPU time and socket drops around it."""
    pid = server.proc.pid
    if server.proc.poll() is not None:
        sys.exit(f"serve_flood: {server.name} exited:\n{server.log.read_text(errors='replace')}")
    _, d0 = socket_memory(args.address, server.port)
    c0 = cpu_seconds(pid)
    r = run_flood(flood, args.address, server.port, rate, seconds, args.client_cpu, args.nice)
    r.cpu = cpu_seconds(pid) - c0
    _, d1 = socket_memory(args.address, server.port)
    r.server_drops = d1 - d0 if d0 >= 0 and d1 >= 0 else -1
    return r


# -- the search ------------------------------------------------------------------


def search(args: argparse.Namespace) -> Generator[tuple[str, float, float], Result, None]:
    """Yield (phase, rate, seconds) and receive each run's result: probe, bisect, final.

    The probe floods at --max-rate; the server answers what it can, which
    gives a first guess at its capacity. Then rates are bisected (each step
    --seconds long) between the best rate that passed (< 1 % loss and the
    generator kept up) and the lowest that failed, until they are within 4 %
    or --steps are used. The final run, --final-seconds long, is at the best
    passing rate; if noise makes it fail, it is retried 8 % lower (up to
    FINAL_TRIES runs in all).
    """
    probe = yield "probe", args.max_rate, args.probe_seconds
    capacity = max(probe.resp_rate, 100.0)
    lo, hi = 0.0, float("inf")
    rate = _round(0.8 * capacity)
    for _ in range(args.steps):
        r = yield "step", rate, args.seconds
        if r.passed:
            lo = rate
        else:
            hi = rate
        if hi != float("inf") and lo > 0 and (hi - lo) / hi < 0.04:
            break
        if hi == float("inf"):
            rate = _round(rate * 1.25)
        elif lo == 0:
            rate = _round(rate * 0.6)
        else:
            rate = _round((lo + hi) / 2)
    if lo == 0:
        lo = _round(rate)
    for _ in range(FINAL_TRIES):
        r = yield "final", lo, args.final_seconds
        if r.passed:
            return
        lo = _round(lo * 0.92)


def _round(rate: float) -> float:
    step = 100 if rate < 20_000 else 500
    return max(step, round(rate / step) * step)


# -- output ----------------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} us"


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def step_line(name: str, phase: str, r: Result) -> str:
    ok = "ok" if r.passed else ("client-limited" if not r.client_kept_up else "LOSS")
    return (
        f"  {name:<9} {phase:<6} offer {r.target:>9.0f}/s  sent {r.send_rate:>9.0f}/s  resp {r.resp_rate:>9.0f}/s  "
        f"loss {r.loss * 100:6.2f}%  p50 {ms(r.lat_p50)}  p99 {ms(r.lat_p99)}  "
        f"med|off| {us(r.off_abs_p50)}  cpu {r.cpu_share * 100:3.0f}%  sock drops {r.server_drops}  {ok}"
    )


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def us_per_reply(r: Result) -> float:
    return r.cpu / r.recv * 1e6 if r.recv else float("nan")


def print_rate_table(servers: list[Server], fixed: dict[tuple[str, float], list[Result]], rates: list[float]) -> None:
    """CPU time per reply at each fixed offered rate, both servers, and the highest rate under 1 % loss."""
    print()
    print("CPU time per reply at fixed offered rates (median of the runs; range in brackets):")
    print(
        f"{'offered/s':>9}  {'server':<9} {'runs':>4} {'replies/s':>10} {'loss':>7} {'cpu':>5} "
        f"{'us/reply':>9} {'(min - max)':>15} {'median|off|':>12}"
    )
    per: dict[tuple[str, float], float] = {}
    for rate in rates:
        for s in servers:
            runs = fixed.get((s.name, rate), [])
            if not runs:
                continue
            costs = [us_per_reply(r) for r in runs]
            per[(s.name, rate)] = cost = median(costs)
            print(
                f"{rate:>9.0f}  {s.name:<9} {len(runs):>4} {median([r.resp_rate for r in runs]):>10.0f} "
                f"{median([r.loss for r in runs]) * 100:>6.2f}% {median([r.cpu_share for r in runs]) * 100:>4.0f}% "
                f"{cost:>9.2f} {f'({min(costs):.2f} - {max(costs):.2f})':>15} "
                f"{us(median([float(r.off_abs_p50) for r in runs])):>12}"
            )
    best: dict[str, float] = {}
    for s in servers:
        final = [r for phase, r in s.results if phase == "final" and r.passed]
        if final:
            best[s.name] = final[-1].resp_rate
    if best:
        print()
        print(
            "highest rate with < 1% loss (final run): "
            + ", ".join(f"{name} {rate:.0f}/s" for name, rate in best.items())
        )
    names = [s.name for s in servers]
    if "stratum1" in names and "chronyd" in names:
        verdicts = []
        for rate in rates:
            ours, theirs = per.get(("stratum1", rate)), per.get(("chronyd", rate))
            if ours is None or theirs is None:
                continue
            verdicts.append(f"{rate:.0f}/s {ours / theirs:.2f} ({'met' if ours <= theirs else 'NOT met'})")
        print("stratum1/chronyd CPU per reply (target <= 1): " + "; ".join(verdicts))


def print_table(servers: list[Server], light: dict[str, Result], probes: dict[str, Result]) -> None:
    print()
    print("at the highest offered rate with < 1% loss (final run):")
    head = (
        f"{'server':<10} {'rcvbuf':>7} {'sustained/s':>12} {'loss':>6} {'p50 lat':>10} {'p99 lat':>10} "
        f"{'median|off|':>12} {'p99|off|':>10} {'med off':>9} {'cpu':>5}"
    )
    print(head)
    finals: dict[str, Result] = {}
    for s in servers:
        final = [r for phase, r in s.results if phase == "final"]
        if not final:
            continue
        r = final[-1]
        finals[s.name] = r
        mark = "" if r.passed else " (failed)"
        print(
            f"{s.name:<10} {s.rcvbuf:>7} {r.resp_rate:>12.0f} {r.loss * 100:>5.2f}% {ms(r.lat_p50):>10} "
            f"{ms(r.lat_p99):>10} {us(r.off_abs_p50):>12} {us(r.off_abs_p99):>10} {us(r.off_p50):>9} "
            f"{r.cpu_share * 100:>4.0f}%{mark}"
        )
    print()
    print(f"light load ({LIGHT_RATE:.0f}/s) and saturation probe (flood at the generator's limit):")
    print(
        f"{'server':<10} {'p50 lat':>10} {'median|off|':>12} {'p99|off|':>10} {'med off':>9}   "
        f"{'sat resp/s':>10} {'cpu':>5} {'resp/cpu-s':>11} {'us/resp':>8}"
    )
    for s in servers:
        lr, pr = light.get(s.name), probes.get(s.name)
        if lr is None or pr is None:
            continue
        per = pr.per_cpu_second
        print(
            f"{s.name:<10} {ms(lr.lat_p50):>10} {us(lr.off_abs_p50):>12} {us(lr.off_abs_p99):>10} "
            f"{us(lr.off_p50):>9}   {pr.resp_rate:>10.0f} {pr.cpu_share * 100:>4.0f}% {per:>11.0f} "
            f"{(1e6 / per if per else 0):>8.2f}"
        )
    for s in servers:
        if any(not r.client_kept_up and r.loss < LOSS_LIMIT for _, r in s.results):
            print(f"note: the generator could not offer more for {s.name}: it may sustain a higher rate")
    ours, theirs = finals.get("stratum1"), finals.get("chronyd")
    if ours is not None and theirs is not None and theirs.resp_rate > 0:
        ratio = ours.resp_rate / theirs.resp_rate
        print()
        print(
            f"stratum1/chronyd sustained rate: {ratio:.2f} (target >= 1: {'met' if ratio >= 1 else 'NOT met'}); "
            f"stratum1 median |offset| {us(ours.off_abs_p50)} "
            f"(target < 1 us: {'met' if ours.off_abs_p50 < 1000 else 'NOT met'})"
        )


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each bisection step (default 3)")
    p.add_argument("--final-seconds", type=float, default=5.0, help="length of the reported run (default 5)")
    p.add_argument("--probe-seconds", type=float, default=1.5, help="length of the saturation probe (default 1.5)")
    p.add_argument("--steps", type=int, default=6, help="bisection steps per server (default 6)")
    p.add_argument("--max-rate", type=float, default=1e6, help="offered rate of the saturation probe")
    p.add_argument(
        "--rcvbuf",
        type=int,
        help="server receive buffer (the kernel's sk_rcvbuf, as ss -m shows it) for both servers; "
        "default: the kernel's net.core.rmem_default, which both then use unchanged. A different "
        "value sets net.core.rmem_default for the run (root) and restores it",
    )
    p.add_argument("--address", default="127.0.0.1", help="loopback address to serve on (127.0.0.1 or ::1)")
    p.add_argument("--servers", default="stratum1,chronyd", help="comma-separated: stratum1, chronyd")
    p.add_argument(
        "--no-fastpath",
        action="store_true",
        help="serve stratum1 from its Python path only (stratum1 serve --no-fastpath), for comparison",
    )
    p.add_argument(
        "--rates",
        default="1000,10000,40000,100000",
        help="fixed offered rates (requests/s, comma-separated) at which to measure each server's CPU time "
        "per reply (default 1000,10000,40000,100000; empty: skip)",
    )
    p.add_argument("--rate-seconds", type=float, default=5.0, help="length of each fixed-rate run (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="fixed-rate runs per server and rate (default 3)")
    p.add_argument(
        "--no-search",
        action="store_true",
        help="skip the search for the highest rate under 1%% loss (only the fixed rates)",
    )
    p.add_argument("--chronyd", help="chronyd binary (default: the interop copy or /usr/sbin/chronyd)")
    p.add_argument("--server-cpu", type=int, default=1, help="CPU for the servers (taskset; -1: no pinning)")
    p.add_argument("--client-cpu", type=int, default=0, help="CPU for the load generator (-1: no pinning)")
    p.add_argument(
        "--nice", type=int, default=-10, help="nice value for servers and generator (root only; 0: leave it)"
    )
    p.add_argument(
        "--rt",
        type=int,
        default=0,
        metavar="PRIO",
        help="run both servers SCHED_FIFO at this priority (root; the kernel's RT throttling still "
        "leaves others 5%%): less noise on a busy machine, at their expense. Default 0: off",
    )
    args = p.parse_args(argv)
    if not ipaddress.ip_address(args.address).is_loopback:
        p.error("--address must be a loopback address")
    if (os.cpu_count() or 1) < 2 or args.server_cpu < 0 or args.client_cpu < 0:
        args.server_cpu = args.client_cpu = None
    if os.geteuid() != 0:
        args.nice = args.rt = 0
    args.names = [n.strip() for n in args.servers.split(",") if n.strip()]
    args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    for n in args.names:
        if n not in ("stratum1", "chronyd"):
            p.error(f"unknown server {n!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chronyd = args.chronyd or next((c for c in CHRONYD_CANDIDATES if os.access(c, os.X_OK)), None)
    if "chronyd" in args.names and chronyd is None:
        print("serve_flood: chronyd not found: benchmarking stratum1 alone", file=sys.stderr)
        args.names.remove("chronyd")
    if shutil.which("gcc") is None:
        sys.exit("serve_flood: gcc is needed to build the load generator (bench/flood.c)")

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # still clean up (sysctl, servers)
    tmp = Path(tempfile.mkdtemp(prefix="stratum1-bench-"))
    servers: list[Server] = []
    old_rmem: str | None = None
    try:
        flood = build_flood(tmp)
        kernel_default = int(RMEM_DEFAULT.read_text())
        rcvbuf = args.rcvbuf or kernel_default
        if rcvbuf != kernel_default:
            if os.geteuid() != 0:
                sys.exit("serve_flood: --rcvbuf other than net.core.rmem_default needs root (it sets the sysctl)")
            old_rmem = RMEM_DEFAULT.read_text()
            RMEM_DEFAULT.write_text(f"{rcvbuf}\n")
        prefix = launcher(args.server_cpu, args.nice, args.rt)
        print(f"serve_flood: load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
        print(
            f"serve_flood: {os.cpu_count()} CPUs; servers on CPU {args.server_cpu}, generator on CPU "
            f"{args.client_cpu}, nice {args.nice}{f', servers SCHED_FIFO {args.rt}' if args.rt else ''}; "
            f"receive buffer {rcvbuf} "
            f"(net.core.rmem_default{' set for this run' if old_rmem else ''}); "
            f"{args.seconds:g} s steps, {args.final_seconds:g} s final runs",
            flush=True,
        )
        for name in args.names:
            port = free_udp_port(args.address)
            if name == "stratum1":
                servers.append(start_stratum1(tmp, args.address, port, prefix, None, not args.no_fastpath))
            else:
                assert chronyd is not None
                servers.append(start_chronyd(tmp, chronyd, args.address, port, prefix, flood))
        for s in servers:
            s.rcvbuf, _ = socket_memory(args.address, s.port)
            if s.rcvbuf != rcvbuf:
                print(f"serve_flood: warning: {s.name} has receive buffer {s.rcvbuf}, not {rcvbuf}", flush=True)

        light: dict[str, Result] = {}
        probes: dict[str, Result] = {}
        for s in servers:  # warm up (and light-load accuracy)
            measure(s, args, flood, LIGHT_RATE, 0.3)
            light[s.name] = r = measure(s, args, flood, LIGHT_RATE, 1.0)
            print(step_line(s.name, "light", r), flush=True)

        # Fixed rates: the servers take turns (the order swapped every round), so that background
        # load on a shared machine falls on both alike.
        fixed: dict[tuple[str, float], list[Result]] = {}
        for rnd in range(args.repeats if args.rate_list else 0):
            for rate in args.rate_list:
                for s in servers if rnd % 2 == 0 else list(reversed(servers)):
                    r = measure(s, args, flood, rate, args.rate_seconds)
                    fixed.setdefault((s.name, rate), []).append(r)
                    print(step_line(s.name, "fixed", r) + f"  {us_per_reply(r):.2f} us/reply", flush=True)
                    time.sleep(0.2)

        # The servers take turns, one step each, so that background load on a shared
        # machine falls on both alike.
        searches = {s.name: search(args) for s in servers} if not args.no_search else {}
        pending = {s.name: next(searches[s.name]) for s in servers if s.name in searches}
        while pending:
            for s in servers:
                job = pending.get(s.name)
                if job is None:
                    continue
                phase, rate, seconds = job
                r = measure(s, args, flood, rate, seconds)
                for _ in range(DISTURBED_RETRIES):
                    if phase == "probe" or r.passed or r.cpu_share >= DISTURBED_CPU:
                        break
                    # Lost packets while the server had CPU to spare: something else had
                    # its CPU (a shared machine) or it stalled. Count the step only if it
                    # happens again.
                    print(step_line(s.name, phase, r) + " (server CPU starved? again)", flush=True)
                    time.sleep(0.2)
                    r = measure(s, args, flood, rate, seconds)
                s.results.append((phase, r))
                if phase == "probe":
                    probes[s.name] = r
                print(step_line(s.name, phase, r), flush=True)
                try:
                    pending[s.name] = searches[s.name].send(r)
                except StopIteration:
                    del pending[s.name]
                time.sleep(0.2)
        if searches:
            print_table(servers, light, probes)
        if fixed:
            print_rate_table(servers, fixed, args.rate_list)
        print(f"serve_flood: load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])} at the end")
    finally:
        for s in servers:
            s.stop()
        if old_rmem is not None:
            RMEM_DEFAULT.write_text(old_rmem)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
