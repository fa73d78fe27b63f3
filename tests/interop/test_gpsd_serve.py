"""gpsd's shared memory for the seconds, a PPS line numbered by it, served to a real chronyd at stratum 1.

The tutorials' configuration (``server 127.127.28.0`` + ``server 127.127.22.0``, or NTPsec's
``refclock shm`` + ``refclock pps``) with a real gpsd (Debian's, unpacked privately) reading the fake
GPS's NMEA and a fake PPS device: ``gpsd_serve_probe.py`` runs it all in an IPC and a network namespace of
its own (gpsd's segments and ports are not the host's) with the soft clock, and ``chronyd -Q`` asks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import INTEROP_ROOT
from support import require

from appliance.ntp.packet import refid_from_text

pytestmark = [pytest.mark.interop, pytest.mark.netns]

GPSD = INTEROP_ROOT / "bin/gpsd"
PROBE = Path(__file__).with_name("gpsd_serve_probe.py")


@pytest.mark.parametrize("form", ["ntpd", "ntpsec"])
def test_shm_seconds_and_a_pps_numbered_by_them_serve_stratum_1(
    form: str, chronyd: Path, ntpsec_tools: dict[str, str], tmp_path: Path
) -> None:
    require(os.access(GPSD, os.X_OK), f"gpsd not unpacked at {GPSD} (run .ci/install-interop as root)")
    require(os.geteuid() == 0, "gpsd's namespaces (unshare --ipc --net) need root")
    unshare = shutil.which("unshare")
    require(unshare is not None, "unshare (util-linux) is missing")
    assert unshare is not None
    proc = subprocess.run(
        [unshare, "--ipc", "--net", sys.executable, str(PROBE), str(GPSD), str(chronyd), form, str(tmp_path)]
        + [ntpsec_tools["ntpq"]],
        capture_output=True,
        text=True,
        timeout=240,
    )
    gpsd_log = (tmp_path / "gpsd.log").read_text()[-2000:] if (tmp_path / "gpsd.log").exists() else ""
    assert proc.returncode == 0, f"probe failed: {proc.stderr[-3000:]}\ngpsd log: {gpsd_log}"
    seen = json.loads(proc.stdout)
    assert seen["sources"] == ["PPS(0)", "SHM(0)"], seen
    assert seen["synced"] and seen["pps_used"], seen  # the PPS was numbered (by the SHM seconds) and used
    # the real chronyd saw a synchronised stratum 1 server, refid GPS or PPS, in every reply it took
    strata = {(leap, stratum) for leap, stratum, _ in seen["chronyd_seen"]}
    assert strata == {("N", 1)}, seen["chronyd_seen"]
    refids = {bytes.fromhex(r) for _, _, r in seen["chronyd_seen"]}
    assert refids <= {refid_from_text("GPS"), refid_from_text("PPS")}, refids
    # the PPS numbered by the SHM seconds is the system peer (ntpd's "pps peer", chrony's PPS with lock), and
    # ntpq says so: tally o for PPS(0), SHM(0) a survivor beside it
    assert seen["pps_peer"] and seen["system_peer"] == "PPS(0)", seen
    tallies = {line[1:].split()[0]: line[0] for line in seen["ntpq_peers"].splitlines()[2:] if line.strip()}
    assert tallies.get("PPS(0)") == "o" and tallies.get("SHM(0)") in ("+", "#"), seen["ntpq_peers"]
    # so the soft clock follows the edges (the host's whole seconds), not gpsd's NMEA receive times (tens of
    # ms of jitter on a loaded machine); a wrong second would be 1 s off
    assert abs(seen["chronyd_offset_s"]) < 0.02, seen
