"""The ``shm`` refclock (ntpd type 28): decoding an NTP shared-memory segment (pure; the time is passed in).

gpsd (and ntpd's other feeders) write their samples into SysV shared-memory
segments named ``NTP0``, ``NTP1``..: key ``0x4E545030 + unit`` ("NTP0" in
ASCII). Units 0 and 1 are created owner-only (mode 0600, so only root
writes them), units 2 and up world-writable (0666) unless the line's
``mode`` has bit 0 set (ntpd's ``SHM_MODE_PRIVATE``: 0600 too), as ntpd
creates them and gpsd attaches them (gpsd started as root feeds a receiver's serial time into
NTP0 and its PPS into NTP1). The segment holds one ``struct shmTime``, as
ntpd's ``refclock_shm.c`` and gpsd's ``ntpshm.h`` define it::

    struct shmTime {
        int          mode;                  //  0  0: use when valid; 1: also check count
        volatile int count;                 //  4  bumped by the writer before and after writing
        time_t       clockTimeStampSec;     //  8  the reference's time (UTC seconds)
        int          clockTimeStampUSec;    // 16    its microseconds
                                            // 20  (4 octets of padding: time_t is 8-aligned)
        time_t       receiveTimeStampSec;   // 24  the local clock when that time was seen
        int          receiveTimeStampUSec;  // 32    its microseconds
        int          leap;                  // 36  NTP leap indicator (3: not in sync)
        int          precision;             // 40  log2 seconds
        int          nsamples;              // 44  unused
        volatile int valid;                 // 48  1: a new sample; the reader clears it
        unsigned     clockTimeStampNSec;    // 52  nanoseconds of the reference time
        unsigned     receiveTimeStampNSec;  // 56  nanoseconds of the local time
        int          dummy[8];              // 60
    };                                      // 92 + 4 octets of tail padding = 96

That is the layout of 64-bit Linux (amd64, arm64: 8-octet ``time_t``),
:data:`LAYOUT_64`. A 32-bit system with a 32-bit ``time_t`` (armhf
Raspberry Pi OS before Debian 13) has no padding and 80 octets,
:data:`LAYOUT_32`; :mod:`appliance.io.shm` picks the layout of the machine.

Reading (:class:`ShmReader`, as NTPsec's ``shm_query`` and chrony's
``shm_poll`` do it): the I/O layer copies the segment, reads ``count``
again right after the copy, and clears ``valid`` when this module says so.
Then:

- ``valid`` 0: nothing new (NOT_READY, counted, not an error);
- ``mode`` 1 and ``count`` changed during the copy: the writer was busy
  (CLASH); ``mode`` neither 0 nor 1 (BAD_MODE);
- nanoseconds are used when both ``USec`` fields are their ``NSec``
  fields truncated (the writer fills both: gpsd does); else microseconds;
- ``leap`` 3: the feeder says it has no time yet (gpsd writes that before
  its receiver has a fix): UNSYNCHRONISED;
- a local time more than ``max_age_ns`` old or in the future (STALE: the
  writer stopped, or the clock was stepped; NTPsec allows 5 s), a
  reference more than ``max_delta_ns`` from the local time (TOO_FAR: NTPsec's
  4 h limit, ``None`` to believe any distance, as ntpd's ``flag1``), or the
  same sample again (DUPLICATE: two readers, or a writer that rewrote it):
  dropped and counted.

A good sample is a TIME :class:`~appliance.refclock.sample.Sample`: local =
the receive time, reference = the clock time, the segment's leap indicator,
and a dispersion of ``2**precision`` seconds.

>>> seg = LAYOUT_64.encode(ShmRecord(mode=1, count=2, clock_ns=1_700_000_000 * NS_PER_S,
...                                  receive_ns=1_700_000_000_100_000_000, precision=-20, valid=1))
>>> len(seg)
96
>>> reader = ShmReader()
>>> result = reader.read(seg, count_after=2, now_ns=1_700_000_000_200_000_000)
>>> result.sample.offset_ns, result.status.value, result.clear_valid
(-100000000, 'ok', True)
>>> reader.read(seg, count_after=2, now_ns=1_700_000_000_300_000_000).status.value
'duplicate'
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, fields

from appliance.ntp.packet import LEAP_UNSYNC
from appliance.refclock.sample import Sample, SampleKind
from appliance.timebase import NS_PER_S

#: "NTP0": the key of unit 0; unit u is at ``SHM_KEY_BASE + u``.
SHM_KEY_BASE = 0x4E545030
#: NTPsec's age limit for a sample's local time.
DEFAULT_MAX_AGE_NS = 5 * NS_PER_S
#: NTPsec's default limit on |reference - local| (4 hours).
DEFAULT_MAX_DELTA_NS = 4 * 3600 * NS_PER_S
_NS_PER_US = 1_000


def shm_key(unit: int) -> int:
    """The SysV key of unit ``unit`` (``NTPu``).

    >>> hex(shm_key(0)), hex(shm_key(3))
    ('0x4e545030', '0x4e545033')
    """
    if unit < 0:
        raise ValueError("an SHM unit is 0 or more")
    return SHM_KEY_BASE + unit


#: ntpd's ``SHM_MODE_PRIVATE``: bit 0 of a ``server 127.127.28.u mode M`` (NTPsec: ``refclock shm mode M``).
SHM_MODE_PRIVATE = 1


def shm_private(unit: int, mode: int = 0) -> bool:
    """Whether unit ``unit`` is an owner-only segment: units 0-1 always, from unit 2 with ``mode`` bit 0.

    As ntpd's ``refclock_shm.c`` (``forall = unit >= 2 && !(mode & SHM_MODE_PRIVATE)``) and NTPsec's
    ``driver_shm``: the ``mode`` of the server line, not the ``mode`` field inside the segment.

    >>> shm_private(0), shm_private(2), shm_private(2, mode=1)
    (True, False, True)
    """
    return unit < 2 or bool(mode & SHM_MODE_PRIVATE)


def shm_perm(unit: int, mode: int = 0) -> int:
    """The permissions ntpd creates unit ``unit`` with: 0600 when private (:func:`shm_private`), else 0666.

    >>> oct(shm_perm(1)), oct(shm_perm(2)), oct(shm_perm(3, mode=1))
    ('0o600', '0o666', '0o600')
    """
    return 0o600 if shm_private(unit, mode) else 0o666


@dataclass(frozen=True, slots=True)
class ShmRecord:
    """The fields of one ``struct shmTime`` (times as POSIX ns, from the seconds and the finest fraction)."""

    mode: int = 0
    count: int = 0
    clock_ns: int = 0
    receive_ns: int = 0
    leap: int = 0
    precision: int = 0
    nsamples: int = 0
    valid: int = 0
    #: False when the NSec fields did not match the USec fields and microseconds were used.
    nanoseconds: bool = True


@dataclass(frozen=True, slots=True)
class ShmLayout:
    """One machine's ``struct shmTime``: a :mod:`struct` format and the offsets the I/O layer needs."""

    name: str
    format: str
    #: Where ``valid`` sits (the I/O layer clears it); ``count`` is always at 4.
    valid_offset: int
    count_offset: int = 4

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def decode(self, raw: bytes) -> ShmRecord:
        """The record in ``raw`` (at least :attr:`size` octets; more is ignored)."""
        (mode, count, c_sec, c_usec, r_sec, r_usec, leap, precision, nsamples, valid, c_nsec, r_nsec, *_) = (
            struct.unpack_from(self.format, raw)
        )
        use_ns = c_nsec // _NS_PER_US == c_usec and r_nsec // _NS_PER_US == r_usec
        if use_ns:
            clock_ns = c_sec * NS_PER_S + c_nsec
            receive_ns = r_sec * NS_PER_S + r_nsec
        else:
            clock_ns = c_sec * NS_PER_S + c_usec * _NS_PER_US
            receive_ns = r_sec * NS_PER_S + r_usec * _NS_PER_US
        return ShmRecord(mode, count, clock_ns, receive_ns, leap, precision, nsamples, valid, use_ns)

    def encode(self, record: ShmRecord) -> bytes:
        """The segment a writer such as gpsd leaves for ``record`` (both USec and NSec filled)."""
        c_sec, c_nsec = divmod(record.clock_ns, NS_PER_S)
        r_sec, r_nsec = divmod(record.receive_ns, NS_PER_S)
        return struct.pack(
            self.format,
            record.mode,
            record.count,
            c_sec,
            c_nsec // _NS_PER_US,
            r_sec,
            r_nsec // _NS_PER_US,
            record.leap,
            record.precision,
            record.nsamples,
            record.valid,
            c_nsec,
            r_nsec,
            *([0] * 8),
        )


