"""gpsd's JSON reports to samples and pulses: real gpsd 3.22 lines, PPS, no-fix, bad input, framing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.refclock.gpsd_json import MAX_LINE, GpsdJsonParser, watch_command
from appliance.refclock.sample import SampleKind
from appliance.timebase import NS_PER_S

MS = 1_000_000

#: What gpsd 3.22 (Debian 12) sent for a udp:// NMEA source after ?WATCH={"enable":true,"json":true,"pps":true}.
GPSD_322 = b"""{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}
{"class":"DEVICES","devices":[{"class":"DEVICE","path":"udp://127.0.0.1:29470","activated":"2026-12-02T05:04:19.692Z"}]}
{"class":"WATCH","enable":true,"json":true,"nmea":false,"raw":0,"scaled":false,"timing":false,"split24":false,"pps":true}
{"class":"DEVICE","path":"udp://127.0.0.1:29470","driver":"NMEA0183","activated":"2026-12-02T05:04:21.107Z"}
{"class":"TOFF","device":"udp://127.0.0.1:29470","real_sec":1796187861, "real_nsec":0,"clock_sec":1796187861,"clock_nsec":108260626}
{"class":"TPV","device":"udp://127.0.0.1:29470","mode":2,"time":"2026-12-02T05:04:21.000Z","ept":0.005,"lat":44.068843000,"lon":-121.314192000,"magvar":14.4,"speed":0.010}
{"class":"TPV","device":"udp://127.0.0.1:29470","mode":3,"time":"2026-12-02T05:04:21.000Z","ept":0.005,"lat":44.068843000,"lon":-121.314192000,"altHAE":1108.1000,"altMSL":1127.7000,"alt":1127.7000,"magvar":14.4,"speed":0.010,"geoidSep":-19.600,"eph":18.620}
{"class":"SKY","device":"udp://127.0.0.1:29470","xdop":0.59,"ydop":0.81,"vdop":1.31,"tdop":0.87,"hdop":0.98,"gdop":1.91,"pdop":1.64,"nSat":10,"uSat":9,"satellites":[{"PRN":2,"el":5.0,"az":307.0,"ss":0.0,"used":false,"gnssid":0,"svid":2}]}
"""  # noqa: E501 (lines as gpsd sent them)
T_322 = 1796187861 * NS_PER_S


def test_real_gpsd_lines() -> None:
    p = GpsdJsonParser()
    r = p.feed(GPSD_322, now_ns=T_322 + 200 * MS)
    (toff,) = r.samples  # the TPVs name the same second as the TOFF, which times it better
    assert toff.kind is SampleKind.TIME
    assert toff.reference_ns == T_322 and toff.local_ns == T_322 + 108_260_626
    assert r.pulses == ()
    assert p.proto == (3, 14)
    c = p.counters
    assert (c.lines, c.toff, c.tpv, c.other_class, c.bad_json) == (8, 1, 2, 4, 0)
    assert toff.dispersion_ns == 2 * MS  # no TPV (ept) yet: the default
    later = b'{"class":"TOFF","real_sec":1796187862,"real_nsec":0,"clock_sec":1796187862,"clock_nsec":99000000}\n'
    (next_toff,) = p.feed(later, now_ns=T_322 + 1_200 * MS).samples
    assert next_toff.dispersion_ns == 5 * MS  # the TPVs' ept


def test_tpv_is_the_fallback_until_a_toff_is_seen() -> None:
    p = GpsdJsonParser()
    tpv = b'{"class":"TPV","device":"/dev/ttyAMA0","mode":3,"time":"2026-12-02T05:04:21.000Z","ept":0.005}\n'
    (s,) = p.feed(tpv, now_ns=T_322 + 150 * MS).samples
    assert (s.reference_ns, s.local_ns, s.kind) == (T_322, T_322 + 150 * MS, SampleKind.TIME)
    assert s.dispersion_ns == 5 * MS
    p.feed(
        b'{"class":"TOFF","real_sec":1796187862,"real_nsec":0,"clock_sec":1796187862,"clock_nsec":100000000}\n',
        now_ns=T_322 + NS_PER_S + 110 * MS,
    )
    assert p.feed(tpv, now_ns=T_322 + NS_PER_S + 150 * MS).samples == ()


def pps_line(sec: int, clock_nsec: int, **extra: object) -> bytes:
    obj = {"class": "PPS", "device": "/dev/ttyS0", "real_sec": sec, "real_nsec": 0}
    obj |= {"clock_sec": sec - 1 if clock_nsec > NS_PER_S // 2 else sec, "clock_nsec": clock_nsec, **extra}
    return json.dumps(obj).encode() + b"\n"


def test_pps_gives_a_numbered_pulse_sample_and_a_bare_pulse() -> None:
    p = GpsdJsonParser()
    r = p.feed(pps_line(1_800_000_001, 999_998_000, precision=-10), now_ns=1_800_000_001_100_000_000)
    (s,) = r.samples
    (pulse,) = r.pulses
    assert s.kind is SampleKind.PULSE and s.offset_ns == 2_000
    assert pulse.local_ns == s.local_ns == 1_800_000_000_999_998_000
    assert s.dispersion_ns == NS_PER_S >> 10


def test_old_protocol_microseconds() -> None:
    p = GpsdJsonParser()
    line = b'{"class":"PPS","real_sec":1800000001,"real_musec":0,"clock_sec":1800000001,"clock_musec":12}\n'
    (s,) = p.feed(line, now_ns=0).samples
    assert s.local_ns == 1_800_000_001_000_012_000


def test_no_fix_stops_samples_until_the_next_fix() -> None:
    p = GpsdJsonParser()
    p.feed(b'{"class":"TPV","mode":1}\n', now_ns=0)
    assert p.feed(pps_line(1_800_000_001, 100), now_ns=0).empty
    assert p.counters.no_fix_dropped == 1 and p.counters.tpv_no_fix == 1
    p.feed(b'{"class":"TPV","mode":3,"time":"2027-01-15T08:00:01.000Z"}\n', now_ns=0)
    assert not p.feed(pps_line(1_800_000_002, 100), now_ns=0).empty


def test_other_devices_are_skipped_when_one_is_watched() -> None:
    p = GpsdJsonParser(device="/dev/ttyAMA0")
    assert p.feed(pps_line(1_800_000_001, 100), now_ns=0).empty
    assert p.counters.other_device == 1
    assert (
        watch_command("/dev/ttyAMA0") == b'?WATCH={"device":"/dev/ttyAMA0","enable":true,"json":true,"pps":true};\r\n'
    )


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"no":"class"}', "no_class"),
        (b'{"class":"TOFF","real_sec":"x","real_nsec":0,"clock_sec":1,"clock_nsec":0}', "bad_record"),
        (b'{"class":"TOFF","real_sec":1,"real_nsec":1000000000,"clock_sec":1,"clock_nsec":0}', "bad_record"),
        (b'{"class":"PPS","real_sec":1,"real_nsec":true,"clock_sec":1,"clock_nsec":0}', "bad_record"),
        (b'{"class":"TPV","mode":3,"time":"yesterday"}', "bad_record"),
    ],
)
def test_bad_lines_are_dropped_and_counted(line: bytes, counter: str) -> None:
    p = GpsdJsonParser()
    assert p.feed(line + b"\n", now_ns=0).empty
    assert getattr(p.counters, counter) == 1


def test_lines_split_across_reads_and_an_over_long_line() -> None:
    p = GpsdJsonParser()
    line = pps_line(1_800_000_001, 100)
    assert p.feed(line[:10], now_ns=0).empty
    assert len(p.feed(line[10:], now_ns=0).samples) == 1
    p.feed(b'{"class":"SKY","x":"' + b"a" * (MAX_LINE + 10), now_ns=0)
    p.feed(b"b" * 100 + b'"}\n', now_ns=0)
    assert len(p.feed(line, now_ns=0).samples) == 1  # the line after the long one is read whole
    assert p.counters.too_long == 1


@given(st.binary(max_size=2000))
def test_any_octets_never_raise(data: bytes) -> None:
    p = GpsdJsonParser()
    p.feed(data, now_ns=0)
    p.feed(b"\n", now_ns=0)


@given(
    sec=st.integers(0, 2**33),
    nsec=st.integers(0, NS_PER_S - 1),
    lag=st.integers(0, NS_PER_S - 1),
)
def test_toff_times_to_the_nanosecond(sec: int, nsec: int, lag: int) -> None:
    clock = sec * NS_PER_S + nsec + lag
    line = json.dumps(
        {
            "class": "TOFF",
            "real_sec": sec,
            "real_nsec": nsec,
            "clock_sec": clock // NS_PER_S,
            "clock_nsec": clock % NS_PER_S,
        }
    )
    (s,) = GpsdJsonParser().feed(line.encode() + b"\n", now_ns=0).samples
    assert s.reference_ns == sec * NS_PER_S + nsec and s.local_ns == clock
