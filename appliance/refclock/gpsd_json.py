"""The ``gpsd`` refclock (ntpd type 46): gpsd's JSON reports to samples and pulses (pure; the time is passed in).

gpsd serves JSON lines on TCP port 2947. A client sends
``?WATCH={"enable":true,"json":true,"pps":true}`` (and ``"device":PATH`` to
watch one receiver) and gets, as NTPsec's ``refclock_gpsd.c`` reads them:

- ``VERSION`` (``proto_major``/``proto_minor``): protocol 3.9 and later give
  nanoseconds in ``PPS``, 3.10 and later send ``TOFF``;
- ``TPV``: a fix. ``mode`` below 2 means no fix: until the next fix, no
  sample is handed up (NTPsec's ``fl_nosync``). Its ``time`` (ISO 8601 UTC)
  names the second, but the message says nothing of when gpsd saw it: the
  line's arrival here stands in for that (a TIME sample, late by gpsd's and
  the socket's latency), and only while no ``TOFF`` has been seen;
  ``ept`` (s) gives those samples' dispersion;
- ``TOFF``: the serial time's offset: ``real_sec``/``real_nsec`` the second
  named, ``clock_sec``/``clock_nsec`` the local clock when gpsd received it.
  A TIME sample, without the socket's latency;
- ``PPS``: an edge: ``clock_*`` its local time, ``real_*`` the second gpsd
  numbered it with, ``precision`` (log2 s). Handed up twice: as a PULSE
  sample (gpsd numbered it) and as a bare :class:`Pulse` (for a ``pps`` line
  that numbers its pulses by its own ``lock``, as NTPsec's secondary unit).

Anything else (``SKY``, ``DEVICES``, ``WATCH``...) is read and skipped;
lines that are not JSON objects, records whose time fields are missing or
not numbers, and lines longer than :data:`MAX_LINE` are dropped and counted
(:class:`GpsdCounters`). With ``device`` given, reports from other devices
are skipped (counted ``other_device``).

>>> p = GpsdJsonParser()
>>> r = p.feed(b'{"class":"TOFF","device":"/dev/ttyS0","real_sec":1700000000,"real_nsec":0,'
...            b'"clock_sec":1700000000,"clock_nsec":120000000}\\n', now_ns=1_700_000_000_130_000_000)
>>> [(s.kind.value, s.offset_ns) for s in r.samples]
[('time', -120000000)]
>>> r = p.feed(b'{"class":"PPS","device":"/dev/ttyS0","real_sec":1700000001,"real_nsec":0,'
...            b'"clock_sec":1700000000,"clock_nsec":999999000,"precision":-20}\\n', now_ns=1_700_000_001_010_000_000)
>>> [(s.kind.value, s.offset_ns) for s in r.samples], [x.local_ns for x in r.pulses]
([('pulse', 1000)], [1700000000999999000])
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields
from typing import Any

from appliance.ntp.packet import LEAP_NONE
from appliance.refclock.driver import Readings
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.timebase import NS_PER_S

#: Longest line kept (gpsd's SKY reports run to a few kB); longer ones are dropped and counted.
MAX_LINE = 16_384
#: TIME samples' dispersion when gpsd gives no ``ept`` (NTPsec's serial precision, about 2 ms).
DEFAULT_TIME_DISPERSION_NS = 2_000_000
#: PULSE samples' dispersion when the PPS report has no ``precision`` (NTPsec's 2**-20 s).
DEFAULT_PULSE_PRECISION = -20


def watch_command(device: str | None = None) -> bytes:
    """The ``?WATCH`` request for JSON reports with PPS (and TOFF), of one device or all.

    >>> watch_command()
    b'?WATCH={"enable":true,"json":true,"pps":true};\\r\\n'
    """
    req: dict[str, Any] = {"enable": True, "json": True, "pps": True}
    if device is not None:
        req = {"device": device, **req}
    return b"?WATCH=" + json.dumps(req, separators=(",", ":")).encode() + b";\r\n"


@dataclass(frozen=True, slots=True)
class GpsdCounters:
    """A snapshot of one parser's counts."""

    lines: int = 0
    bad_json: int = 0
    too_long: int = 0
    no_class: int = 0
    other_class: int = 0
    other_device: int = 0
    bad_record: int = 0
    tpv: int = 0
    tpv_no_fix: int = 0
    toff: int = 0
    pps: int = 0
    #: TOFF/PPS/TPV times not handed up because the last TPV said "no fix".
    no_fix_dropped: int = 0
    samples: int = 0
    pulses: int = 0


_COUNTERS = tuple(f.name for f in fields(GpsdCounters))


