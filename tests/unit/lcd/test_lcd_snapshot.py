"""The display fed from the status snapshot: a healthy, a holdover and an unsynchronised appliance, as the
characters of each page; and the runner's source that prefers the status socket and falls back to NTP."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from status_sample import HOLDOVER, SNAP, UNSYNC

from appliance.io.statussock import StatusServer
from appliance.lcd.pages import LCD_16X2, LCD_20X4, LcdView, pages, render
from appliance.lcd.runner import StatusViewSource
from appliance.lcd.view import view_from_snapshot


def glass(page: str, view: LcdView) -> list[str]:
    return [line.rstrip() for line in render(page, view, LCD_20X4)]


def test_healthy_appliance() -> None:
    v = view_from_snapshot(SNAP, ip_address="192.168.1.20", load=0.25)
    assert pages(v) == ("time", "offset", "gps", "net")  # no alarm page
    assert glass("time", v) == ["2026-11-18 11:06:40", "Stratum 1  refid PPS", "Locked to GPS", "No alarms"]
    # the snapshot's offset, reference minus local (-3.981 us: the appliance 3.981 us ahead), with the sign
    # stratum1 status and ntpq give it
    assert glass("offset", v)[:2] == ["Offset  -0.004ms", "Jitter  0.002ms"]
    assert glass("gps", v) == ["GPS fix 3D", "Satellites used 9", "Satellites seen 12", "Locked to GPS"]
    assert glass("net", v) == ["IP address", "192.168.1.20", "Load 0.25", ""]
    assert [line.rstrip() for line in render("time", v, LCD_16X2)] == ["11:06:40 UTC", "S1 PPS  locked"]


def test_holdover_appliance() -> None:
    v = view_from_snapshot(HOLDOVER)
    assert v.basis == "holdover" and pages(v)[0] == "alarm"
    assert glass("alarm", v) == ["2 ALARMS", "Holdover: no GPS", "GPS: no fix", ""]
    assert glass("time", v) == ["2026-11-18 11:06:40", "Stratum 1  refid PPS", "Holdover: no GPS", "2 alarms"]
    assert glass("gps", v) == ["GPS fix none", "Satellites used --", "Satellites seen 12", "Holdover: no GPS"]
    assert [line.rstrip() for line in render("time", v, LCD_16X2)] == ["11:06:40 UTC", "S1 PPS  holdover"]


def test_unsynchronised_appliance() -> None:
    v = view_from_snapshot(UNSYNC)
    assert glass("alarm", v) == ["ALARM", "Not synchronised", "", ""]
    assert glass("time", v) == ["2026-11-18 11:06:40", "Stratum 16 INIT", "Not synchronised", "1 alarm"]
    assert glass("offset", v)[:2] == ["Offset  --", "Jitter  --"]  # nothing is followed: no offset to show
    assert glass("gps", v)[:3] == ["GPS fix --", "Satellites used --", "Satellites seen --"]  # no receiver


def test_the_socket_first_then_ntp_and_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "status.sock")
    from_ntp = LcdView(utc_ns=0, stratum=10, refid="LOCL", basis="local")
    source = StatusViewSource(path, lambda: from_ntp)
    with caplog.at_level(logging.INFO):
        assert source() is from_ntp and source() is from_ntp  # no socket yet
        server = StatusServer(path, group=None)
        server.publish(HOLDOVER.to_json().encode() + b"\n")
        server.start()
        try:
            v = source()
            assert (v.basis, v.fix, v.satellites_seen) == ("holdover", "none", 12)
        finally:
            server.close()
        assert source() is from_ntp
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("asking the appliance itself" in w for w in warnings)