#: 64-bit Linux: 8-octet ``time_t``, 4 octets of padding after each USec field, 4 at the end (96 octets).
LAYOUT_64 = ShmLayout("64-bit time_t", "<iiqi4xqiiiiiII8i4x", valid_offset=48)
#: 32-bit ``time_t``, no padding (80 octets).
LAYOUT_32 = ShmLayout("32-bit time_t", "<iiiiiiiiiiII8i", valid_offset=36)


class ShmStatus(enum.Enum):
    """What one read of a segment found."""

    OK = "ok"
    NOT_READY = "not_ready"
    CLASH = "clash"
    BAD_MODE = "bad_mode"
    UNSYNCHRONISED = "unsynchronised"
    STALE = "stale"
    TOO_FAR = "too_far"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class ShmResult:
    """One read: the status, the sample when OK, and whether the reader should clear ``valid``."""

    status: ShmStatus
    sample: Sample | None = None
    record: ShmRecord | None = None

    @property
    def clear_valid(self) -> bool:
        """Clear ``valid`` after every read that found it set (as ntpd and chrony do), so a sample is taken once."""
        return self.status not in (ShmStatus.NOT_READY, ShmStatus.CLASH)


@dataclass(frozen=True, slots=True)
class ShmCounters:
    """A snapshot of one reader's counts: ``reads`` is the sum of the others."""

    reads: int = 0
    ok: int = 0
    not_ready: int = 0
    clash: int = 0
    bad_mode: int = 0
    unsynchronised: int = 0
    stale: int = 0
    too_far: int = 0
    duplicate: int = 0


