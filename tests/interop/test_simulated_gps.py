"""The whole appliance with a simulated GPS HAT, in real time: stratum 1 for a real chronyd within a minute.

The fake receiver writes NMEA into a pty that the real serial driver reads;
the fake PPS marks the true seconds with 1 us jitter; the soft clock starts
0.25 s wrong. Nothing touches the host clock (chronyd -Q -x only measures).
The pairing, the NMEA delay's calibration and the recovery from an
unplugged receiver, garbage and a week jump are checked on virtual time
with the same fake receiver in ``tests/sim/test_sim_gps.py``; this file
keeps what needs the real thing: a real chronyd over real sockets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import chronyd_measure, free_port

from appliance.config import default_config_text, parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.ntp.packet import refid_from_text


def simulated(receiver: str) -> Appliance:
    config = parse_config(default_config_text(), "<built-in default>")
    app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=free_port()), simulation=Simulation(receiver))
    app.start_thread()
    return app


@pytest.fixture(params=["mtk3339", "ublox-m8"])
def app(request: pytest.FixtureRequest) -> Iterator[Appliance]:
    a = simulated(request.param)
    try:
        yield a
    finally:
        a.stop()
        a.close()


def wait_for(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


def chronyd_sees(chronyd: Path, tmp_path: Path, port: int) -> tuple[int, str, float]:
    """chronyd -Q against us; return (stratum, refid as hex, offset s) of its last measurement."""
    offset, seen = chronyd_measure(chronyd, tmp_path / "chronyd", port)
    _, stratum, refid = seen[-1]
    return stratum, refid.hex().upper(), offset


@pytest.mark.interop
def test_chronyd_sees_stratum_1_pps_within_a_minute(app: Appliance, chronyd: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    wait_for(lambda: app.server.state.stratum == 1 and app.server.state.refid == refid_from_text("PPS"), 55)
    stratum, refid, offset = chronyd_sees(chronyd, tmp_path, app.addresses[0][1])
    assert time.monotonic() - started < 60 + 20  # chronyd -Q's own iburst takes a few seconds
    assert stratum == 1
    assert bytes.fromhex(refid) == b"PPS\0"
    assert abs(offset) < 0.002  # the 0.25 s start error is gone; chronyd's own reading noise remains
