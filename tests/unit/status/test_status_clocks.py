"""Each reference clock's own state for ``cv``: what the config says of it, joined with its counts."""

from __future__ import annotations

from appliance.config import parse_config
from appliance.nmea.counters import NmeaCounters
from appliance.refclock.source import RefclockCounters
from appliance.status.clocks import clock_lines, clock_statuses, nmea_badformat

CONF = """
refclock nmea unit 0 path /dev/serial0 time1 0.050 time2 0.010
refclock nmea unit 1 path /dev/ttyUSB1 time2 0.3
refclock shm unit 0 refid SHM0 time1 -0.002 flag3 1
server 127.127.1.0
fudge 127.127.1.0 stratum 10 time1 0.001
"""


def test_clock_lines_say_what_each_clock_is_and_its_fudges() -> None:
    lines = {c.name: c for c in clock_lines(parse_config(CONF, "c.conf"))}
    assert set(lines) == {"NMEA(0)", "NMEA(1)", "SHM(0)", "LOCAL(0)"}
    zero, one, shm, local = lines["NMEA(0)"], lines["NMEA(1)"], lines["SHM(0)"], lines["LOCAL(0)"]
    assert (zero.time1_ns, zero.time2_ns) == (50_000_000, 10_000_000) and "/dev/serial0" in zero.device
    assert (one.time1_ns, one.time2_ns) == (None, 300_000_000) and "/dev/ttyUSB1" in one.device
    assert (shm.time1_ns, shm.time2_ns, shm.flags) == (-2_000_000, None, 0b100) and "shared memory" in shm.device
    assert local.time1_ns == 1_000_000 and "local clock" in local.device
    assert zero.device != one.device != shm.device


def test_clock_statuses_carry_each_clocks_own_counts() -> None:
    lines = clock_lines(parse_config(CONF, "c.conf"))
    counters = {
        "NMEA(0)": RefclockCounters(polls=8, too_few=1, future=1, stale=2, unsynchronised=3, not_newer=40),
        "NMEA(1)": RefclockCounters(polls=8, too_few=8),
        "SHM(0)": RefclockCounters(polls=8, too_few=8),
    }
    bad = NmeaCounters(bad_checksum=5, no_checksum=1, truncated=2, too_long=3, decode_error=4, ignored=100)
    assert nmea_badformat(bad) == 15
    got = {c.name: c for c in clock_statuses(lines, counters, {"NMEA(1)": nmea_badformat(bad)}, "NMEA(0)")}
    assert (got["NMEA(0)"].polls, got["NMEA(0)"].noreply, got["NMEA(0)"].baddata) == (8, 1, 6)
    assert got["NMEA(0)"].gps and not got["NMEA(1)"].gps and not got["SHM(0)"].gps
    assert got["NMEA(1)"].badformat == 15 and got["NMEA(0)"].badformat is None
    assert (got["SHM(0)"].noreply, got["SHM(0)"].badformat) == (8, None)
    local = got["LOCAL(0)"]  # no filter: nothing counted, nothing said
    assert (local.polls, local.noreply, local.baddata, local.badformat) == (None, None, None, None)


def test_a_clock_no_line_names_is_there_too() -> None:
    """--simulate adds its receiver without a line: it has its own state all the same."""
    got = clock_statuses((), {"NMEA(0)": RefclockCounters(polls=3)}, {"NMEA(0)": 0}, "NMEA(0)")
    assert len(got) == 1 and got[0].name == "NMEA(0)" and got[0].polls == 3 and got[0].gps
    assert got[0].device.startswith("NMEA receiver")
