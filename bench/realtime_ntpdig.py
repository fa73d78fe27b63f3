"""Benchmark: ``stratum1 serve --simulate`` read by a real NTP client in real time (issue 11, "What it must show").

The appliance runs with its simulated GPS HAT (fake receiver, fake PPS marking the host's true seconds) and its
soft clock, on 127.0.0.1:123 inside a network namespace this script creates (ntpdig only asks port 123); the
host clock is never touched. NTPsec's ntpdig (``/opt/stratum1-interop/bin/ntpdig``) reads it twice a second;
each read's offset is the served time against the host clock (both sides read ``CLOCK_REALTIME``), plus
ntpdig's own reading noise over loopback. After lock (the first read at stratum 1 within the bound) the reads
go on for ``--minutes``; the script prints p50/p90/max of |offset|, every read over the bound with its time and
ntpdig's +/- for it, and where the appliance's log is.

``--reference`` measures ntpdig's own floor side by side: a chronyd (``-x``: it never touches the clock;
``local stratum 1``: it serves the host clock as it is) on 127.0.0.1:123 in a second namespace, read by the
same ntpdig in turn with the appliance (each of the two first every other time). Its reads are the host clock
against itself: whatever they show beyond 0 is the client's and the loaded machine's, not the appliance's.

``--trace`` (one query per read) shows where each read's time went: a packet capture on each namespace's
loopback (``bench/lo_capture.py``) gives the kernel's time of the request and of the reply, and with the four
timestamps of the exchange (ntpdig's receive time worked back from its offset) each read splits into five
legs: the client's send (its transmit timestamp to the request on the wire), the server's receive (the request
on the wire to its receive timestamp), the server's residence, the server's send (its transmit timestamp to
the reply on the wire) and the client's receive (the reply on the wire to its receive time). The offset a read
shows is the served clock's own plus half of (client's send + server's receive - server's send - client's
receive).

Needs root (``ip netns``); prints figures, not a test. Run as
``sudo /work/venv/bin/python bench/realtime_ntpdig.py --minutes 20``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appliance.timebase import ns_from_ntp64

NTPDIG = "/opt/stratum1-interop/bin/ntpdig"
CHRONYD = "/opt/stratum1-interop/bin/chronyd"
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def read_once(ns: str | None, samples: int = 1, prefix: tuple[str, ...] = ()) -> tuple[float, int, float] | None:
    """One ntpdig read in ``ns``: (offset s, stratum, ntpdig's +/- s), or None when it got no usable answer.

    ``samples`` > 1 is ntpdig's ``-p``: that many queries 10 ms apart (``-g 10``), of which ntpdig reports the
    one with the smallest synchronisation distance, its way of reading through a busy client.

    The +/- (ntpdig's "precision" in JSON) is the synchronisation distance of the read: half the round trip plus
    the server's root dispersion; the true offset lies within it, so a read over the bound by less than it may be
    the loopback round trip (a client or server descheduled on the loaded machine), not the served time.
    """
    if ns is None:
        return None
    several = ("-p", str(samples), "-g", "10") if samples > 1 else ()
    dig = subprocess.Popen(
        ["ip", "netns", "exec", ns, *prefix, NTPDIG, "-j", "-t", "1", *several, "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = dig.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(dig.pid, signal.SIGKILL)  # its own session: only this ntpdig
        dig.communicate()
        return None
    lines = stdout.strip().splitlines()
    if dig.returncode != 0 or not lines:
        return None
    try:
        report = json.loads(lines[-1])
        return float(report["offset"]), int(report["stratum"]), float(report["precision"])
    except (ValueError, KeyError):
        return None


LEGS = ("client send", "server receive", "server residence", "server send", "client receive")


def trace_legs(capture: Path, windows: list[tuple[int, int, float | None]]) -> list[tuple[float, ...]]:
    """Each answered read's offset and five legs, us (see the module docstring), from ``lo_capture.py``'s lines.

    ``windows``: per read, the host time just before ntpdig started and just after it ended, and the offset it
    printed (None: no answer). A read's request is the one captured inside its window, its reply the one that
    carries the request's transmit timestamp as origin.
    """
    requests: list[tuple[int, int]] = []  # (capture ns, transmit timestamp)
    replies: dict[int, tuple[int, int, int]] = {}  # by origin: (capture ns, receive, transmit)
    for line in capture.read_text().splitlines():
        stamp, sport, dport, origin, receive, transmit = (int(f) for f in line.split())
        if dport == 123:
            requests.append((stamp, transmit))
        elif sport == 123:
            replies[origin] = (stamp, receive, transmit)
    legs: list[tuple[float, ...]] = []
    for start, end, offset in windows:
        if offset is None:
            continue
        mine = [(stamp, t1) for stamp, t1 in requests if start <= stamp <= end]
        if len(mine) != 1 or mine[0][1] not in replies:
            continue
        out_stamp, t1_raw = mine[0]
        back_stamp, t2_raw, t3_raw = replies[t1_raw]
        t1, t2, t3 = (ns_from_ntp64(raw, out_stamp) for raw in (t1_raw, t2_raw, t3_raw))
        t4 = t2 - t1 + t3 - 2 * offset * 1e9  # ntpdig's receive time, from the offset it printed
        legs.append(
            (
                offset * 1e6,
                (out_stamp - t1) / 1e3,
                (t2 - out_stamp) / 1e3,
                (t3 - t2) / 1e3,
                (back_stamp - t3) / 1e3,
                (t4 - back_stamp) / 1e3,
            )
        )
    return legs


def print_trace(label: str, legs: list[tuple[float, ...]], bound_us: float) -> None:
    print(f"where the time went, {label} ({len(legs)} reads traced), us:")
    for i, name in enumerate(LEGS, start=1):
        print("  " + percentiles(f"{name:16s}", [row[i] for row in legs]))
    over = [row for row in legs if abs(row[0]) > bound_us]
    for row in over[:20]:
        split = ", ".join(f"{name} {us:.0f}" for name, us in zip(LEGS, row[1:], strict=True))
        print(f"  over the bound: {row[0]:+.0f} = {split}")
    if len(over) > 20:
        print(f"  ... and {len(over) - 20} more over the bound")


def percentiles(label: str, values_us: list[float]) -> str:
    return (
        f"{label} p50 {percentile(values_us, 0.5):.1f} us, p90 {percentile(values_us, 0.9):.1f} us, "
        f"max {max(values_us):.1f} us"
    )


def new_namespace(tag: str) -> str:
    ns = f"s1-rt{tag}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    return ns


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="reading time after lock (default 20)")
    ap.add_argument("--bound-us", type=float, default=50.0, help="the bound every read must stay within (50)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between reads (0.5)")
    ap.add_argument("--receiver", default="mtk3339", choices=("mtk3339", "ublox-m8", "next-second"))
    ap.add_argument("--lock-timeout", type=float, default=300.0, help="seconds to wait for lock (300)")
    ap.add_argument("--reference", action="store_true", help="read a chronyd serving the host clock too")
    ap.add_argument(
        "--trace", action="store_true", help="capture loopback and split each read into its legs (one query a read)"
    )
    ap.add_argument(
        "--samples", type=int, default=1, help="queries per read, ntpdig -p: it reports the closest (default 1)"
    )
    ap.add_argument(
        "--client-fifo",
        type=int,
        default=0,
        metavar="PRIO",
        help="run each ntpdig at real-time priority PRIO (chrt -f), both servers' reads alike (default: off)",
    )
    args = ap.parse_args()
    prefix = ("chrt", "-f", str(args.client_fifo)) if args.client_fifo else ()
    if args.trace and args.samples > 1:
        print("realtime_ntpdig: --trace needs one query per read (--samples 1)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("realtime_ntpdig: needs root (ip netns)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="s1-rt-"))
    log_path = work / "serve.log"
    conf = work / "ntp.conf"
    conf.write_text(
        subprocess.run(
            [sys.executable, "-m", "appliance.cli", "default-config"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    )
    namespaces = [new_namespace("a")]
    ns = namespaces[0]
    procs: list[subprocess.Popen[bytes]] = []
    ref_ns = None
    reads: list[tuple[float, float, float]] = []  # (s since lock, offset s, +/- s)
    ref_reads: list[tuple[float, float, float]] = []
    windows: dict[str, list[tuple[int, int, float | None]]] = {}  # --trace: per namespace, each read's window
    try:
        with log_path.open("w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        *("ip", "netns", "exec", ns, sys.executable, "-m", "appliance.cli", "serve"),
                        *("--simulate", args.receiver, "-c", str(conf), "-l", "127.0.0.1", "-p", "123"),
                        *("--clock", "soft", "--status-socket", "none", "--log", "stderr", "-v"),
                    ],
                    cwd=ROOT,
                    env=dict(os.environ, PYTHONPATH=str(ROOT)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        if args.reference:
            ref_ns = new_namespace("r")
            namespaces.append(ref_ns)
            chrony_conf = work / "chrony.conf"
            chrony_conf.write_text(
                "local stratum 1\nallow 127.0.0.1\nbindaddress 127.0.0.1\ncmdport 0\nbindcmdaddress /\n"
                f"pidfile {work}/chronyd.pid\n"
            )
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ref_ns, CHRONYD, "-x", "-f", str(chrony_conf), "-u", "root", "-d"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        started = time.monotonic()
        locked_at = None
        while time.monotonic() - started < args.lock_timeout:
            r = read_once(ns)
            if r is not None and r[1] == 1 and abs(r[0]) * 1e6 <= args.bound_us:
                locked_at = time.monotonic()
                break
            time.sleep(args.interval)
        if locked_at is None:
            print(f"realtime_ntpdig: no lock within {args.lock_timeout:g} s; log in {log_path}", file=sys.stderr)
            return 1
        wall_lock = time.time()
        each = f"reads of {args.samples} queries each (ntpdig -p {args.samples})" if args.samples > 1 else "reads"
        print(f"lock after {locked_at - started:.1f} s; {each} for {args.minutes:g} min", flush=True)
        if args.trace:
            for name in namespaces:
                windows[name] = []
                with (work / f"capture-{name}.txt").open("w") as capture:
                    procs.append(
                        subprocess.Popen(
                            ["ip", "netns", "exec", name, sys.executable, str(ROOT / "bench" / "lo_capture.py")],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=capture,
                        )
                    )
            time.sleep(1.0)  # the captures are listening
        misses = 0
        next_at = time.monotonic()
        next_report = locked_at + 60
        while time.monotonic() - locked_at < args.minutes * 60:
            next_at += args.interval
            # with --reference the two are read in turn, each first every other time: the first ntpdig after
            # the pause tends to meet a colder machine than the second, and neither server gets that every time
            order = [ns] if ref_ns is None else [ns, ref_ns] if len(reads) % 2 == 0 else [ref_ns, ns]
            got: dict[str, tuple[float, int, float] | None] = {}
            for which in order:
                before = time.time_ns()
                got[which] = read_once(which, args.samples, prefix)
                if args.trace:
                    r = got[which]
                    windows[which].append((before, time.time_ns(), r[0] if r else None))
            since = time.monotonic() - locked_at
            r = got[ns]
            if r is None:
                misses += 1
            else:
                reads.append((since, r[0], r[2]))
            ref = got.get(ref_ns) if ref_ns is not None else None
            if ref is not None:
                ref_reads.append((since, ref[0], ref[2]))
            if r is not None and abs(r[0]) * 1e6 > args.bound_us:
                beside = f"; reference read {ref[0] * 1e6:+.1f} us +/- {ref[2] * 1e6:.1f} us" if ref else ""
                print(
                    f"  over the bound: {r[0] * 1e6:+.1f} us +/- {r[2] * 1e6:.1f} us at {since:.1f} s after lock "
                    f"({time.strftime('%H:%M:%S', time.gmtime())} UTC){beside}",
                    flush=True,
                )
            if time.monotonic() >= next_report:
                next_report += 60
                print(f"  {len(reads)} reads, {misses} without an answer", flush=True)
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        for proc in procs:
            stop(proc)
        for name in namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    bound = args.bound_us
    over = [(t, o, d) for t, o, d in reads if abs(o) * 1e6 > bound]
    sure = [(t, o, d) for t, o, d in over if (abs(o) - d) * 1e6 > bound]
    print(
        f"{len(reads)} reads over {args.minutes:g} min after lock (no answer: {misses}); "
        + percentiles("|offset|", [abs(o) * 1e6 for _, o, _ in reads])
        + f"; over {bound:g} us: {len(over)}, of them beyond it even with the read's +/-: {len(sure)}"
    )
    print(percentiles("ntpdig's +/- per read:", [d * 1e6 for _, _, d in reads]))
    calm = [abs(o) * 1e6 for _, o, d in reads if d * 1e6 <= 2 * bound]
    if calm:
        print(percentiles(f"|offset| of the {len(calm)} reads with +/- at most {2 * bound:g} us:", calm))
    if ref_reads:
        ref_over = sum(abs(o) * 1e6 > bound for _, o, _ in ref_reads)
        print(
            f"reference (chronyd serving the host clock, same ntpdig): {len(ref_reads)} reads; "
            + percentiles("|offset|", [abs(o) * 1e6 for _, o, _ in ref_reads])
            + f"; over {bound:g} us: {ref_over}"
        )
    if args.trace:
        print_trace("stratum1", trace_legs(work / f"capture-{ns}.txt", windows[ns]), bound)
        if ref_ns is not None:
            print_trace("chronyd", trace_legs(work / f"capture-{ref_ns}.txt", windows[ref_ns]), bound)
    print(f"appliance log: {log_path} (lock at {time.strftime('%H:%M:%S', time.gmtime(wall_lock))} UTC)")
    return 0 if not over else 1


if __name__ == "__main__":
    sys.exit(main())
