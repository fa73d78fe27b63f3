"""A ``pps`` line next to an NMEA line: what it says acts, or is warned about with file:line.

ntpd and NTPsec make the NMEA line and the PPS (ATOM) line two associations,
each with its own noselect, prefer, refid, stratum and poll. stratum1 pairs
the PPS with the receiver into one source: ``noselect`` leaves the pulses
out of it (the PPS stays a source of its own, not selected), ``refid`` is
the refid of its pulse updates, ``prefer`` prefers the pair; its stratum and
poll are the NMEA line's, and saying them on the pps line is warned about.
"""

from __future__ import annotations

import random

import pytest

from appliance.build import Edge, _add_nmea
from appliance.clock.simulated import SimulatedClock
from appliance.config import parse_config
from appliance.nmea.rollover import RolloverPolicy
from appliance.nmea.stream import NmeaStream
from appliance.refclock.gps import Convention
from appliance.refclock.setup import refclock_lines, setup_warnings
from appliance.sources.timekeeper import Timekeeper
from appliance.state import refid_from_text

T0 = 1_795_000_000_000_000_000

NTPSEC_NOSELECT = (
    "refclock nmea unit 0 path /dev/ttyS9 baud 9600 time2 0.4 refid GPS\n"
    "refclock pps unit 0 path /dev/pps0 refid PPS1 noselect minpoll 4 stratum 3\n"
)
NTPD_NOSELECT = (
    "server 127.127.20.0 mode 17 prefer\n"
    "fudge 127.127.20.0 time2 0.4\n"
    "server 127.127.22.0 minpoll 4 maxpoll 4 noselect\n"
    "fudge 127.127.22.0 refid PPS1 stratum 3 time1 0.000002\n"
)


@pytest.mark.parametrize("text", [NTPSEC_NOSELECT, NTPD_NOSELECT])
def test_a_noselect_pps_line_is_not_paired_and_stays_a_source_not_selected(text: str) -> None:
    config = parse_config(text, "t.conf")
    by_name = {line.name: line for line in refclock_lines(config)}
    assert set(by_name) == {"NMEA(0)", "PPS(0)"}
    nmea, pps = by_name["NMEA(0)"], by_name["PPS(0)"]
    assert nmea.gps is not None and nmea.gps.pps_path is None  # its pulses are not used
    assert pps.pps_path == "/dev/pps0"
    s = pps.settings
    assert (s.noselect, s.refid, s.stratum, s.poll) == (True, "PPS1", 3, 4)
    # nothing of it dropped: no warning about the pairing
    assert not [w for w in setup_warnings(config) if "paired" in str(w)], setup_warnings(config)


@pytest.mark.parametrize(
    "text",
    [
        "refclock nmea unit 0 path /dev/serial0 time2 0.4\nrefclock pps unit 0 path /dev/pps0 refid PPS1 prefer\n",
        "server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.4\n"
        "server 127.127.22.0 prefer\nfudge 127.127.22.0 refid PPS1\n",
    ],
)
def test_a_paired_pps_lines_refid_and_prefer_act_on_the_pair(text: str) -> None:
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert line.name == "NMEA(0)" and line.gps is not None
    assert line.gps.pps_path == "/dev/pps0"
    assert line.gps.pulse_refid == "PPS1"
    assert line.settings.prefer


def test_the_pulse_updates_carry_the_pps_lines_refid() -> None:
    text = "refclock nmea unit 0 path /dev/serial0 time2 0.4\nrefclock pps unit 0 path /dev/pps0 refid PPS1\n"
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    edge = Edge(loop=None, tk=tk)  # type: ignore[arg-type]
    _add_nmea(edge, line.settings, line.gps, Convention.CURRENT, NmeaStream(RolloverPolicy(0)), explicit_refid=False)
    assert tk._refclocks["NMEA(0)"].pulse_refid == refid_from_text("PPS1")


def test_without_a_refid_on_the_pps_line_pulses_are_still_pps() -> None:
    text = "refclock nmea unit 0 path /dev/serial0 time2 0.4\nrefclock pps unit 0 path /dev/pps0\n"
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    edge = Edge(loop=None, tk=tk)  # type: ignore[arg-type]
    _add_nmea(edge, line.settings, line.gps, Convention.CURRENT, NmeaStream(RolloverPolicy(0)), explicit_refid=False)
    assert tk._refclocks["NMEA(0)"].pulse_refid == refid_from_text("PPS")


@pytest.mark.parametrize(
    ("text", "stratum_at", "poll_at"),
    [
        (
            "refclock nmea unit 0 path /dev/serial0 time2 0.4\n"
            "refclock pps unit 0 path /dev/pps0 refid PPS1 minpoll 4 stratum 3\n",
            "t.conf:2",
            "t.conf:2",
        ),
        (
            "server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.4\n"
            "server 127.127.22.0 minpoll 4 maxpoll 4\nfudge 127.127.22.0 stratum 3\n",
            "t.conf:4",
            "t.conf:3",
        ),
    ],
)
def test_a_paired_pps_lines_stratum_and_poll_are_warned_about(text: str, stratum_at: str, poll_at: str) -> None:
    found = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    stratum = [w for w in found if w.split(": warning: ")[1].startswith("stratum for ")]
    poll = [w for w in found if w.split(": warning: ")[1].startswith("minpoll for this PPS line")]
    assert len(stratum) == 1 and stratum[0].startswith(f"{stratum_at}: warning: ") and "t.conf:1" in stratum[0]
    assert len(poll) == 1 and poll[0].startswith(f"{poll_at}: warning: ")