_COUNTERS = tuple(f.name for f in fields(ShmCounters))


class ShmReader:
    """Judges successive copies of one segment; see the module docstring."""

    __slots__ = ("_layout", "_max_age_ns", "_max_delta_ns", "_last", "_counts")

    def __init__(
        self,
        layout: ShmLayout = LAYOUT_64,
        *,
        max_age_ns: int = DEFAULT_MAX_AGE_NS,
        max_delta_ns: int | None = DEFAULT_MAX_DELTA_NS,
    ) -> None:
        self._layout = layout
        self._max_age_ns = max_age_ns
        self._max_delta_ns = max_delta_ns
        self._last: tuple[int, int] | None = None  # (clock ns, receive ns) of the last sample taken
        self._counts = dict.fromkeys(_COUNTERS, 0)

    @property
    def layout(self) -> ShmLayout:
        return self._layout

    @property
    def counters(self) -> ShmCounters:
        return ShmCounters(**self._counts)

    def read(self, raw: bytes, *, count_after: int, now_ns: int) -> ShmResult:
        """Judge a copy ``raw`` of the segment, ``count_after`` being ``count`` re-read after the copy."""
        result = self._judge(raw, count_after, now_ns)
        self._counts["reads"] += 1
        self._counts[result.status.value] += 1
        return result

    def _judge(self, raw: bytes, count_after: int, now_ns: int) -> ShmResult:
        rec = self._layout.decode(raw)
        if not rec.valid:
            return ShmResult(ShmStatus.NOT_READY, record=rec)
        if rec.mode == 1 and rec.count != count_after:
            return ShmResult(ShmStatus.CLASH, record=rec)
        if rec.mode not in (0, 1):
            return ShmResult(ShmStatus.BAD_MODE, record=rec)
        if rec.leap == LEAP_UNSYNC:
            return ShmResult(ShmStatus.UNSYNCHRONISED, record=rec)
        age = now_ns - rec.receive_ns
        if age < 0 or age > self._max_age_ns:
            return ShmResult(ShmStatus.STALE, record=rec)
        if self._max_delta_ns is not None and abs(rec.clock_ns - rec.receive_ns) > self._max_delta_ns:
            return ShmResult(ShmStatus.TOO_FAR, record=rec)
        key = (rec.clock_ns, rec.receive_ns)
        if key == self._last:
            return ShmResult(ShmStatus.DUPLICATE, record=rec)
        self._last = key
        sample = Sample(
            local_ns=rec.receive_ns,
            reference_ns=rec.clock_ns,
            leap=rec.leap,
            dispersion_ns=_ns_from_log2(rec.precision),
            kind=SampleKind.TIME,
        )
        return ShmResult(ShmStatus.OK, sample, rec)


def _ns_from_log2(log2_s: int) -> int:
    """2**log2_s seconds in ns, clamped to [1 ns, 1 s] (a precision outside that is the writer's mistake)."""
    log2_s = max(-30, min(0, log2_s))
    return max(1, NS_PER_S >> -log2_s)
