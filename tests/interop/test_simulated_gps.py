"""The whole appliance with a simulated GPS HAT, in real time: stratum 1 for a real chronyd within a minute.

The fake receiver writes NMEA into a pty that the real serial driver reads;
the fake PPS marks the true seconds with 1 us jitter; the soft clock starts
0.25 s wrong. Nothing touches the host clock (chronyd -Q -x only measures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import chronyd_measure, free_port

from appliance.config import default_config_text, parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.fakes.gps import MODELS
from appliance.ntp.packet import refid_from_text
from appliance.timebase import NS_PER_S


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


def test_pulses_numbered_and_nmea_delay_calibrated(app: Appliance) -> None:
    assert app.timekeeper is not None and app.simulation is not None
    tk = app.timekeeper
    wait_for(lambda: tk.counters.pps_samples >= 60, 75)
    model = MODELS[app.simulation.receiver]
    simulated_delay = (model.delay_min_ns + model.delay_max_ns) // 2
    delay = tk.gps.nmea_delay_ns
    assert delay is not None and abs(delay - simulated_delay) < 20_000_000, (delay, simulated_delay)
    # pulses numbered right from the first minute: the served clock agrees with the true (host) clock
    assert tk.clock is not None
    assert abs(tk.clock.now_ns() - time.time_ns()) < 1_000_000
    assert tk.gps.counters.lock_breaks == 0


def test_unplug_garbage_and_week_jump_keep_serving_and_recover() -> None:
    a = simulated("ublox-m8")
    try:
        tk, pty, gps = a.timekeeper, a.fakes["pty"], a.fakes["gps"]
        assert tk is not None
        wait_for(lambda: a.server.state.stratum == 1, 50)
        now = a.read_ns

        # unplugged: NMEA unusable within 5 s, still serving, back when plugged in again
        pty.unplug()
        wait_for(lambda: not tk.gps.status(now()).fix_ok, 5)
        served = a.server.counters.served
        assert query_ok(a)
        assert a.server.counters.served > served
        pty.replug()
        wait_for(lambda: tk.gps.status(now()).usable, 15)

        # garbage on the line: counted and skipped
        gps.send_garbage(b"\x00\xb5\x62garbage$GPXXX,1,2*00\r\n\xff" * 20)
        time.sleep(2)
        assert tk.gps.status(now()).usable
        assert a.serial.stream.counters.garbage_bytes > 0

        # a week jump: unusable within 5 s, the clock holds, recovers when good dates return
        before = tk.gps.counters.lock_breaks
        gps.jump_weeks(1)
        wait_for(lambda: not tk.gps.status(now()).usable, 5)
        assert tk.gps.counters.lock_breaks == before + 1
        assert abs(tk.clock.now_ns() - time.time_ns()) < 1_000_000  # type: ignore[union-attr]
        assert query_ok(a)
        gps.jump_weeks(-1)
        wait_for(lambda: tk.gps.status(now()).usable, 10)
        assert abs(tk.clock.now_ns() - time.time_ns()) < 1_000_000  # type: ignore[union-attr]
        assert a.server.state.stratum == 1
    finally:
        a.stop()
        a.close()


def query_ok(a: Appliance) -> bool:
    import socket

    from appliance.ntp.exchange import client_request, evaluate

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        data, xmt = client_request(time.time_ns())
        s.sendto(data, a.addresses[0])
        m = evaluate(s.recv(512), xmt, time.time_ns())
    return m.stratum >= 1 and abs(m.offset_ns) < NS_PER_S
