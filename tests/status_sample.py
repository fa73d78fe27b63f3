"""A status snapshot for tests: a PPS-locked GPS as system peer, an upstream server, the local clock."""

from __future__ import annotations

from dataclasses import replace

from appliance.status.snapshot import (
    Alarm,
    ClockStatus,
    Counters,
    GpsStatus,
    SatelliteStatus,
    Snapshot,
    SourceStatus,
    SystemStatus,
)
from appliance.timebase import NS_PER_S

NOW = 1_795_000_000 * NS_PER_S


def source(assoc_id: int, name: str, kind: str, tally: str, **kw: object) -> SourceStatus:
    base = dict(
        assoc_id=assoc_id,
        name=name,
        kind=kind,
        address="127.127.20.0" if kind == "refclock" else "192.0.2.10",
        tally=tally,
        stratum=0,
        refid="PPS",
        reach=0o377,
        poll=4,
        offset_ns=-6_389,
        delay_ns=0,
        jitter_ns=17_605,
        dispersion_ns=25_929,
        root_delay_ns=0,
        root_dispersion_ns=0,
        leap=0,
        usable=True,
        updated_ns=NOW - NS_PER_S,
    )
    base.update(kw)
    return SourceStatus(**base)  # type: ignore[arg-type]


SNAP = Snapshot(
    time_ns=NOW,
    started_ns=NOW - 60 * NS_PER_S,
    version="stratum1 test",
    system=SystemStatus(
        leap=0,
        stratum=1,
        precision=-20,
        root_delay_ns=0,
        root_dispersion_ns=37_000,
        refid="PPS",
        reference_ns=NOW,
        basis="refclock",
        peer=1,
        offset_ns=-3_981,
        frequency_ppb=444.0,
        frequency_sd_ppb=63.0,
        sys_jitter_ns=16_266,
        clock_jitter_ns=1_725,
        error_ns=2_000,
        poll=4,
        discipline="tracking",
    ),
    sources=(
        source(1, "GPS(0)", "refclock", "o"),
        source(
            2,
            "ntp.example.org",
            "server",
            "+",
            address="192.0.2.10",
            stratum=2,
            refid="192.0.2.1",
            poll=6,
            delay_ns=412_000,
            offset_ns=51_000,
        ),
        source(3, "LOCAL(0)", "local", "#", address="127.127.1.0", stratum=10, refid="LOCL", poll=6),
    ),
    counters=Counters(received=10, served=8, kod=0, rate_limited=0, refused=1, dropped=1, control=3),
    gps=GpsStatus(
        fix=True,
        pps=True,
        locked=True,
        fix_mode="three_d",
        satellites_used=9,
        satellites_in_view=12,
        nmea_delay_ns=180_000_000,
        last_fix_ns=NOW,
        pps_samples=50,
        nmea_samples=60,
        pulses=60,
        sky=(
            SatelliteStatus("GPS", 3, 21, 174, 29, True),
            SatelliteStatus("GPS", 9, 67, 312, 39, True),
            SatelliteStatus("GPS", 30, 12, 249, 17, False),
            SatelliteStatus("SBAS", 46, None, None, 35, False),
            SatelliteStatus("GLONASS", 70, 76, 297, 43, True),
        ),
        sky_ns=NOW - 2 * NS_PER_S,
    ),
    clocks=(
        ClockStatus(
            "GPS(0)",
            "NMEA receiver on a serial port /dev/serial0 with PPS /dev/pps0",
            time1_ns=50_000_000,
            time2_ns=350_000_000,
            polls=30,
            noreply=1,
            baddata=2,
            badformat=3,
            gps=True,
        ),
        ClockStatus("LOCAL(0)", "the undisciplined local clock", polls=2),
    ),
)

#: The receiver lost its fix (its PPS squelched with it): holdover at stratum 1 (the served refid kept).
HOLDOVER = replace(
    SNAP,
    system=replace(SNAP.system, basis="holdover", peer=0, error_ns=3_400, clock_jitter_ns=2_100, offset_ns=250),
    sources=(replace(SNAP.sources[0], tally=" ", usable=False, why="no pulses"), *SNAP.sources[1:]),
    gps=replace(SNAP.gps, fix=False, pps=False, locked=False, fix_mode="unknown", satellites_used=None),  # type: ignore[arg-type]
    alarms=(
        Alarm("holdover", "warning", "GPS lost: in holdover, estimated error 3.4 us", "check the antenna"),
        Alarm("gps-no-fix", "warning", "the GPS reports no fix", "give the antenna a clear view of the sky"),
    ),
)

#: Nothing to follow: leap 3, stratum 16, refid INIT, no receiver configured.
UNSYNC = replace(
    SNAP,
    system=replace(SNAP.system, leap=3, stratum=16, refid="INIT", basis="unsynchronised", peer=0, reference_ns=None),
    sources=(SNAP.sources[1],),
    gps=None,
    alarms=(Alarm("unsynchronised", "critical", "not synchronised: clients are told so", "check the GPS"),),
)
