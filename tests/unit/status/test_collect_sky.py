"""The GPS sky in the snapshot: the fake receiver's GSV/GSA through the decoder, the pairing and the collector."""

from __future__ import annotations

import random

from appliance.clock.simulated import SimulatedClock
from appliance.fakes.gps import FakeGps
from appliance.nmea import NmeaStream, RolloverPolicy
from appliance.ntp.server import ServerCounters
from appliance.refclock.gps import GpsClock
from appliance.sources.timekeeper import Timekeeper
from appliance.status.collect import SKY_MAX_AGE_NS, AssocIds, snapshot_from
from appliance.status.snapshot import Snapshot
from appliance.timebase import NS_PER_S

T0 = 1_795_000_000 * NS_PER_S


def fed(model: str, seconds: int) -> tuple[GpsClock, int]:
    """A pairing fed ``seconds`` of the fake receiver's NMEA (no pulses); returns it and the time reached."""
    gps, stream, clock = FakeGps(model, start_ns=T0), NmeaStream(RolloverPolicy(T0 - 86400 * NS_PER_S)), GpsClock()
    now = T0
    for _ in range(seconds * 10):
        now += NS_PER_S // 10
        for chunk in gps.tick(now):
            for fix in stream.feed(chunk.data, chunk.at_ns):
                clock.on_fix(fix)
    assert stream.counters.sky_groups > 0 and stream.counters.sky_groups_dropped == 0
    return clock, now


def snap(clock: GpsClock, now: int) -> Snapshot:
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    return snapshot_from(
        tk, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, gps=clock
    )


def test_the_fake_receivers_sky_reaches_the_snapshot_and_its_json() -> None:
    clock, now = fed("ublox-m8", 4)
    s = snap(clock, now)
    assert s.gps is not None
    sky = s.gps.sky
    assert {x.system for x in sky} == {"GPS", "GLONASS"} and len(sky) == 15 == s.gps.satellites_in_view
    used = [x for x in sky if x.used]
    assert len(used) == 14 and all(x.snr_dbhz for x in used)  # the fake's GSA lists every satellite it hears
    assert all(0 <= (x.elevation_deg or 0) <= 90 and 0 <= (x.azimuth_deg or 0) < 360 for x in sky)
    assert Snapshot.from_json(s.to_json()) == s  # the status socket's JSON carries it, and reads back


def test_mediatek_sends_gsv_every_fifth_second_and_the_sky_stands_between() -> None:
    clock, now = fed("mtk3339", 7)
    s = snap(clock, now)
    assert s.gps is not None and len(s.gps.sky) == 10 and s.gps.satellites_in_view == 10
    assert s.gps.sky_ns is not None and now - s.gps.sky_ns >= NS_PER_S  # not from the last epoch
    stale = snap(clock, s.gps.sky_ns + SKY_MAX_AGE_NS)
    assert stale.gps is not None and stale.gps.sky == () and stale.gps.sky_ns is None  # too old: not shown
