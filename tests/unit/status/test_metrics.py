"""The exporter's scrape parses with prometheus_client's own parser and carries the status socket's values."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from status_sample import HOLDOVER, SNAP
from support import ROOT

from appliance.io.statussock import StatusServer
from appliance.status.snapshot import Snapshot

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[str]:
    s = StatusServer(str(tmp_path / "status.sock"), group=None)
    s.publish(SNAP.to_json().encode() + b"\n")
    s.start()
    yield s.path
    s.close()


def scrape(path: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from appliance.exporter import exposition

    text = exposition(path).decode()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_scrape_carries_the_snapshot(sock: str) -> None:
    m = scrape(sock)
    assert m[("stratum1_up", ())] == 1.0
    assert m[("stratum1_stratum", ())] == SNAP.system.stratum
    assert m[("stratum1_offset_seconds", ())] == pytest.approx(SNAP.system.offset_ns / 1e9)
    assert m[("stratum1_frequency_ratio", ())] == pytest.approx(SNAP.system.frequency_ppb / 1e9)
    assert m[("stratum1_requests_total", (("outcome", "served"),))] == SNAP.counters.served
    assert m[("stratum1_requests_total", (("outcome", "refused"),))] == SNAP.counters.refused
    assert SNAP.gps is not None
    assert m[("stratum1_gps_satellites_used", ())] == SNAP.gps.satellites_used
    assert m[("stratum1_pps_pulses_total", ())] == SNAP.gps.pulses
    for src in SNAP.sources:
        labels = (("kind", src.kind), ("source", src.name))
        assert m[("stratum1_source_offset_seconds", labels)] == pytest.approx(src.offset_ns / 1e9)
        assert m[("stratum1_source_reach", labels)] == src.reach
    assert m[("stratum1_source_state", (("source", "GPS(0)"), ("state", "pps_peer")))] == 1.0


def test_no_daemon_is_up_0(tmp_path: Path) -> None:
    m = scrape(str(tmp_path / "nothing.sock"))
    assert m == {("stratum1_up", ()): 0.0}


def test_listen_needs_a_numeric_address() -> None:
    import argparse

    from appliance.exporter import _listen

    assert _listen("192.168.0.2") == ("192.168.0.2", 9123)
    assert _listen("192.168.0.2:9100") == ("192.168.0.2", 9100)
    assert _listen("[fd00::2]:9100") == ("fd00::2", 9100)
    with pytest.raises(argparse.ArgumentTypeError):
        _listen("myhost:9100")


def test_exporter_process_serves_the_scrape_over_http(sock: str) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "appliance", "exporter", "--listen", f"127.0.0.1:{port}", "--socket", sock]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parser.text_string_to_metric_families(text)
        for s in f.samples
    }
    assert values[("stratum1_up", ())] == 1.0
    assert values[("stratum1_stratum", ())] == SNAP.system.stratum


def _series(snap: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    from appliance.status.metrics import families

    family = next(f for f in families(snap) if f.name == name)
    return dict(family.samples)


def test_state_like_series_read_0_when_their_state_ends() -> None:
    """GPS lost: basis refclock -> holdover, GPS(0) pps_peer -> rejected, alarms raised: every series stays."""
    for name in ("stratum1_basis_info", "stratum1_source_state", "stratum1_alarm"):
        before, after = _series(SNAP, name), _series(HOLDOVER, name)
        assert before.keys() == after.keys(), name
    assert _series(SNAP, "stratum1_basis_info")[("refclock",)] == 1.0
    after = _series(HOLDOVER, "stratum1_basis_info")
    assert after[("refclock",)] == 0.0 and after[("holdover",)] == 1.0 and sum(after.values()) == 1.0
    assert _series(HOLDOVER, "stratum1_source_state")[("GPS(0)", "pps_peer")] == 0.0
    assert _series(HOLDOVER, "stratum1_source_state")[("GPS(0)", "rejected")] == 1.0
    for src in SNAP.sources:
        states = {v for (name, _), v in _series(SNAP, "stratum1_source_state").items() if name == src.name}
        assert sorted(states) == [0.0, 1.0]
    assert _series(SNAP, "stratum1_alarm")[("holdover", "warning")] == 0.0
    assert _series(HOLDOVER, "stratum1_alarm")[("holdover", "warning")] == 1.0


def test_every_alarm_the_daemon_raises_is_listed_with_its_severity() -> None:
    from appliance.status.metrics import ALARMS

    source = (ROOT / "appliance" / "status" / "collect.py").read_text()
    raised = dict(re.findall(r'Alarm\(\s*"([a-z-]+)",\s*"([a-z]+)"', source))
    assert raised == ALARMS


def test_satellite_counts_are_nan_when_not_known_not_the_last_fix() -> None:
    """GPS unplugged or without a fix: the exporter must not keep saying the last fix's count."""
    import math
    from dataclasses import replace

    assert SNAP.gps is not None and SNAP.gps.fix and SNAP.gps.satellites_used
    assert _series(SNAP, "stratum1_gps_satellites_used")[()] == SNAP.gps.satellites_used
    lost = replace(SNAP, gps=replace(SNAP.gps, fix=False, satellites_in_view=None))
    assert math.isnan(_series(lost, "stratum1_gps_satellites_used")[()])
    assert math.isnan(_series(lost, "stratum1_gps_satellites_visible")[()])
