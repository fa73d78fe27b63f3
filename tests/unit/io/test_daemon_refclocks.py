"""Several reference clocks at once: two NMEA receivers and an upstream server, each a source of its own.

The receivers are the shipped fake (:class:`appliance.fakes.gps.FakeGps`) behind ptys, on the host's time;
unplugging the one selected leaves the other selected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.fakes.gps import FakeGps, PtyWriter
from appliance.sources.timekeeper import Basis


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def test_two_receivers_and_a_server_are_three_sources(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stratum1")
    writers = [
        PtyWriter(FakeGps("mtk3339", start_ns=time.time_ns(), seed=n), time.time_ns, link=tmp_path / f"gps{n}")
        for n in (0, 1)
    ]
    config = parse_config(
        f"refclock nmea unit 0 path {writers[0].path} time2 0.3\n"
        f"refclock nmea unit 1 path {writers[1].path} time2 0.3\n"
        "server 127.0.0.1 port 9 iburst\n",  # never answers: configured, never selected
        "t.conf",
    )
    try:
        app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0, clock="soft"))
        for w in writers:
            w.follow(app.loop)
        app.start_thread()
        try:
            tk = app.timekeeper
            assert tk is not None
            wait_for(lambda: tk.basis is Basis.REFCLOCK, 30, "refclock basis")
            names = {e.name for e in tk.status().selection.estimates}
            assert names == {"NMEA(0)", "NMEA(1)", "127.0.0.1:9"}, names
            logged = "\n".join(r.getMessage() for r in caplog.records)
            assert "reference clock NMEA(0)" in logged and "reference clock NMEA(1)" in logged
            assert "sources: NMEA(0), NMEA(1), 127.0.0.1:9" in logged
            peer = tk.status().system_peer
            assert peer in ("NMEA(0)", "NMEA(1)")
            other = "NMEA(1)" if peer == "NMEA(0)" else "NMEA(0)"
            writers[int(peer[5])].unplug()
            wait_for(lambda: tk.status().system_peer == other, 15, f"{other} selected")
            assert tk.basis is Basis.REFCLOCK and app.server.state.stratum == 1
        finally:
            app.stop()
            app.close()
    finally:
        for w in writers:
            w.close()
