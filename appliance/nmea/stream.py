"""The NMEA decoder as one object: bytes and their arrival time in, fixes out, sans I/O.

:class:`NmeaStream` is what a serial driver holds: it feeds every chunk it
reads, with the local time it read it, and gets :class:`~appliance.nmea.epoch.Fix`
values back. It reads no clock and touches no port; the layers it chains are
:mod:`~appliance.nmea.framing` (bytes -> lines), :mod:`~appliance.nmea.sentence`
(lines -> sentences, via pynmea2) and :mod:`~appliance.nmea.epoch`
(sentences -> fixes, with :mod:`~appliance.nmea.rollover` repairing dates).
:class:`SentenceStream` stops after the sentences, for tools that want them.

Nothing raises on input: whatever is dropped is counted in
:attr:`NmeaStream.counters`.

>>> from appliance.nmea.rollover import RolloverPolicy
>>> s = NmeaStream(RolloverPolicy(build_date_ns=1_700_000_000 * 10**9))
>>> s.feed(b"$GPRMC,120000.00,A,4807.038,N,01131.000,E,0.0,0.0,230324,,,A*5B\\r\\n", 42)
[]
>>> [(f.utc_ns, f.arrival_ns, f.valid) for f in s.flush()]
[(1711195200000000000, 42, True)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from appliance.nmea.counters import NmeaCounters, Tally
from appliance.nmea.epoch import EpochAssembler, Fix, time_of_day
from appliance.nmea.framing import DEFAULT_MAX_LINE, Framer, RawLine
from appliance.nmea.rollover import RolloverPolicy
from appliance.nmea.sentence import Gga, Gll, Gns, Gsa, Gsv, Pubx04, Reject, Rmc, Sentence, Zda, decode

#: ntpd's NMEA ``mode`` bits 0-3 and 9 (refclock_nmea.c): which timed sentences give the time. None set: all.
SENTENCE_BITS: tuple[tuple[int, type[Sentence], str], ...] = (
    (1, Rmc, "RMC"),
    (2, Gga, "GGA"),
    (4, Gll, "GLL"),
    (8, Zda, "ZDA"),
    (0x200, Pubx04, "PUBX,04"),
)
#: The ``mode`` bits that choose sentences (0x100, Garmin's PGRMF, is one ntpd has and stratum1 does not read).
SENTENCE_MASK = 0x20F
#: At most this many sentences wait for their second's chosen sentence (one second's worth).
MAX_HELD = 16
#: The sentences that carry a time of day (and so start and number an epoch).
TIMED: tuple[type[Sentence], ...] = (Rmc, Gga, Gll, Gns, Zda, Pubx04)
#: The selection bits of the sentences that carry a date (RMC, ZDA, PUBX,04).
DATED_BITS = sum(bit for bit, kind, _ in SENTENCE_BITS if kind in (Rmc, Zda, Pubx04))


def selected_types(bits: int) -> tuple[type[Sentence], ...]:
    """The timed sentence types ``mode`` bits 0-3 and 9 choose (all of :data:`TIMED` when none is set): the
    ones that start a second and time it. A choice with no dated sentence (GGA or GLL alone) still gets its
    date from the RMC or ZDA of the same second, which join its epoch as every other sentence of that second
    does, but never time it (ntpd takes the date from the system clock then, which on a Pi without a
    real-time clock is the fake-hwclock's, days off: :func:`appliance.refclock.setup` says so with the line).
    """
    chosen = tuple(kind for bit, kind, _ in SENTENCE_BITS if bits & bit)
    return chosen or TIMED


class SentenceStream:
    """Framing and decoding: feed byte chunks, get the usable sentences.

    ``checksum_optional`` accepts complete lines without a ``*hh`` checksum
    (for the few receivers that send none; a wrong checksum is still refused).
    ``max_line`` is the longest line kept, ``$`` included, CR LF not.
    """

    __slots__ = ("_tally", "_framer", "_checksum_optional")

    def __init__(
        self,
        *,
        checksum_optional: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        tally: Tally | None = None,
    ) -> None:
        self._tally = tally if tally is not None else Tally()
        self._framer = Framer(self._tally, max_line)
        self._checksum_optional = checksum_optional

    @property
    def counters(self) -> NmeaCounters:
        """The counts so far (a frozen snapshot)."""
        return self._tally.snapshot()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line waiting for the next chunk."""
        return self._framer.pending_bytes

    def feed(self, data: bytes, now_ns: int) -> list[Sentence]:
        """Take a chunk read at local time ``now_ns`` (POSIX ns); return its complete sentences."""
        return self._decode_all(self._framer.feed(data, now_ns))

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): the unfinished line moves with it."""
        self._framer.clock_stepped(step_ns)

    def flush(self) -> list[Sentence]:
        """End of stream: decode the unfinished line, if it is a sentence."""
        return self._decode_all(self._framer.flush())

    def _decode_all(self, lines: list[RawLine]) -> list[Sentence]:
        out: list[Sentence] = []
        for line in lines:
            result = decode(line, self._checksum_optional)
            if isinstance(result, Reject):
                self._tally.add(result.value)
            else:
                self._tally.add("decoded")
                if result.bad_field:
                    self._tally.add("bad_field")
                out.append(result)
        return out


class NmeaStream:
    """The whole decoder: feed byte chunks with their arrival time, get fixes.

    ``rollover`` holds the firmware build date that bounds the dates we
    believe; the other options are :class:`SentenceStream`'s.
    """

    __slots__ = ("_tally", "_sentences", "_epochs", "_stepped_ns", "_left_out", "_chosen_tod", "_held")

    def __init__(
        self,
        rollover: RolloverPolicy,
        *,
        checksum_optional: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        sentences: int = 0,
    ) -> None:
        """``sentences``: ntpd's NMEA ``mode`` sentence bits (1 RMC, 2 GGA, 4 GLL, 8 ZDA, 0x200 PUBX,04; 0:
        every timed sentence). Only the chosen ones start an epoch, so its arrival time (the first byte of
        its first sentence) is theirs, as the line's ``time2`` was measured for. A timed sentence of another
        type still joins the epoch of its own second (its fix status, satellites, date), after the chosen
        one when it came first; one whose second brings no chosen sentence is left out (``unselected``)."""
        chosen = selected_types(sentences & SENTENCE_MASK)
        self._left_out = tuple(kind for kind in TIMED if kind not in chosen)
        self._chosen_tod: int | None = None  # the time of day of the last chosen sentence
        #: one second's sentences of other types (and the GSA/GSV after them), waiting for its chosen one
        self._held: list[Sentence] = []
        self._tally = Tally()
        self._sentences = SentenceStream(checksum_optional=checksum_optional, max_line=max_line, tally=self._tally)
        # chosen explicitly, sentences that say nothing of the fix (ZDA, PUBX,04) are trusted as ntpd trusts them
        unrated = bool(sentences & SENTENCE_MASK) and all(kind in (Zda, Pubx04) for kind in chosen)
        self._epochs = EpochAssembler(rollover, self._tally, trust_unrated=unrated)
        self._stepped_ns = 0

    @property
    def stepped_ns(self) -> int:
        """The sum of the clock steps restated so far: a time read before, plus what this gained since, is on the
        clock's scale now (for chunks a driver holds back, such as :class:`appliance.io.serial.SerialGps`'s while
        it searches the baud rate)."""
        return self._stepped_ns

    @property
    def counters(self) -> NmeaCounters:
        """The counts so far (a frozen snapshot)."""
        return self._tally.snapshot()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line waiting for the next chunk."""
        return self._sentences.pending_bytes

    def feed(self, data: bytes, now_ns: int) -> list[Fix]:
        """Take a chunk read at local time ``now_ns`` (POSIX ns); return the fixes it completes.

        A fix is reported when the next epoch starts or, once the decoder has
        learned which sentence ends this receiver's epochs, as soon as it
        arrives.
        """
        out: list[Fix] = []
        for s in self._sentences.feed(data, now_ns):
            out += self._add(s)
        return out

    def _add(self, s: Sentence) -> list[Fix]:
        """One decoded sentence through the selection (see ``__init__``) into the epochs."""
        if not self._left_out:
            return self._epochs.add(s)
        if isinstance(s, Gsa | Gsv):
            if self._held and len(self._held) < MAX_HELD:  # of the second that waits for its chosen sentence
                self._held.append(s)
                return []
            return self._epochs.add(s)
        tod = s.tod_ns
        if not isinstance(s, self._left_out):
            out = self._epochs.add(s)
            self._chosen_tod = tod
            held, self._held = self._held, []
            for h in held:
                out += self._epochs.add(h)  # all of this second (the held ones of another were let go)
            return out
        if tod is not None and tod == self._chosen_tod:
            return self._epochs.add(s)  # its second's epoch is open: it joins it
        out = []
        if tod is None or (self._held and time_of_day(self._held[0]) != tod):
            out = self._let_go()
        if tod is None or len(self._held) >= MAX_HELD:
            self._tally.add("unselected")
        else:
            self._held.append(s)
        return out

    def _let_go(self) -> list[Fix]:
        """The held second brought no chosen sentence: its timed sentences are left out, the others go on."""
        out: list[Fix] = []
        held, self._held = self._held, []
        for h in held:
            if isinstance(h, Gsa | Gsv):
                out += self._epochs.add(h)
            else:
                self._tally.add("unselected")
        return out

    def clock_stepped(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate the arrival times held.

        The epoch still open (its first sentence read before the step) and
        the line still unfinished would otherwise be reported on the old
        scale, a step away from the pulses they are paired with.
        """
        self._sentences.clock_stepped(step_ns)
        self._epochs.clock_stepped(step_ns)
        self._stepped_ns += step_ns

    def handed(self, data: bytes, now_ns: int) -> Iterator[Fix]:
        """:meth:`feed`, one fix at a time, each on the clock's scale when it is handed on.

        A chunk can complete two epochs; if handing on the first steps the
        clock (its sample is the first good time), the second, already built,
        is restated by that step before it is handed on.
        """
        fixes = self.feed(data, now_ns)
        mark = self._stepped_ns
        for fix in fixes:
            moved = self._stepped_ns - mark
            yield replace(fix, arrival_ns=fix.arrival_ns + moved) if moved else fix

    def flush(self) -> list[Fix]:
        """End of stream: decode what is pending and report the open epoch."""
        out: list[Fix] = []
        for s in self._sentences.flush():
            out += self._add(s)
        out += self._let_go()
        return out + self._epochs.flush()
