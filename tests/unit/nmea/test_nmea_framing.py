"""Framing: bytes -> candidate lines, with garbage, binary, NUL, run-together and cut-off input."""

from __future__ import annotations

import pytest

from appliance.nmea.counters import Tally
from appliance.nmea.framing import DEFAULT_MAX_LINE, Framer, LineEnd, RawLine


def frame(*chunks: bytes, max_line: int = DEFAULT_MAX_LINE) -> tuple[list[RawLine], Tally, Framer]:
    """Feed ``chunks`` with now_ns = 1000 * chunk index; return the lines, the tally and the framer."""
    tally = Tally()
    framer = Framer(tally, max_line)
    lines: list[RawLine] = []
    for i, chunk in enumerate(chunks):
        lines += framer.feed(chunk, 1000 * i)
    return lines, tally, framer


def texts(lines: list[RawLine]) -> list[bytes]:
    return [line.text for line in lines]


def assert_bytes_add_up(tally: Tally) -> None:
    assert tally.get("bytes_in") == tally.get("garbage_bytes") + tally.get("eol_bytes") + tally.get("line_bytes")


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r", b"\n\r", b"\r\r\n"])
def test_line_endings(eol: bytes) -> None:
    lines, tally, framer = frame(b"$GPA,1*00" + eol + b"$GPB,2*00" + eol)
    assert texts(lines) == [b"$GPA,1*00", b"$GPB,2*00"]
    assert all(line.end is LineEnd.EOL for line in lines)
    assert tally.get("garbage_bytes") == 0
    assert tally.get("eol_bytes") == 2 * len(eol)
    assert framer.pending_bytes == 0
    assert_bytes_add_up(tally)


def test_line_split_across_chunks_keeps_first_chunk_time() -> None:
    lines, _, _ = frame(b"junk$GP", b"ZDA,1", b"*00\r", b"\n$GPR", b"MC*00\r\n")
    assert texts(lines) == [b"$GPZDA,1*00", b"$GPRMC*00"]
    assert [line.arrival_ns for line in lines] == [0, 3000]


def test_garbage_before_between_and_after_is_counted() -> None:
    lines, tally, framer = frame(b"hello $GPX,1*00\r\nworld\r\n\x00\x00$GPY,2*00\r\ntail")
    assert texts(lines) == [b"$GPX,1*00", b"$GPY,2*00"]
    assert tally.get("garbage_bytes") == len(b"hello ") + len(b"world") + 2 + len(b"tail")
    assert framer.pending_bytes == 0  # outside a line nothing is held back
    assert_bytes_add_up(tally)


def test_binary_protocol_bytes_are_garbage() -> None:
    ubx = bytes([0xB5, 0x62, 0x01, 0x07, 0x5C, 0x00]) + bytes(range(0x80, 0x100))
    lines, tally, _ = frame(ubx + b"$GNRMC,1*00\r\n" + ubx)
    assert texts(lines) == [b"$GNRMC,1*00"]
    assert tally.get("garbage_bytes") == 2 * len(ubx)
    assert_bytes_add_up(tally)


def test_run_together_sentences_split_at_the_dollar() -> None:
    lines, _, _ = frame(b"$GPGSA,A,1,,,*1E$GPRMC,235949.00,V*44\r\n")
    assert texts(lines) == [b"$GPGSA,A,1,,,*1E", b"$GPRMC,235949.00,V*44"]
    assert [line.end for line in lines] == [LineEnd.NEXT_START, LineEnd.EOL]


def test_nul_and_escape_end_a_line() -> None:
    lines, tally, _ = frame(b"$GPRMC,000346.03,A,4808\x00\x00\x00   \r\n$GPGSA,A,3*3\x1b[H\x1b[J3\r\n")
    assert texts(lines) == [b"$GPRMC,000346.03,A,4808", b"$GPGSA,A,3*3"]
    assert [line.end for line in lines] == [LineEnd.BINARY, LineEnd.BINARY]
    assert tally.get("garbage_bytes") == 3 + 3 + 1 + len(b"[H") + 1 + len(b"[J3")
    assert_bytes_add_up(tally)


def test_doubled_dollar_is_one_garbage_byte() -> None:
    lines, tally, _ = frame(b"$$GNGSA,A,3*3E\n$\r\n$")
    assert texts(lines) == [b"$GNGSA,A,3*3E"]
    assert tally.get("lines") == 1
    assert tally.get("garbage_bytes") == 2  # the first '$' and the lone '$' before CR
    assert tally.get("line_bytes") == len(b"$GNGSA,A,3*3E") + 1  # + the pending '$'
    assert_bytes_add_up(tally)


def test_too_long_line_is_dropped_until_its_end() -> None:
    long = b"$GPTXT," + b"x" * 200 + b"*00\r\n"
    lines, tally, _ = frame(long[:50], long[50:] + b"$GPOK,1*00\r\n", max_line=120)
    assert texts(lines) == [b"$GPOK,1*00"]
    assert tally.get("too_long") == 1 and tally.get("lines") == 2
    assert_bytes_add_up(tally)


def test_max_line_bound_is_inclusive() -> None:
    exact = b"$" + b"A" * 9
    lines, tally, _ = frame(exact + b"\r\n" + exact + b"A\r\n", max_line=10)
    assert texts(lines) == [exact]
    assert tally.get("too_long") == 1


def test_flush_hands_over_the_unfinished_line() -> None:
    lines, tally, framer = frame(b"$GNRMC,001053.00,A,4404.1")
    assert lines == [] and framer.pending_bytes == len(b"$GNRMC,001053.00,A,4404.1")
    (last,) = framer.flush()
    assert last.end is LineEnd.EOF and last.text.startswith(b"$GNRMC")
    assert framer.flush() == [] and framer.pending_bytes == 0
    assert_bytes_add_up(tally)


def test_bang_starts_a_line_too() -> None:
    lines, _, _ = frame(b"!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24\r\n")
    assert texts(lines) == [b"!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24"]


def test_empty_chunks_are_harmless() -> None:
    lines, tally, _ = frame(b"", b"$GPA,1*00", b"", b"\r\n")
    assert texts(lines) == [b"$GPA,1*00"]
    assert lines[0].arrival_ns == 1000


def test_max_line_must_be_sane() -> None:
    with pytest.raises(ValueError):
        Framer(Tally(), max_line=1)
