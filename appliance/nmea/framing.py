"""Framing: an NMEA 0183 byte stream cut into candidate sentence lines, sans I/O.

NMEA 0183 facts used here:

- a sentence starts with ``$`` (``!`` for encapsulated sentences such as AIS)
  and ends with CR LF; it holds printable ASCII only (0x20-0x7E), and ``$``
  and ``!`` are reserved delimiters that never occur inside one;
- a sentence is at most 82 bytes including the ``$`` and CR LF.

Real serial streams break all of these: receivers interleave binary protocols
(u-blox UBX, SiRF binary), pad with NUL bytes after a reset, end lines with a
bare CR or LF, run two sentences together when a line is cut off (a ``$`` in
the middle of a line), send ``$$GPRMC``, or stop mid-sentence. The rules, one
byte at a time:

- outside a line, bytes up to the next ``$``/``!`` are garbage (CR and LF
  there are just line ends);
- a ``$``/``!`` starts a line (ending any line in progress: ``"next-start"``);
- CR or LF ends a line (``"eol"``); any other non-printable byte ends it
  too (``"binary"``) and is garbage;
- a line longer than ``max_line`` bytes is dropped and counted ``too_long``;
- a start character with nothing after it (``$$``, ``$\\r``) is one garbage
  byte, not a line.

Each line keeps the ``now_ns`` that came with the chunk holding its first
byte: the serial driver reads the local clock when a chunk arrives, and the
epoch's arrival time is its first sentence's first byte. Whether a line is a
good sentence (checksum, type) is :mod:`appliance.nmea.sentence`'s business.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from appliance.nmea.counters import Tally

#: NMEA 0183's limit: 82 bytes including ``$`` and CR LF.
NMEA_MAX_LINE = 80
#: Our default limit on a line (start character included, CR LF not): NMEA's
#: plus slack for receivers that overrun it a little.
DEFAULT_MAX_LINE = 120

_START = re.compile(rb"[$!]")
# The body of a line: printable ASCII except the two start characters.
_BODY = re.compile(rb"[\x20\x22\x23\x25-\x7e]*")
_EOL = frozenset(b"\r\n")
_STARTS = frozenset(b"$!")


class LineEnd(enum.Enum):
    """What ended a candidate line."""

    EOL = "eol"  # CR or LF: the normal end
    NEXT_START = "next-start"  # a ``$`` or ``!``: the line was cut off, or run together
    BINARY = "binary"  # a non-printable byte (binary protocol, NUL, escape)
    EOF = "eof"  # the stream ended (:meth:`Framer.flush`)


@dataclass(frozen=True, slots=True)
class RawLine:
    """One candidate sentence: ``text`` from its ``$``/``!`` to the byte before its end."""

    text: bytes
    arrival_ns: int  # the now_ns of the chunk holding the first byte (POSIX ns, local clock)
    end: LineEnd


class Framer:
    """Incremental framer: feed byte chunks, get the complete :class:`RawLine` values.

    >>> tally = Tally()
    >>> f = Framer(tally)
    >>> f.feed(b"\\x00$GPZDA,1*00\\r\\n$GPR", 5)
    [RawLine(text=b'$GPZDA,1*00', arrival_ns=5, end=<LineEnd.EOL: 'eol'>)]
    >>> f.feed(b"MC,2*00\\n", 9)[0].arrival_ns
    5
    """

    __slots__ = ("_tally", "_max_line", "_buf", "_arrival_ns", "_in_line", "_skipping")

    def __init__(self, tally: Tally, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 2:
            raise ValueError("max_line must be at least 2")
        self._tally = tally
        self._max_line = max_line
        self._buf = bytearray()
        self._arrival_ns = 0
        self._in_line = False
        self._skipping = False  # in a too-long line: drop bytes until it ends

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished line held back for the next chunk."""
        return len(self._buf)

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns``: the unfinished line's arrival moves with it."""
        if self._in_line:
            self._arrival_ns += step_ns

    def feed(self, data: bytes, now_ns: int) -> list[RawLine]:
        """Take the next chunk, read from the port at local time ``now_ns`` (POSIX ns)."""
        self._tally.add("bytes_in", len(data))
        out: list[RawLine] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._in_line:
                pos = self._take_body(data, pos)
                if pos < n:
                    pos = self._end_line(data, pos, out)
            else:
                pos = self._skip_to_start(data, pos, now_ns)
        return out

    def flush(self) -> list[RawLine]:
        """End the stream: hand over the unfinished line, if any (``LineEnd.EOF``)."""
        out: list[RawLine] = []
        if self._in_line:
            self._finish(LineEnd.EOF, out)
        return out

    def _skip_to_start(self, data: bytes, pos: int, now_ns: int) -> int:
        m = _START.search(data, pos)
        stop = m.start() if m else len(data)
        eol = data.count(b"\r", pos, stop) + data.count(b"\n", pos, stop)
        self._tally.add("eol_bytes", eol)
        self._tally.add("garbage_bytes", stop - pos - eol)
        if m is None:
            return stop
        self._in_line = True
        self._skipping = False
        self._buf = bytearray(data[stop : stop + 1])
        self._arrival_ns = now_ns
        self._tally.add("line_bytes", 1)
        return stop + 1

    def _take_body(self, data: bytes, pos: int) -> int:
        m = _BODY.match(data, pos)
        assert m is not None  # the pattern matches the empty string
        end = m.end()
        self._tally.add("line_bytes", end - pos)
        if not self._skipping:
            if len(self._buf) + end - pos > self._max_line:
                self._skipping = True
                self._buf.clear()
            else:
                self._buf += data[pos:end]
        return end

    def _end_line(self, data: bytes, pos: int, out: list[RawLine]) -> int:
        b = data[pos]
        if b in _EOL:
            self._tally.add("eol_bytes", 1)
            self._finish(LineEnd.EOL, out)
            return pos + 1
        if b in _STARTS:
            self._finish(LineEnd.NEXT_START, out)
            return pos  # the start character opens the next line
        self._tally.add("garbage_bytes", 1)
        self._finish(LineEnd.BINARY, out)
        return pos + 1

    def _finish(self, end: LineEnd, out: list[RawLine]) -> None:
        self._in_line = False
        if self._skipping:
            self._skipping = False
            self._tally.add("lines", 1)
            self._tally.add("too_long", 1)
        elif len(self._buf) <= 1:
            # a lone start character: noise, not a line
            self._tally.add("line_bytes", -1)
            self._tally.add("garbage_bytes", 1)
        else:
            self._tally.add("lines", 1)
            out.append(RawLine(bytes(self._buf), self._arrival_ns, end))
        self._buf = bytearray()
