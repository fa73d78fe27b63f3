"""The NMEA decoder's and the serial driver's counters reach the operator: stratum1 status, --json, the exporter,
and a log line the first time a receiver's dates are repaired for the GPS week rollover."""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.clock.simulated import SimulatedClock
from appliance.fakes.gps import sentence
from appliance.io.statussock import StatusServer
from appliance.nmea import NmeaStream, RolloverPolicy
from appliance.nmea.link import SerialLink
from appliance.ntp.server import ServerCounters
from appliance.refclock.gps import GpsClock
from appliance.sources.timekeeper import Timekeeper
from appliance.status import metrics
from appliance.status.collect import AssocIds, snapshot_from
from appliance.status.snapshot import Snapshot
from appliance.status.text import rollover_line, status_text
from appliance.timebase import NS_PER_S

T0 = 1_795_000_000 * NS_PER_S  # 2026-11-18
ROLLOVER_DAYS = 1024 * 7


def rmc(t_ns: int) -> bytes:
    d = datetime.datetime.fromtimestamp(t_ns // NS_PER_S, datetime.UTC)
    return sentence(f"GPRMC,{d:%H%M%S}.00,A,4807.038,N,01131.000,E,0.0,0.0,{d:%d%m%y},,,A")


def receiver(stream: NmeaStream, clock: GpsClock, seconds: range, *, days_behind: int = 0, junk: bytes = b"") -> int:
    """Feed ``seconds`` of one RMC a second (its date ``days_behind``), ``junk`` after each; the local time after."""
    now = T0
    for k in seconds:
        now = T0 + k * NS_PER_S + 300_000_000
        for fix in stream.feed(rmc(T0 + k * NS_PER_S - days_behind * 86_400 * NS_PER_S) + junk, now):
            clock.on_fix(fix)
    return now


def snap(stream: NmeaStream, clock: GpsClock, now: int, **serial: int) -> Snapshot:
    link = SerialLink("/dev/gps0", is_open=True, baud=9600, opened_ns=T0, bytes_ns=now, nmea_ns=now)
    link = replace(link, nmea=stream.counters, **serial)
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    return snapshot_from(
        tk, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, gps=clock, serial=link
    )


def troubled() -> Snapshot:
    """A receiver with a bad-checksum line, binary junk and a cut line each second; the port lost once."""
    stream, clock = NmeaStream(RolloverPolicy(build_date_ns=T0)), GpsClock()
    bad = rmc(T0).replace(b"*", b"0*")
    junk = bad + b"\xb5\x62\x01\x07\x00" + b"$GPGGA,1200"  # the cut line ends at the next "$"
    now = receiver(stream, clock, range(10), junk=junk)
    return snap(stream, clock, now, losses=1, baud_switches=2)


def test_status_shows_what_was_dropped() -> None:
    s = troubled()
    assert s.gps is not None
    c = s.gps.counters
    assert (c.bad_checksum, c.truncated, c.losses, c.baud_switches) == (10, 9, 1, 2)
    assert c.garbage_bytes > 0 and c.epochs >= 9
    counts = f"bad_checksum 10, truncated 9, garbage_bytes {c.garbage_bytes}, losses 1, baud_switches 2"
    assert f"           counts: {counts}\n" in status_text(s)
    assert Snapshot.from_json(s.to_json()).gps == s.gps  # --json carries them, and reads them back


def test_a_clean_receiver_shows_no_counts_line() -> None:
    stream, clock = NmeaStream(RolloverPolicy(build_date_ns=T0)), GpsClock()
    s = snap(stream, clock, receiver(stream, clock, range(5)))
    assert "counts:" not in status_text(s)


def test_the_first_rollover_repair_is_logged_once() -> None:
    stream, clock = NmeaStream(RolloverPolicy(build_date_ns=T0)), GpsClock()
    first = snap(stream, clock, T0)
    rolled = snap(stream, clock, receiver(stream, clock, range(3), days_behind=ROLLOVER_DAYS))
    assert rolled.gps is not None and rolled.gps.counters.rollover_repaired == 3
    assert clock.status(rolled.time_ns).last_fix is not None
    assert clock.status(rolled.time_ns).last_fix.utc_ns == T0 + 2 * NS_PER_S  # type: ignore[union-attr]
    said = rollover_line(first, rolled)
    assert said is not None and "the receiver has the GPS week rollover bug" in said and "repaired" in said
    later = snap(stream, clock, receiver(stream, clock, range(3, 6), days_behind=ROLLOVER_DAYS))
    assert rollover_line(rolled, later) is None  # once, not every second
    assert rollover_line(None, rolled) is not None  # the daemon's first snapshot has no previous one
    assert "rollover_repaired 6" in status_text(later)


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[str]:
    s = StatusServer(str(tmp_path / "status.sock"), group=None)
    s.publish(troubled().to_json().encode() + b"\n")
    s.start()
    yield s.path
    s.close()


def test_the_exporter_has_them_as_labelled_counters(sock: str) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    from appliance.exporter import exposition

    s = troubled()
    assert s.gps is not None
    c = s.gps.counters
    types = {}
    values = {}
    for family in parser.text_string_to_metric_families(exposition(sock).decode()):
        types[family.name] = family.type
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    for name in ("gps_nmea_dropped_lines", "gps_garbage_bytes", "gps_rollover_dates", "gps_serial_events"):
        assert types[f"stratum1_{name}"] == "counter"
    assert values[("stratum1_gps_nmea_dropped_lines_total", (("reason", "bad_checksum"),))] == 10
    assert values[("stratum1_gps_nmea_dropped_lines_total", (("reason", "truncated"),))] == 9
    assert values[("stratum1_gps_garbage_bytes_total", ())] == c.garbage_bytes
    assert values[("stratum1_gps_rollover_dates_total", (("result", "repaired"),))] == 0
    assert values[("stratum1_gps_serial_events_total", (("event", "loss"),))] == 1
    assert values[("stratum1_gps_serial_events_total", (("event", "baud_switch"),))] == 2
    documented = metrics.__doc__ or ""
    for f in metrics.families(s):
        shown = f"{f.name}_total" if f.kind == "counter" else f.name
        assert shown in documented, f"{shown} is missing from status/metrics.py's table"
