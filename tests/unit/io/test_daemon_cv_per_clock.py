"""ntpq's ``cv`` from a running daemon: each reference clock answers with its own state.

Two NMEA receivers behind ptys (the shipped fake): NMEA(0) a good one with ``time1``/``time2`` set, NMEA(1)
silent but for sentences with bad checksums. ``cv`` of NMEA(1) once said NMEA(0)'s fix, satellites and
pulses, and every clock said ``fudgetime1=0.0``, ``badformat=0``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.fakes.gps import FakeGps, PtyWriter
from appliance.ntp import mode6
from appliance.ntp.mode6 import HEADER
from appliance.sources.timekeeper import Basis

BAD = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*00\r\n"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def cv(app: Appliance, assoc: int) -> dict[str, str]:
    reply = app.server.control.handle(
        HEADER.pack((2 << 3) | 6, mode6.OP_READCLOCK, 1, 0, assoc, 0, 0), 0, app.server.state, app.read_ns()
    )
    assert reply is not None and not reply[1] & 0x40
    count = HEADER.unpack_from(reply)[6]
    text = reply[12 : 12 + count].decode().replace("\r\n", "")
    return dict(part.strip().split("=", 1) for part in text.split(",") if part.strip())


def test_each_refclock_answers_cv_with_its_own_state(tmp_path: Path) -> None:
    good = FakeGps("mtk3339", start_ns=time.time_ns(), seed=0)
    bad = FakeGps("mtk3339", start_ns=time.time_ns(), seed=1)
    bad.go_silent()
    for _ in range(20):
        bad.send_garbage(BAD)
    writers = [PtyWriter(g, time.time_ns, link=tmp_path / f"gps{n}") for n, g in enumerate((good, bad))]
    config = parse_config(
        f"refclock nmea unit 0 path {writers[0].path} time1 0.050 time2 0.3\n"
        f"refclock nmea unit 1 path {writers[1].path} time2 0.3 refid GPS1\n",
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

            def counted() -> bool:
                snap = app.snapshot
                one = snap.clock("NMEA(1)") if snap else None
                zero = snap.clock("NMEA(0)") if snap else None
                return bool(one and one.badformat and zero and zero.polls)

            wait_for(counted, 10, "NMEA(1)'s bad sentences and NMEA(0)'s polls counted")
            snap = app.snapshot
            assert snap is not None and snap.gps is not None
            ids = {s.name: s.assoc_id for s in snap.sources}
            zero, one = cv(app, ids["NMEA(0)"]), cv(app, ids["NMEA(1)"])
            assert zero["fudgetime1"] == "50.000" and zero["fudgetime2"] == "300.000"
            assert int(zero["poll"]) >= 1 and zero["badformat"] == "0"
            assert "satellites" in zero and zero["pps"] in ("0", "1") and zero["device"].startswith('"NMEA')
            assert str(writers[0].path) in zero["device"]
            # the silent receiver: its own device, its bad sentences, no fix, satellites or pulses of NMEA(0)
            assert str(writers[1].path) in one["device"] and "satellites" not in one and "fix" not in one
            assert int(one["badformat"]) >= 1 and "fudgetime1" not in one and one["fudgetime2"] == "300.000"
            assert one["refid"] == "GPS1"
        finally:
            app.stop()
            app.close()
    finally:
        for w in writers:
            w.close()
