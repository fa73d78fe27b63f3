"""stratum1's ``shm`` and ``gpsd`` drivers against a real gpsd (Debian's package, unpacked privately).

gpsd runs in an IPC and a network namespace of its own (``gpsd_probe.py`` under ``unshare --ipc --net``),
fed over UDP by the fake GPS with the host's current seconds; the probe reads gpsd's NTP0/NTP1 segments
with :class:`~appliance.io.shm.ShmDriver` and its JSON socket with :class:`~appliance.io.gpsd.GpsdDriver`.
gpsd is the private copy ``.ci/install-interop`` unpacks: the wrapper ``$STRATUM1_INTEROP_ROOT/bin/gpsd``
(it sets the library path of the unpacked tree and execs gpsd).
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

from appliance.timebase import NS_PER_S

pytestmark = [pytest.mark.interop, pytest.mark.netns]

GPSD = INTEROP_ROOT / "bin/gpsd"
PROBE = Path(__file__).with_name("gpsd_probe.py")
RUN_S = 6.0
MS = 1_000_000


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    require(os.access(GPSD, os.X_OK), f"gpsd not unpacked at {GPSD} (run .ci/install-interop as root)")
    require(os.geteuid() == 0, "gpsd's namespaces (unshare --ipc --net) need root")
    unshare = shutil.which("unshare")
    require(unshare is not None, "unshare (util-linux) is missing")
    assert unshare is not None
    log = tmp_path_factory.mktemp("gpsd") / "gpsd.log"
    proc = subprocess.run(
        [unshare, "--ipc", "--net", sys.executable, str(PROBE), str(GPSD), str(RUN_S)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, GPSD_PROBE_LOG=str(log)),
    )
    assert proc.returncode == 0, f"probe failed: {proc.stderr[-2000:]}\ngpsd log: {log.read_text()[-2000:]}"
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _check_times(rows: list[list[object]], labels: list[int], start_ns: int, end_ns: int) -> None:
    for row in rows:
        local, reference = int(row[1]), int(row[2])  # type: ignore[call-overload]
        assert reference % NS_PER_S == 0 and reference // NS_PER_S in labels  # a second the fake named
        assert start_ns <= local <= end_ns  # a reading of this machine's clock during the run
        # the ublox-m8 model starts its burst 50-150 ms after the edge; gpsd times the sentence that ends it
        assert 0 < local - reference < 500 * MS


def test_shm_unit_0_carries_the_fakes_seconds(seen: dict[str, object]) -> None:
    got: dict[str, list[list[object]]] = seen["got"]  # type: ignore[assignment]
    labels: list[int] = seen["labels"]  # type: ignore[assignment]
    rows = got["shm0"]
    assert len(rows) >= RUN_S - 3, f"only {len(rows)} NTP0 samples in {RUN_S} s"
    _check_times(rows, labels, int(seen["start_ns"]), int(seen["end_ns"]))  # type: ignore[call-overload]
    assert all(row[0] == "time" and row[3] == 0 for row in rows)
    refs = [int(row[2]) for row in rows]  # type: ignore[call-overload]
    assert refs == sorted(set(refs))  # each second once: valid was cleared, nothing taken twice
    counters: dict[str, dict[str, int]] = seen["counters"]  # type: ignore[assignment]
    assert counters["shm0"]["ok"] == len(rows)
    assert counters["shm0"]["clash"] + counters["shm0"]["bad_mode"] + counters["shm0"]["stale"] == 0


def test_shm_unit_1_has_no_pps_from_a_udp_source(seen: dict[str, object]) -> None:
    """gpsd gives PPS segments to serial, USB and PPS devices only: NTP1 is attached and stays not ready."""
    got: dict[str, list[list[object]]] = seen["got"]  # type: ignore[assignment]
    counters: dict[str, dict[str, int]] = seen["counters"]  # type: ignore[assignment]
    assert got["shm1"] == []
    assert counters["shm1"]["reads"] > 0 and counters["shm1"]["reads"] == counters["shm1"]["not_ready"]


def test_gpsd_json_gives_the_same_samples_as_shm(seen: dict[str, object]) -> None:
    """TOFF carries the same (local, reference) pair gpsd writes into NTP0, to the nanosecond."""
    got: dict[str, list[list[object]]] = seen["got"]  # type: ignore[assignment]
    labels: list[int] = seen["labels"]  # type: ignore[assignment]
    rows = got["gpsd"]
    assert len(rows) >= RUN_S - 3
    _check_times(rows, labels, int(seen["start_ns"]), int(seen["end_ns"]))  # type: ignore[call-overload]
    assert all(row[0] == "time" for row in rows)
    from_json = {int(r[2]): int(r[1]) for r in rows}  # type: ignore[call-overload]
    from_shm = {int(r[2]): int(r[1]) for r in got["shm0"]}  # type: ignore[call-overload]
    common = set(from_json) & set(from_shm)
    assert len(common) >= RUN_S - 3
    assert all(from_json[s] == from_shm[s] for s in common)
    counters: dict[str, dict[str, int]] = seen["counters"]  # type: ignore[assignment]
    c = counters["gpsd"]
    assert c["toff"] >= len(rows) and c["bad_json"] == 0 and c["bad_record"] == 0 and c["connects"] == 1