class GpsdJsonParser:
    """Bytes from gpsd's socket in, :class:`~appliance.refclock.driver.Readings` out; see the module docstring."""

    __slots__ = ("_device", "_buffer", "_skipping", "_counts", "_no_fix", "_toff_seen", "_ept_ns", "proto")

    def __init__(self, device: str | None = None) -> None:
        self._device = device
        self._buffer = bytearray()
        self._skipping = False  # inside an over-long line: drop up to its end
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._no_fix = False
        self._toff_seen = False
        self._ept_ns: int | None = None
        #: The protocol version gpsd announced, (major, minor), or None.
        self.proto: tuple[int, int] | None = None

    @property
    def counters(self) -> GpsdCounters:
        return GpsdCounters(**self._counts)

    def reset(self) -> None:
        """A new connection: forget the partial line and what the last one said."""
        self._buffer.clear()
        self._skipping = False
        self._no_fix = False
        self._toff_seen = False
        self.proto = None

    def feed(self, data: bytes, now_ns: int) -> Readings:
        """Take octets that arrived at ``now_ns``; return what the complete lines among them gave."""
        out = Readings()
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._buffer.clear()
                    if not self._skipping:
                        self._counts["too_long"] += 1
                    self._skipping = True
                return out
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > MAX_LINE:
                self._counts["too_long"] += 1
                continue
            out = out + self.line(line, now_ns)

    def line(self, line: bytes, now_ns: int) -> Readings:
        """One complete line (without its newline) that arrived at ``now_ns``."""
        line = line.strip()
        if not line:
            return Readings()
        self._counts["lines"] += 1
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._counts["bad_json"] += 1
            return Readings()
        if not isinstance(obj, dict):
            self._counts["bad_json"] += 1
            return Readings()
        cls = obj.get("class")
        if not isinstance(cls, str):
            self._counts["no_class"] += 1
            return Readings()
        if cls == "VERSION":
            major, minor = obj.get("proto_major"), obj.get("proto_minor")
            if isinstance(major, int) and isinstance(minor, int):
                self.proto = (major, minor)
            return Readings()
        if cls not in ("TPV", "TOFF", "PPS"):
            self._counts["other_class"] += 1
            return Readings()
        if self._device is not None and obj.get("device") != self._device:
            self._counts["other_device"] += 1
            return Readings()
        if cls == "TPV":
            return self._tpv(obj, now_ns)
        if cls == "TOFF":
            return self._toff(obj)
        return self._pps(obj)

    # -- reports -----------------------------------------------------------------------------------

    def _tpv(self, obj: dict[str, Any], now_ns: int) -> Readings:
        self._counts["tpv"] += 1
        mode = obj.get("mode", 0)
        when = obj.get("time")
        if not _is_int(mode) or mode < 2 or not isinstance(when, str):
            self._counts["tpv_no_fix"] += 1
            self._no_fix = True
            return Readings()
        self._no_fix = False
        ept = obj.get("ept")
        if isinstance(ept, int | float) and not isinstance(ept, bool) and 0 < ept < 10:
            self._ept_ns = int(ept * NS_PER_S)
        if self._toff_seen:
            return Readings()  # TOFF times the same second better
        reference = _parse_time(when)
        if reference is None:
            self._counts["bad_record"] += 1
            return Readings()
        return self._sample(now_ns, reference, self._time_dispersion(), SampleKind.TIME)

    def _toff(self, obj: dict[str, Any]) -> Readings:
        self._counts["toff"] += 1
        self._toff_seen = True
        pair = _times(obj, "nsec", 1)
        if pair is None:
            self._counts["bad_record"] += 1
            return Readings()
        if self._no_fix:
            self._counts["no_fix_dropped"] += 1
            return Readings()
        local, reference = pair
        return self._sample(local, reference, self._time_dispersion(), SampleKind.TIME)

    def _pps(self, obj: dict[str, Any]) -> Readings:
        self._counts["pps"] += 1
        pair = _times(obj, "nsec", 1) or _times(obj, "musec", 1_000)  # protocols before 3.9: microseconds
        if pair is None:
            self._counts["bad_record"] += 1
            return Readings()
        if self._no_fix:
            self._counts["no_fix_dropped"] += 1
            return Readings()
        local, reference = pair
        precision = obj.get("precision", DEFAULT_PULSE_PRECISION)
        if not _is_int(precision):
            precision = DEFAULT_PULSE_PRECISION
        dispersion = NS_PER_S >> min(30, max(0, -precision))
        self._counts["pulses"] += 1
        return self._sample(local, reference, dispersion, SampleKind.PULSE) + Readings(pulses=(Pulse(local),))

    def _sample(self, local: int, reference: int, dispersion: int, kind: SampleKind) -> Readings:
        self._counts["samples"] += 1
        return Readings(samples=(Sample(local, reference, LEAP_NONE, dispersion, kind),))

    def _time_dispersion(self) -> int:
        return self._ept_ns if self._ept_ns is not None else DEFAULT_TIME_DISPERSION_NS


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _times(obj: dict[str, Any], frac: str, scale: int) -> tuple[int, int] | None:
    """(clock ns, real ns) from ``clock_sec``/``clock_<frac>`` and ``real_sec``/``real_<frac>``, or None."""
    parts = [obj.get(k) for k in ("clock_sec", f"clock_{frac}", "real_sec", f"real_{frac}")]
    ints = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    if len(ints) != 4:
        return None
    c_sec, c_frac, r_sec, r_frac = ints
    if not (0 <= c_frac * scale < NS_PER_S and 0 <= r_frac * scale < NS_PER_S):
        return None
    return c_sec * NS_PER_S + c_frac * scale, r_sec * NS_PER_S + r_frac * scale


def _parse_time(text: str) -> int | None:
    """An ISO 8601 UTC time as gpsd writes it (``2026-12-02T05:04:21.000Z``) to POSIX ns, or None.

    >>> _parse_time("2026-12-02T05:04:21.123456789Z") % 10**9
    123456789
    """
    if not text.endswith("Z") or "T" not in text:
        return None
    head, _, frac = text[:-1].partition(".")
    if frac and not frac.isdigit():
        return None
    try:
        when = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    seconds = int(when.timestamp())
    return seconds * NS_PER_S + int((frac + "000000000")[:9] if frac else 0)
