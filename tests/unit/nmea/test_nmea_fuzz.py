"""Fuzzing the decoder: random bytes, mutated real lines and corrupted receiver logs, cut anywhere.

Whatever the bytes and wherever the chunks break, the decoder never raises,
gives the same fixes and the same counts as when fed the whole input at once,
and accounts for every byte and every line (:mod:`appliance.nmea.counters`).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import log_build_date_ns, log_payload, nmea_logs

from appliance.nmea import Fix, NmeaCounters, NmeaStream, RolloverPolicy

# Real lines from the receivers in tests/data/nmea (checksums intact).
REAL = [
    b"$GPGGA,202640.000,4404.1306,N,12118.8515,W,2,10,0.98,1127.7,M,-19.6,M,0000,0000*6C\r\n",
    b"$GPGSA,A,3,20,16,09,03,07,10,23,19,27,30,,,1.64,0.98,1.31*05\r\n",
    b"$GPRMC,202640.000,A,4404.1306,N,12118.8515,W,0.03,225.97,130415,,,D*73\r\n",
    b"$GPZDA,202640.000,13,04,2015,,*54\r\n",
    b"$GPGSV,3,1,12,09,88,089,31,07,60,281,44,23,55,123,33,10,44,274,32*78\r\n",
    b"$GNZDA,001052.00,10,01,2017,00,00*7A\r\n",
    b"$GNGLL,4404.14081,N,12118.85894,W,001052.00,A,A*68\r\n",
    b"$GNGNS,213712.000,4111.59903,N,11156.54809,W,AANN,13,0.93,01482.5,-016.5,,*52\r\n",
    b"$GNRMC,120213.000,A,5957.0062,N,01100.6429,E,0.00,0.00,310722,,,D,V*0A\r\n",
    b"$GNGSA,A,3,68,69,70,78,84,85,,,,,,,1.5,1.3,1.0,2*3D\r\n",
    b"$GPRMC,000231.42,A,4829.0005,N,00022.0016,E,0.16,212.28,220899,,,A*59\r\n",
    b"$GPRMC,235948.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*45\r\n",
    b"$PERC,GPppf,-06.1,-005.8,0,18,0*46\r\n",
    b"$GPVTG,000.0,T,357.0,M,000.0,N,0000.1,K,A*13\r\n",
    b"$$GPTXT,DEFAULT PVT CONFIGURATION*2A\n",
    b"$GYOACC,090624,000653.10,0.004960,-0.001510,0.005386,100,-3.358145,-8.120926,4.427577,100,35,0,100,0*21\r\n",
]
POLICY = RolloverPolicy(build_date_ns=int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9)
NOISE = st.sampled_from([b"$", b"!", b"*", b",", b"\r", b"\n", b"\x00", b"\xb5b", b"\x1b[H", b"7A", b" "])


def corrupt(draw: st.DrawFn, clean: bytes, most: int = 8) -> bytes:
    """``clean`` run through up to ``most`` byte flips, insertions, deletions and cuts."""
    data = bytearray(clean)
    for _ in range(draw(st.integers(0, most))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(NOISE | st.binary(max_size=6))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "cut":
            del data[pos:]
    return bytes(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Real lines, run through byte flips, insertions, deletions and cuts."""
    return corrupt(draw, b"".join(draw(st.lists(st.sampled_from(REAL), min_size=1, max_size=12))))


def cut_points(data: bytes, most: int = 10) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=most).map(sorted)


def run(
    data: bytes, cuts: list[int], checksum_optional: bool = False, policy: RolloverPolicy = POLICY, sentences: int = 0
) -> tuple[list[Fix], NmeaCounters]:
    stream = NmeaStream(policy, checksum_optional=checksum_optional, max_line=90, sentences=sentences)
    fixes: list[Fix] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        fixes += stream.feed(data[start:end], 0)
        c = stream.counters
        assert c.bytes_in == c.garbage_bytes + c.eol_bytes + c.line_bytes
    return fixes + stream.flush(), stream.counters


def assert_adds_up(data: bytes, fixes: list[Fix], c: NmeaCounters, policy: RolloverPolicy = POLICY) -> None:
    assert c.bytes_in == len(data)
    assert c.bytes_in == c.garbage_bytes + c.eol_bytes + c.line_bytes
    refused = c.bad_checksum + c.no_checksum + c.truncated + c.too_long + c.decode_error
    assert c.lines == c.decoded + c.ignored + c.proprietary + c.unknown_type + refused
    assert c.decoded == c.placed + c.unplaced + c.unselected
    assert c.epochs == len(fixes)
    assert c.undated_epochs == sum(f.utc_ns is None for f in fixes)
    assert all(f.utc_ns is None or f.utc_ns >= policy.earliest_ns for f in fixes)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.data(), st.booleans())
def test_random_bytes(data: bytes, draw: st.DataObject, optional: bool) -> None:
    fixes, counts = run(data, draw.draw(cut_points(data)), optional)
    assert_adds_up(data, fixes, counts)
    assert (fixes, counts) == run(data, [], optional)  # chunking changes nothing


@settings(max_examples=150, deadline=None)
@given(mutated(), st.data(), st.booleans())
def test_mutated_real_lines(data: bytes, draw: st.DataObject, optional: bool) -> None:
    fixes, counts = run(data, draw.draw(cut_points(data)), optional)
    assert_adds_up(data, fixes, counts)
    assert (fixes, counts) == run(data, [], optional)  # chunking changes nothing


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(REAL), max_size=20), st.data())
def test_clean_lines_decode_whatever_the_chunking(lines: list[bytes], draw: st.DataObject) -> None:
    data = b"".join(lines)
    fixes, counts = run(data, draw.draw(cut_points(data)))
    assert_adds_up(data, fixes, counts)
    assert counts.bad_checksum == counts.no_checksum == counts.truncated == counts.decode_error == 0
    assert (fixes, counts) == run(data, [])


@settings(max_examples=100, deadline=None)
@given(mutated(), st.data(), st.sampled_from([1, 2, 4, 8, 9, 0x200, 0x20F]))
def test_sentence_selection_whatever_the_chunking(data: bytes, draw: st.DataObject, bits: int) -> None:
    """With any ``mode`` sentence bits the counts still add up, and chunking changes nothing."""
    fixes, counts = run(data, draw.draw(cut_points(data)), sentences=bits)
    assert_adds_up(data, fixes, counts)
    assert (fixes, counts) == run(data, [], sentences=bits)


@functools.cache
def receiver_logs(data: Path) -> tuple[tuple[bytes, RolloverPolicy], ...]:
    """Each receiver log's bytes, with the rollover policy of its capture date."""
    return tuple((log_payload(log), RolloverPolicy(log_build_date_ns(log))) for log in nmea_logs(data))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.booleans())
def test_receiver_logs_corrupted_and_cut_anywhere(shared_data: Path, draw: st.DataObject, optional: bool) -> None:
    """Seeds from real receivers (every log), a window of each, randomly corrupted, in random chunks."""
    payload, policy = draw.draw(st.sampled_from(receiver_logs(shared_data)), label="log")
    start = draw.draw(st.integers(0, len(payload)), label="start")
    window = payload[start : start + draw.draw(st.integers(0, 4000), label="length")]
    data = corrupt(draw.draw, window, most=12)
    fixes, counts = run(data, draw.draw(cut_points(data, most=40), label="cuts"), optional, policy)
    event("dated fixes" if any(f.utc_ns for f in fixes) else "no dated fix")
    assert_adds_up(data, fixes, counts, policy)
    assert (fixes, counts) == run(data, [], optional, policy)
