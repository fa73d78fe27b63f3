"""Sentences: checksum, address and fields of one NMEA 0183 line, decoded through pynmea2.

NMEA 0183 facts used here:

- ``$AAAAA,f1,f2,...*hh``: the checksum ``hh`` is two hex digits, the XOR of
  every byte between ``$`` and ``*`` (both excluded). It is optional in the
  standard but nearly every receiver sends it, and the daemon requires it
  (as gpsd does): no configuration line turns ``checksum_optional`` on, so a
  receiver that sends none (the HP 58534A and other old timing receivers)
  cannot be used. The decoder can take such lines (``checksum_optional=True``
  to :func:`decode`, :class:`~appliance.nmea.stream.NmeaStream`), for tools
  and tests. A *wrong* checksum is always refused;
- the address is a two-character talker (GP GPS, GL GLONASS, GA Galileo,
  GB/BD BeiDou, GQ/QZ QZSS, GI/IN NavIC, GN multi-system, and more) and a
  three-letter sentence type. We key on the type only: every talker is
  welcome. An address starting with ``P`` is proprietary (``$PUBX``,
  ``$PMTK001``, ``$PGRME``...);
- times of day are ``hhmmss[.s...]`` UTC (second 60 during a leap second),
  dates ``ddmmyy`` (RMC) or ``dd,mm,yyyy`` (ZDA), positions ``ddmm.mmmm`` with
  a hemisphere letter. Empty fields mean "not known".

pynmea2 splits a line into its address and fields and names the fields; the
conversions we depend on are done here, exactly: times of day in integer
nanoseconds from the digits (pynmea2 goes through a float into a
``datetime.time``, which drops everything below a microsecond and now and
then a microsecond too: ``.256229`` reads as ``.256228``; gpsd's
``nmea-fuzzy-cases`` log collects such cases), and validity from the status
fields as written (pynmea2's ``is_valid`` of RMC rejects NMEA 4.1's navigation
status ``V``, "no status given", which Furuno receivers send with every fix).

A line becomes a sentence value (:class:`Rmc`, :class:`Zda`, :class:`Gga`,
:class:`Gns`, :class:`Gll`, :class:`Gsa`, :class:`Gsv`, :class:`Pubx04`) or a
:class:`Reject` naming the counter it goes to. Nothing here raises on input.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pynmea2  # type: ignore[import-untyped]
from pynmea2.nmea import TalkerSentence  # type: ignore[import-untyped]

from appliance.nmea.framing import LineEnd, RawLine
from appliance.timebase import NS_PER_S

#: Sentence types (the three letters after the talker) that epochs use.
USED_TYPES = frozenset({"RMC", "ZDA", "GGA", "GNS", "GLL", "GSA", "GSV"})

_ADDRESS = re.compile(r"[A-Z0-9]{2}[A-Z]{3}")
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")
_TIME = re.compile(r"(\d\d)(\d\d)(\d\d)(?:\.(\d*))?")
_DATE6 = re.compile(r"(\d\d)(\d\d)(\d\d)")
_LATLON = re.compile(r"(\d+)(\d\d(?:\.\d*)?)")
_LEAP = re.compile(r"(-?\d+)(D?)")
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_T = TypeVar("_T")


class Reject(enum.Enum):
    """Why a line is no usable sentence; the value names its counter."""

    BAD_CHECKSUM = "bad_checksum"
    NO_CHECKSUM = "no_checksum"
    TRUNCATED = "truncated"
    DECODE_ERROR = "decode_error"
    PROPRIETARY = "proprietary"
    IGNORED = "ignored"
    UNKNOWN_TYPE = "unknown_type"


@dataclass(frozen=True, slots=True)
class NmeaDate:
    """A calendar date as a receiver wrote it; ``two_digit`` when the year is ``yy``."""

    year: int
    month: int
    day: int
    two_digit: bool


@dataclass(frozen=True, slots=True)
class Rmc:
    """RMC, recommended minimum: time, status A/V, position, date."""

    KIND: ClassVar[str] = "RMC"
    talker: str
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    status: str  # "A" valid, "V" void, "" absent
    mode: str  # NMEA 2.3 mode indicator (A D E F M N P R S), "" before 2.3
    date: NmeaDate | None
    lat_deg: float | None
    lon_deg: float | None


@dataclass(frozen=True, slots=True)
class Zda:
    """ZDA: time and a date with a four-digit year (no validity flag)."""

    KIND: ClassVar[str] = "ZDA"
    talker: str
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    date: NmeaDate | None


@dataclass(frozen=True, slots=True)
class Gga:
    """GGA, fix data: time, position, quality (0 none, 1 GPS, 2 DGPS, 4/5 RTK, 6 DR...)."""

    KIND: ClassVar[str] = "GGA"
    talker: str
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    quality: int | None
    sats_used: int | None
    lat_deg: float | None
    lon_deg: float | None
    alt_m: float | None  # above mean sea level


@dataclass(frozen=True, slots=True)
class Gns:
    """GNS, multi-GNSS fix data: a mode letter per constellation (N = no fix)."""

    KIND: ClassVar[str] = "GNS"
    talker: str
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    mode: str
    sats_used: int | None
    lat_deg: float | None
    lon_deg: float | None
    alt_m: float | None


@dataclass(frozen=True, slots=True)
class Gll:
    """GLL, position: time, status A/V, NMEA 2.3 mode indicator."""

    KIND: ClassVar[str] = "GLL"
    talker: str
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    status: str
    mode: str
    lat_deg: float | None
    lon_deg: float | None


@dataclass(frozen=True, slots=True)
class Gsa:
    """GSA, DOP and active satellites: fix type 1 none / 2 2D / 3 3D, PRNs used."""

    KIND: ClassVar[str] = "GSA"
    talker: str
    arrival_ns: int
    bad_field: bool
    fix_type: int | None
    prns: tuple[int, ...]
    system_id: int | None  # NMEA 4.10: 1 GPS, 2 GLONASS, 3 Galileo, 4 BeiDou, 5 QZSS, 6 NavIC


@dataclass(frozen=True, slots=True)
class SatView:
    """One satellite of a GSV message: its PRN as the receiver numbers it, where it is, how loud.

    ``elevation_deg`` above the horizon (NMEA says 0-90; -90..90 is read, the page draws below 0 on the horizon),
    ``azimuth_deg`` 0-359 clockwise from true north (360 reads as 0), ``snr_dbhz``
    the carrier-to-noise ratio in dB-Hz (00-99); None where the field is empty (not yet known, not tracked).
    """

    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_dbhz: int | None


@dataclass(frozen=True, slots=True)
class Gsv:
    """GSV, satellites in view: one message of a group, with the group's total in view.

    A group is ``msg_total`` messages numbered 1.. in a row, up to four satellites each; NMEA 4.11 appends a
    signal ID (one group per signal: L1 C/A, L5...), None before 4.11.
    """

    KIND: ClassVar[str] = "GSV"
    talker: str
    arrival_ns: int
    bad_field: bool
    msg_total: int | None
    msg_num: int | None
    in_view: int | None
    satellites: tuple[SatView, ...] = ()
    signal_id: int | None = None


@dataclass(frozen=True, slots=True)
class Pubx04:
    """u-blox ``$PUBX,04``: UTC time, date and GPS-UTC leap seconds (``D``: firmware default)."""

    KIND: ClassVar[str] = "PUBX04"
    talker: str  # "" (proprietary)
    arrival_ns: int
    bad_field: bool
    tod_ns: int | None
    date: NmeaDate | None
    leap_s: int | None
    leap_is_default: bool  # the receiver has not yet read the leap seconds from the almanac


Sentence = Rmc | Zda | Gga | Gns | Gll | Gsa | Gsv | Pubx04
TimedSentence = Rmc | Zda | Gga | Gns | Gll | Pubx04


class _DecodeError(Exception):
    """A field we cannot do without (the time of day) is malformed."""


def nmea_checksum(body: bytes) -> int:
    """Return the NMEA checksum of ``body``: the XOR of its bytes (between ``$`` and ``*``)."""
    x = 0
    for b in body:
        x ^= b
    return x


def render(body: str, start: str = "$") -> bytes:
    """Return the sentence ``body`` (between ``$`` and ``*``) framed: ``$body*hh`` CR LF.

    >>> render("GPZDA,201530.00,04,07,2002,00,00")
    b'$GPZDA,201530.00,04,07,2002,00,00*60\\r\\n'
    """
    raw = body.encode("ascii")
    return b"%s%s*%02X\r\n" % (start.encode("ascii"), raw, nmea_checksum(raw))


def check_line(line: RawLine, checksum_optional: bool = False) -> str | Reject:
    """Return the checked body of ``line`` (between ``$`` and ``*``), or why it is refused.

    A line without checksum that did not end with CR/LF was cut off:
    ``TRUNCATED``. With ``checksum_optional``, a complete line without a
    checksum is accepted; a wrong checksum never is.
    """
    text = line.text.rstrip(b" ")
    body = text[1:]
    star = body.find(b"*")
    if star < 0:
        if line.end is not LineEnd.EOL:
            return Reject.TRUNCATED
        return body.decode("ascii", "replace") if checksum_optional else Reject.NO_CHECKSUM
    given = body[star + 1 :]
    if _HEX2.fullmatch(given) is None:
        cut = line.end is not LineEnd.EOL and len(given) < 2
        return Reject.TRUNCATED if cut else Reject.BAD_CHECKSUM
    if int(given, 16) != nmea_checksum(body[:star]):
        return Reject.BAD_CHECKSUM
    return body[:star].decode("ascii", "replace")  # the framer passes ASCII only


def decode(line: RawLine, checksum_optional: bool = False) -> Sentence | Reject:
    """Decode one framed line into a sentence value, or say why not. Never raises."""
    body = check_line(line, checksum_optional)
    if isinstance(body, Reject):
        return body
    address = body.split(",", 1)[0]
    if address.startswith("P"):
        return _decode_proprietary(body, line.arrival_ns)
    if _ADDRESS.fullmatch(address) is None:
        return Reject.UNKNOWN_TYPE
    kind = address[2:]
    if kind not in USED_TYPES:
        return Reject.IGNORED if kind in TalkerSentence.sentence_types else Reject.UNKNOWN_TYPE
    try:
        msg = pynmea2.parse("$" + body)
        return _CONVERTERS[kind](_Fields(msg), address[:2], line.arrival_ns)
    except Exception:  # pynmea2 is third-party: whatever it raises, the line is bad
        return Reject.DECODE_ERROR


def _decode_proprietary(body: str, arrival_ns: int) -> Sentence | Reject:
    if not body.startswith("PUBX,04,"):
        return Reject.PROPRIETARY
    try:
        f = _Fields(pynmea2.parse("$" + body))
        tod, date = f.tod("time"), f.date6("date")
        leap_s, leap_default = f.leap("leap_sec")
        return Pubx04("", arrival_ns, f.bad, tod, date, leap_s, leap_default)
    except Exception:  # as in decode()
        return Reject.DECODE_ERROR


def parse_time_of_day(text: str) -> int:
    """Return ``hhmmss[.s...]`` as ns since midnight UTC (second 60 allowed), exactly.

    Raises ``ValueError`` when the text is no time of day.
    """
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not a time of day: {text!r}")
    hh, mm, ss = int(m[1]), int(m[2]), int(m[3])
    if hh > 23 or mm > 59 or ss > 60:
        raise ValueError(f"time of day out of range: {text!r}")
    frac = (m[4] or "")[:9].ljust(9, "0")
    return ((hh * 60 + mm) * 60 + ss) * NS_PER_S + int(frac)


def parse_ddmmyy(text: str) -> NmeaDate:
    """Return an RMC ``ddmmyy`` date (year still two-digit). Raises ``ValueError``."""
    m = _DATE6.fullmatch(text)
    if m is None:
        raise ValueError(f"not a ddmmyy date: {text!r}")
    return _checked_date(int(m[3]), int(m[2]), int(m[1]), two_digit=True)


def parse_degrees(text: str, hemisphere: str) -> float:
    """Return ``[d]ddmm.mmmm`` and ``N/S/E/W`` as signed decimal degrees. Raises ``ValueError``."""
    m = _LATLON.fullmatch(text)
    if m is None or hemisphere not in ("N", "S", "E", "W"):
        raise ValueError(f"not a position: {text!r} {hemisphere!r}")
    deg = int(m[1]) + float(m[2]) / 60.0
    return -deg if hemisphere in ("S", "W") else deg


def _checked_date(year: int, month: int, day: int, two_digit: bool) -> NmeaDate:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"date out of range: {year}-{month}-{day}")
    return NmeaDate(year, month, day, two_digit)


class _Fields:
    """Reads the named fields of a pynmea2 sentence; an unreadable optional field is absent."""

    __slots__ = ("_msg", "bad")

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self.bad = False

    def raw(self, name: str) -> str:
        idx: int = type(self._msg).name_to_idx[name]
        return self.at(idx)

    def at(self, idx: int) -> str:
        data: list[str] = self._msg.data
        return data[idx].strip() if idx < len(data) else ""

    def count(self) -> int:
        """How many data fields the sentence has (the address not counted)."""
        return len(self._msg.data)

    def tod(self, name: str) -> int | None:
        text = self.raw(name)
        if not text:
            return None
        try:
            return parse_time_of_day(text)
        except ValueError as e:
            raise _DecodeError(str(e)) from e

    def integer(self, name: str) -> int | None:
        return self.soft(_decimal, self.raw(name))

    def number(self, name: str) -> float | None:
        return self.soft(_real, self.raw(name))

    def degrees(self, value: str, hemisphere: str) -> float | None:
        return self.soft(lambda t: parse_degrees(t, self.raw(hemisphere)), self.raw(value))

    def date6(self, name: str) -> NmeaDate | None:
        return self.soft(parse_ddmmyy, self.raw(name))

    def zda_date(self) -> NmeaDate | None:
        day, month, year = self.raw("day"), self.raw("month"), self.raw("year")
        if not (day and month and year):
            return None
        if not (day.isdigit() and month.isdigit() and year.isdigit() and len(year) in (2, 4)):
            self.bad = True
            return None
        return self.soft(lambda _: _checked_date(int(year), int(month), int(day), two_digit=len(year) == 2), year)

    def leap(self, name: str) -> tuple[int | None, bool]:
        m = _LEAP.fullmatch(self.raw(name))
        if m is None:
            self.bad = self.bad or bool(self.raw(name))
            return None, False
        return int(m[1]), m[2] == "D"

    def soft(self, conv: Callable[[str], _T], text: str) -> _T | None:
        """Return ``conv(text)``; None for an empty field, None and ``bad`` for a malformed one."""
        if not text:
            return None
        try:
            return conv(text)
        except ValueError:
            self.bad = True
            return None


def _decimal(text: str) -> int:
    if _INT.fullmatch(text) is None:
        raise ValueError(f"not an integer: {text!r}")
    return int(text, 10)


def _hex_digit(text: str) -> int:
    if len(text) != 1 or text not in "0123456789ABCDEFabcdef":
        raise ValueError(f"not a hex digit: {text!r}")
    return int(text, 16)


def _real(text: str) -> float:
    if _FLOAT.fullmatch(text) is None:
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def _rmc(f: _Fields, talker: str, arrival_ns: int) -> Rmc:
    tod, date = f.tod("timestamp"), f.date6("datestamp")
    lat, lon = f.degrees("lat", "lat_dir"), f.degrees("lon", "lon_dir")
    status, mode = f.raw("status"), f.raw("mode_indicator")
    return Rmc(talker, arrival_ns, f.bad, tod, status, mode, date, lat, lon)


def _zda(f: _Fields, talker: str, arrival_ns: int) -> Zda:
    tod, date = f.tod("timestamp"), f.zda_date()
    return Zda(talker, arrival_ns, f.bad, tod, date)


def _gga(f: _Fields, talker: str, arrival_ns: int) -> Gga:
    tod = f.tod("timestamp")
    lat, lon = f.degrees("lat", "lat_dir"), f.degrees("lon", "lon_dir")
    quality, sats, alt = f.integer("gps_qual"), f.integer("num_sats"), f.number("altitude")
    return Gga(talker, arrival_ns, f.bad, tod, quality, sats, lat, lon, alt)


def _gns(f: _Fields, talker: str, arrival_ns: int) -> Gns:
    tod = f.tod("timestamp")
    lat, lon = f.degrees("lat", "lat_dir"), f.degrees("lon", "lon_dir")
    sats, alt = f.integer("num_sats"), f.number("altitude")
    return Gns(talker, arrival_ns, f.bad, tod, f.raw("mode_indicator"), sats, lat, lon, alt)


def _gll(f: _Fields, talker: str, arrival_ns: int) -> Gll:
    tod = f.tod("timestamp")
    lat, lon = f.degrees("lat", "lat_dir"), f.degrees("lon", "lon_dir")
    return Gll(talker, arrival_ns, f.bad, tod, f.raw("status"), f.raw("faa_mode"), lat, lon)


def _gsa(f: _Fields, talker: str, arrival_ns: int) -> Gsa:
    fix_type = f.integer("mode_fix_type")
    prns = tuple(p for i in range(1, 13) if (p := f.integer(f"sv_id{i:02d}")) is not None)
    system_id = f.soft(_hex_digit, f.at(17))  # NMEA 4.10 appends the system ID
    return Gsa(talker, arrival_ns, f.bad, fix_type, prns, system_id)


def _gsv(f: _Fields, talker: str, arrival_ns: int) -> Gsv:
    total, num, in_view = f.integer("num_messages"), f.integer("msg_num"), f.integer("num_sv_in_view")
    rest = f.count() - 3
    signal_id = None
    if rest % 4 == 1:  # NMEA 4.11: the signal ID after the last satellite
        signal_id = f.soft(_hex_digit, f.at(f.count() - 1))
        rest -= 1
    elif rest % 4:
        f.bad = True  # a satellite cut short: its fields are not read
    sats = []
    for i in range(3, 3 + rest - rest % 4, 4):
        sat = _sat_view(f, i)
        if sat is not None:
            sats.append(sat)
    return Gsv(talker, arrival_ns, f.bad, total, num, in_view, tuple(sats), signal_id)


def _sat_view(f: _Fields, i: int) -> SatView | None:
    """The satellite in fields ``i``..``i+3``; None for an empty slot (no PRN) or an unreadable one (``bad``)."""
    was_bad, f.bad = f.bad, False
    sat = _read_sat(f, i)
    f.bad = f.bad or was_bad
    return sat


def _read_sat(f: _Fields, i: int) -> SatView | None:
    prn = f.soft(_decimal, f.at(i))
    elevation = f.soft(_decimal, f.at(i + 1))
    azimuth = f.soft(_decimal, f.at(i + 2))
    snr = f.soft(_decimal, f.at(i + 3))
    if prn is None or prn <= 0:
        f.bad = f.bad or prn is not None or any(f.at(i + k) for k in (1, 2, 3))
        return None
    if not (
        (elevation is None or -90 <= elevation <= 90)
        and (azimuth is None or 0 <= azimuth <= 360)
        and (snr is None or 0 <= snr <= 99)
    ):
        f.bad = True
    if f.bad:
        return None
    return SatView(prn, elevation, None if azimuth is None else azimuth % 360, snr)


_CONVERTERS: dict[str, Callable[[_Fields, str, int], Sentence]] = {
    "RMC": _rmc,
    "ZDA": _zda,
    "GGA": _gga,
    "GNS": _gns,
    "GLL": _gll,
    "GSA": _gsa,
    "GSV": _gsv,
}
