#!/usr/bin/env python3
"""How fast ``stratum1 status`` answers while the server is flooded, and what the status readers cost serving.

    python bench/status_under_flood.py [--rate R] [--seconds S] [--runs N]

Starts ``stratum1 serve`` on loopback (local clock, no rate limiting: serve_flood.py's configuration) with
a status socket in a temporary directory, floods it with bench/flood.c at ``--rate`` requests a second
(default 200000: above what one core answers, so the server runs flat out), and meanwhile runs
``stratum1 status --socket ...`` as a new process ``--runs`` times, timing each from fork to exit (what a
user over SSH waits for, Python start-up included), the CPU time that process used (what the wait comes
from on a machine whose cores are busy: the part that does not depend on the load) and, separately, the
socket read alone. Prints the p50/p99/max of these, and the flood's answered rate with and without status
readers hammering the socket (a reader connecting in a tight loop), so the cost to serving shows too, and
the load average before and after (the machine may be shared).

The command runs as installed: a console script of pip's template (what ``[project.scripts]`` makes of
``appliance.command:main``) with the package's bytecode compiled, as the Debian package's postinst
(``py3compile``) leaves it. The bytecode goes to a cache in the temporary directory
(``PYTHONPYCACHEPREFIX``; one untimed run fills it), so the benchmark writes nothing into the source tree,
and a ``PYTHONDONTWRITEBYTECODE`` in the environment would otherwise have every run compile the package.

Traffic goes to loopback only; every run is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import serve_flood as sf  # noqa: E402

from appliance.io.statussock import read_status  # noqa: E402


def start(tmp: Path, port: int, sock: str) -> sf.Server:
    conf = tmp / "ntp.conf"
    conf.write_text(
        "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nrestrict default nomodify notrap nopeer noquery\n"
    )
    log = tmp / "stratum1.log"
    cmd = [sys.executable, "-m", "appliance.cli", "serve", "-c", str(conf), "--listen", "127.0.0.1"]
    cmd += ["--port", str(port), "--status-socket", sock, "--verbose"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = sf.Server("stratum1", port, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "serving NTP on" in log.read_text(errors="replace") and os.path.exists(sock):
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    sys.exit(f"status_under_flood: stratum1 did not start:\n{log.read_text(errors='replace')}")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


#: pip's console-script template (pip 23+), for ``stratum1 = "appliance.command:main"``.
SCRIPT = """#!{python}
import sys
from appliance.command import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""


def installed_command(tmp: Path, sock: str) -> tuple[list[str], dict[str, str]]:
    """The ``stratum1 status`` command line and environment, as installed (see the module docstring)."""
    script = tmp / "stratum1"
    script.write_text(SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    cmd = [str(script), "status", "--socket", sock]
    subprocess.run(cmd, capture_output=True, env=env)  # compiles the bytecode: not timed
    return cmd, env


@dataclass
class Timings:
    """Seconds per run: the command from fork to exit, the CPU it used (user + system), the socket read alone."""

    command: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)


def time_commands(cmd: list[str], env: dict[str, str], sock: str, runs: int) -> Timings:
    t = Timings()
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        out, err = proc.stdout, proc.stderr
        assert out is not None and err is not None
        text, errors = out.read(), err.read()  # the status is a few hundred octets: no pipe fills
        _pid, status, usage = os.wait4(proc.pid, 0)
        t.command.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        err.close()
        t.cpu.append(usage.ru_utime + usage.ru_stime)
        if proc.returncode not in (0, 1) or not text:
            sys.exit(f"status_under_flood: stratum1 status failed: {errors.decode(errors='replace')}")
        t0 = time.perf_counter()
        read_status(sock)
        t.reads.append(time.perf_counter() - t0)
        time.sleep(0.05)
    return t


def hammer(sock: str, stop: threading.Event, count: list[int]) -> None:
    while not stop.is_set():
        try:
            read_status(sock, 1.0)
            count[0] += 1
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200_000.0, help="flood rate, requests/s")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each flood")
    p.add_argument("--runs", type=int, default=20, help="'stratum1 status' runs during the flood")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stratum1-status-bench-") as d:
        tmp = Path(d)
        flood = sf.build_flood(tmp)
        port = sf.free_udp_port("127.0.0.1")
        sock = str(tmp / "status.sock")
        server = start(tmp, port, sock)
        plane = [line for line in server.log.read_text(errors="replace").splitlines() if "data plane:" in line]
        print(f"server: {plane[-1].split('INFO ', 1)[-1] if plane else 'data plane not logged'}", flush=True)
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
        try:
            cmd, env = installed_command(tmp, sock)
            base = sf.run_flood(flood, "127.0.0.1", port, args.rate, args.seconds, None, 0)
            print(f"flood alone:            offered {args.rate:.0f}/s, answered {base.resp_rate:.0f}/s", flush=True)
            out: dict[str, object] = {}
            t = threading.Thread(
                target=lambda: out.update(r=sf.run_flood(flood, "127.0.0.1", port, args.rate, args.seconds, None, 0))
            )
            t.start()
            time.sleep(0.5)
            timed = time_commands(cmd, env, sock, args.runs)
            t.join()
            loaded = out["r"]
            assert isinstance(loaded, sf.Result)
            print(f"flood + status runs:    answered {loaded.resp_rate:.0f}/s", flush=True)
            stop = threading.Event()
            count = [0]
            h = threading.Thread(target=hammer, args=(sock, stop, count))
            h.start()
            hammered = sf.run_flood(flood, "127.0.0.1", port, args.rate, args.seconds, None, 0)
            stop.set()
            h.join()
            print(
                f"flood + reader in a loop: answered {hammered.resp_rate:.0f}/s"
                f" ({count[0] / args.seconds:.0f} status reads/s)",
                flush=True,
            )
        finally:
            server.stop()
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ms = 1000.0
    command, cpu, reads = timed.command, timed.cpu, timed.reads
    print(
        f"'stratum1 status' (new process, {len(command)} runs under flood):"
        f" p50 {statistics.median(command) * ms:.0f} ms, p99 {pct(command, 0.99) * ms:.0f} ms,"
        f" max {max(command) * ms:.0f} ms"
    )
    print(f"  its CPU time (user + system): p50 {statistics.median(cpu) * ms:.0f} ms, p99 {pct(cpu, 0.99) * ms:.0f} ms")
    print(
        f"status socket read alone: p50 {statistics.median(reads) * ms:.2f} ms, p99 {pct(reads, 0.99) * ms:.2f} ms,"
        f" max {max(reads) * ms:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
