"""The snapshot's JSON round trip and its text renderings (status, peers, the login line)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from status_sample import SNAP

from appliance.status.snapshot import Alarm, Snapshot
from appliance.status.text import health_line, peers_text, status_text


def test_json_round_trip_is_the_identity() -> None:
    assert Snapshot.from_json(SNAP.to_json()) == SNAP
    assert "\n" not in SNAP.to_json()


def test_unknown_format_is_refused() -> None:
    d = SNAP.to_dict()
    d["format"] = 99
    with pytest.raises(ValueError, match="format"):
        Snapshot.from_dict(d)
    with pytest.raises(ValueError):
        Snapshot.from_json(b"not json")


def test_status_text_names_what_is_served_and_the_gps() -> None:
    text = status_text(SNAP)
    assert text.startswith("synchronised to reference clock (GPS(0), refid PPS) at stratum 1\n")
    assert "satellites 9 used / 12 in view, PPS ok, locked, NMEA delay 180 ms" in text
    assert "alarms:    none" in text


def test_status_text_says_what_to_do_about_alarms() -> None:
    sick = replace(
        SNAP,
        system=replace(SNAP.system, leap=3, stratum=16, basis="unsynchronised", peer=0),
        alarms=(Alarm("unsynchronised", "critical", "not synchronised", "check the antenna"),),
    )
    text = status_text(sick)
    assert text.startswith("unsynchronised\n")
    assert "CRITICAL unsynchronised: not synchronised" in text and "what to do: check the antenna" in text
    assert health_line(sick).startswith("stratum1 CRITICAL: unsynchronised")
    assert health_line(SNAP).startswith("stratum1 OK: synchronised to reference clock")


def test_peers_is_the_ntpq_billboard() -> None:
    lines = peers_text(SNAP).splitlines()
    assert lines[0].split() == ["remote", "refid", "st", "t", "when", "poll", "reach", "delay", "offset", "jitter"]
    gps = lines[2].split()
    assert lines[2][0] == "o" and gps[0] == "oGPS(0)" and gps[1] == ".PPS." and gps[6] == "377"
    server = lines[3]
    assert server.startswith("+ntp.example.org") and " 2 u " in server and "0.4120" in server


def test_holdover_names_no_peer() -> None:
    held = replace(SNAP, system=replace(SNAP.system, basis="holdover", peer=2))
    assert status_text(held).startswith("synchronised to reference clock (holdover) at stratum 1\n")


def test_each_clock_has_its_own_state_in_the_snapshot() -> None:
    """``cv`` reads a clock's own state by its source's name; an older daemon's JSON without it reads as none."""
    back = Snapshot.from_json(SNAP.to_json())
    assert back.clock("GPS(0)") == SNAP.clocks[0] and back.clock("LOCAL(0)") == SNAP.clocks[1]
    assert back.clock("NMEA(1)") is None
    d = SNAP.to_dict()
    del d["clocks"]
    assert Snapshot.from_dict(d).clocks == ()


@pytest.mark.parametrize("leap", [1, 2])
def test_a_leap_second_due_is_said_on_every_display(leap: int) -> None:
    """status, the web page, the exporter and the LCD (from the snapshot and from mode 6) all say it."""
    from dataclasses import replace

    from appliance.lcd.view import view_from_mode6, view_from_snapshot
    from appliance.status.metrics import families
    from appliance.web.page import system_fields

    snap = replace(SNAP, system=replace(SNAP.system, leap=leap))
    text = status_text(snap)
    assert ("23:59:60" if leap == 1 else "23:59:59 UTC is left out") in text
    assert "leap second is due" not in status_text(SNAP)
    assert "Leap second due" in view_from_snapshot(snap).alarms
    assert "Leap second due" not in view_from_snapshot(SNAP).alarms
    m6 = view_from_mode6({"leap": str(leap), "stratum": "1"}, 0x0400, None, now_ns=snap.time_ns)
    assert "Leap second due" in m6.alarms
    gauge = next(f for f in families(snap) if f.name == "stratum1_leap_indicator")
    assert dict(gauge.samples)[()] == float(leap)
    row = next(r for r in system_fields(snap) if r[0] == "leap")
    assert "leap second is due" in row[2]
