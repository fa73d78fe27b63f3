"""Serve NTP from gpsd's shared memory and a PPS numbered by it, inside namespaces of its own; a chronyd measures.

Run by ``test_gpsd_serve.py`` as ``unshare --ipc --net python gpsd_serve_probe.py GPSD CHRONYD FORM WORKDIR NTPQ``:
a real gpsd (the private copy's wrapper) reads the fake GPS's NMEA over UDP (gpsd exports time to shared
memory for ``udp://`` sources, not for a pty) and writes NTP0; the appliance is configured with FORM's lines
(``ntpd``: ``server 127.127.28.0`` + ``server 127.127.22.0``; ``ntpsec``: ``refclock shm`` + ``refclock pps``)
and a fake PPS device (:class:`appliance.fakes.pps.FakePpsDevice`, edges at the host's whole seconds, the
kernel clock mapped onto the served soft clock as a real ``/dev/pps0`` would be). The shared-memory line's
``time1`` is calibrated first, as a user calibrates it: the median of gpsd's receive delay over a few
seconds. Once the PPS is the system peer (selection's PPS rule), ``chronyd -Q`` (it measures, never sets the
clock) asks the appliance, on port 123 of the private network namespace, and NTPsec's ``ntpq -c peers`` reads
the tally codes. gpsd and chronyd are this script's children, ended by their PIDs. Prints one JSON object on
stdout.
"""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from harness import chronyd_measure  # noqa: E402

from appliance.config import parse_config  # noqa: E402
from appliance.daemon import Appliance, ServeSettings  # noqa: E402
from appliance.fakes.gps import FakeGps  # noqa: E402
from appliance.fakes.pps import FakePps, FakePpsDevice  # noqa: E402
from appliance.io.shm import ShmDriver  # noqa: E402
from appliance.sources.timekeeper import Basis  # noqa: E402

NMEA_PORT = 29470
GPSD_PORT = 2947
NTP_PORT = 123  # the namespace's own: ntpq asks there
PR_SET_PDEATHSIG = 1

LINES = {  # each with "restrict 127.0.0.1" (below): ntpq may ask from there
    "ntpd": "server 127.127.28.0 minpoll 4 maxpoll 4\nfudge 127.127.28.0 time1 {time1} refid GPS\n"
    "server 127.127.22.0\n",
    "ntpsec": "refclock shm unit 0 minpoll 4 time1 {time1} refid GPS\nrefclock pps unit 0 path /dev/pps0\n",
}


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _feed(stop: threading.Event) -> None:
    """The fake receiver's sentences, labelled with the host's seconds, to gpsd over UDP."""
    fake = FakeGps("ublox-m8", start_ns=time.time_ns())
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while not stop.is_set():
        for chunk in fake.tick(time.time_ns()):
            out.sendto(chunk.data, ("127.0.0.1", NMEA_PORT))
        time.sleep(0.005)


def _calibrate(seconds: float) -> float:
    """The median of gpsd's NTP0 (reference - receive) over ``seconds``, in seconds: the line's time1."""
    shm = ShmDriver(0)
    shm.open()
    offsets = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in shm.poll(time.time_ns()).samples:
            offsets.append(s.reference_ns - s.local_ns)
        time.sleep(0.1)
    shm.close()
    if len(offsets) < 3:
        raise SystemExit(f"gpsd wrote {len(offsets)} NTP0 samples in {seconds} s")
    return -statistics.median(offsets) / 1e9


def _pps_opener(path: str, to_clock: Callable[[int], int] | None) -> FakePpsDevice:
    def local() -> int:
        now = time.time_ns()
        return to_clock(now) if to_clock is not None else now

    return FakePpsDevice(FakePps(time.time_ns, local, jitter_ns=1_000.0, seed=1))


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def main(gpsd: str, chronyd: str, form: str, workdir: Path, ntpq: str) -> dict[str, object]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log = open(workdir / "gpsd.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [gpsd, "-N", "-n", "-S", str(GPSD_PORT), f"udp://127.0.0.1:{NMEA_PORT}"],
        stdout=log,
        stderr=log,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(stop,), daemon=True)
    feeder.start()
    try:
        time1 = _calibrate(6.0)
        text = LINES[form].format(time1=f"{time1:.6f}") + "restrict 127.0.0.1\n"
        config = parse_config(text, "gpsd.conf")
        app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=NTP_PORT, clock="soft"), open_pps=_pps_opener)
        app.start_thread()
        try:
            tk = app.timekeeper
            assert tk is not None
            synced = _wait(lambda: tk.basis is Basis.REFCLOCK and app.server.state.stratum == 1, 150)
            pps_used = _wait(lambda: tk.refclocks["PPS(0)"].counters.updates >= 5, 60)
            pps_peer = _wait(lambda: tk.status().system_peer == "PPS(0)", 90)
            offset, seen = chronyd_measure(Path(chronyd), workdir / "chronyd", NTP_PORT)
            status = tk.status()
            peers = subprocess.run([ntpq, "-n", "-c", "peers", "127.0.0.1"], capture_output=True, text=True, timeout=30)
            return {
                "pps_peer": pps_peer,
                "system_peer": status.system_peer,
                "ntpq_peers": peers.stdout + peers.stderr,
                "time1": time1,
                "lines": text,
                "synced": synced,
                "pps_used": pps_used,
                "sources": sorted(tk.refclocks),
                "summary": status.summary(),
                "source_lines": status.source_lines(),
                "counters": {name: str(rs.counters) for name, rs in tk.refclocks.items()},
                "chronyd_offset_s": offset,
                "chronyd_seen": [[leap, stratum, refid.hex()] for leap, stratum, refid in seen],
            }
        finally:
            app.stop()
            app.close()
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5])))
