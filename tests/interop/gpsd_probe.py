"""Run a real gpsd fed by the fake GPS, and read it with stratum1's shm and gpsd drivers; print what they saw.

Run by ``test_gpsd.py`` as ``unshare --ipc --net python gpsd_probe.py GPSD SECONDS`` (GPSD: the private
copy's wrapper, which sets its library path and execs gpsd, so its PID is gpsd's): in its own IPC
namespace (gpsd's NTP0..NTP7 segments are not the host's) and network namespace (gpsd's port 2947 and the
NMEA feed are on a loopback of their own). gpsd exports time to shared memory for ``udp://`` sources (not
for a pty, a file or a pipe), so the fake's sentences, labelled with the host's current seconds, go to
gpsd over UDP. gpsd is this script's child, ended by its PID (and by the kernel if this script dies
first). Prints one JSON object on stdout.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from appliance.fakes.gps import FakeGps  # noqa: E402
from appliance.io.gpsd import GpsdDriver  # noqa: E402
from appliance.io.shm import ShmDriver  # noqa: E402

NMEA_PORT = 29470
GPSD_PORT = 2947
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main(gpsd: str, seconds: float) -> dict[str, object]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    shm = {unit: ShmDriver(unit) for unit in (0, 1)}
    for drv in shm.values():
        drv.open()  # made before gpsd starts: gpsd attaches to stratum1's segments
    log = open(os.environ.get("GPSD_PROBE_LOG", os.devnull), "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [gpsd, "-N", "-n", "-S", str(GPSD_PORT), f"udp://127.0.0.1:{NMEA_PORT}"],
        stdout=log,
        stderr=log,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )
    labels: list[int] = []
    got: dict[str, list[list[object]]] = {"shm0": [], "shm1": [], "gpsd": []}
    start_ns = time.time_ns()
    try:
        client = GpsdDriver("127.0.0.1", GPSD_PORT)
        deadline = time.monotonic() + 5
        while True:
            try:
                client.open()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        fake = FakeGps("ublox-m8", start_ns=time.time_ns())
        feed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for chunk in fake.tick(time.time_ns()):
                if chunk.data.startswith(b"$GNRMC"):
                    labels.append(_label(chunk.data))
                feed.sendto(chunk.data, ("127.0.0.1", NMEA_PORT))
            readable, _, _ = select.select([client.fileno()] if client.is_open else [], [], [], 0.02)
            now = time.time_ns()
            if readable:
                for s in client.poll(now).samples:
                    got["gpsd"].append([s.kind.value, s.local_ns, s.reference_ns])
            for unit, drv in shm.items():
                for s in drv.poll(now).samples:
                    got[f"shm{unit}"].append([s.kind.value, s.local_ns, s.reference_ns, s.leap])
        counters = {f"shm{u}": dict(d.counters()) for u, d in shm.items()}
        counters["gpsd"] = dict(client.counters())
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for drv in shm.values():
            drv.close()
    return {"start_ns": start_ns, "end_ns": time.time_ns(), "labels": labels, "got": got, "counters": counters}


def _label(rmc: bytes) -> int:
    """The POSIX second an RMC sentence names (its hhmmss and ddmmyy fields)."""
    f = rmc.split(b",")
    hms, dmy = f[1].decode(), f[9].decode()
    when = dt.datetime(
        2000 + int(dmy[4:6]), int(dmy[2:4]), int(dmy[0:2]), int(hms[0:2]), int(hms[2:4]), int(hms[4:6]), tzinfo=dt.UTC
    )
    return int(when.timestamp())


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))))
