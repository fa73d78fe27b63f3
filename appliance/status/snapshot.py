"""The status snapshot: what the appliance knows about its time at one moment, as frozen values (pure).

The daemon builds one :class:`Snapshot` a second (:func:`appliance.status.collect.snapshot_from`) and every
reader renders it: mode 6 for ntpq and ntpstat (:mod:`appliance.status.variables`), the status socket's JSON
(:meth:`Snapshot.to_json`), ``stratum1 status`` and ``peers`` (:mod:`appliance.status.text`), the Prometheus
exporter (:mod:`appliance.status.metrics`) and the statistics files (:mod:`appliance.status.statsfiles`).

Units: times are POSIX ns (``*_ns`` that name an instant) or durations in ns; frequencies in ppb (positive:
the clock runs fast before correction, as :class:`~appliance.clock.discipline.DisciplineStatus` has it);
offsets are reference minus local (positive: the clock is behind), as everywhere in the appliance.

The JSON form is the dataclasses' fields by name, with a ``"version"`` so a reader can refuse a format it does
not know; :meth:`Snapshot.from_json` reads it back exactly (a round trip is the identity).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Bumped when a field changes meaning or goes away (adding a field keeps the version).
FORMAT_VERSION = 1

#: ntpq's tally codes, indexed by the peer status word's selection code (RFC 9327 section 2.2 / ntpq).
TALLY_CODES = " x.-+#*o"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source (an association, to ntpq): a reference clock, an upstream server or the local clock.

    ``kind`` is ``refclock``, ``server`` or ``local``; ``address`` the server's address, or ntpd's
    pseudo-address ``127.127.T.U`` for a clock (what ntpq's ``srcadr`` shows); ``tally`` one of
    :data:`TALLY_CODES`; ``refid`` as ntpq prints it (``GPS``, ``192.0.2.1``). ``updated_ns`` is when the
    newest sample was taken (None: never). ``why`` says why the source is not usable ("" when it is).
    """

    assoc_id: int
    name: str
    kind: str
    address: str
    tally: str
    stratum: int
    refid: str
    reach: int
    poll: int
    offset_ns: int
    delay_ns: int
    jitter_ns: int
    dispersion_ns: int
    root_delay_ns: int
    root_dispersion_ns: int
    leap: int
    usable: bool
    updated_ns: int | None = None
    prefer: bool = False
    noselect: bool = False
    why: str = ""
    #: The key an NTP server's replies are checked with (``key N``; 0: none): only replies with its valid MAC
    #: are used, so a keyed server that reaches us is authenticated.
    keyid: int = 0

    @property
    def selection_code(self) -> int:
        """The peer status word's 3-bit selection code (ntpq: `` x.-+#*o``)."""
        code = TALLY_CODES.find(self.tally)
        return max(code, 0)


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """What is served and why.

    ``basis`` is the timekeeper's reason (``gps``, ``holdover``, ``upstream``, ``local``,
    ``unsynchronised``); ``peer`` the system peer's association ID (0: none); ``offset_ns`` the combined
    offset of the last selection; ``sys_jitter_ns`` its jitter; ``clock_jitter_ns`` the discipline's
    measured jitter; ``error_ns`` its estimated error (1 sigma); ``poll`` the system peer's poll exponent.
    """

    leap: int
    stratum: int
    precision: int
    root_delay_ns: int
    root_dispersion_ns: int
    refid: str
    reference_ns: int | None
    basis: str
    peer: int
    offset_ns: int
    frequency_ppb: float
    frequency_sd_ppb: float
    sys_jitter_ns: int
    clock_jitter_ns: int
    error_ns: int
    poll: int
    discipline: str


@dataclass(frozen=True, slots=True)
class SatelliteStatus:
    """One satellite in the receiver's sky (:class:`appliance.nmea.sky.Satellite`).

    ``system`` GPS, SBAS, GLONASS, Galileo, BeiDou, QZSS or NavIC; ``prn`` as the receiver numbers it;
    ``elevation_deg`` above the horizon (0-90; negative, below it, as a receiver may say),
    ``azimuth_deg`` clockwise from true north (0-359), ``snr_dbhz``
    the carrier-to-noise ratio in dB-Hz, each None when the receiver does not say; ``used`` in the fix.
    """

    system: str
    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_dbhz: int | None
    used: bool


@dataclass(frozen=True, slots=True)
class ReceiverCounters:
    """What the NMEA decoder and the serial driver dropped, repaired and went through since they started.

    The decoder's (:class:`appliance.nmea.counters.NmeaCounters`): ``bytes_in`` read, ``garbage_bytes``
    outside any sentence, ``lines`` (candidate sentences), of which dropped: ``bad_checksum``,
    ``no_checksum``, ``truncated``, ``too_long``, ``decode_error``; ``epochs`` reported, ``undated_epochs``
    among them, dates moved by the GPS week rollover repair (``rollover_repaired``) or refused
    (``rollover_refused``). The serial driver's: ``losses`` (the port failed while open), ``open_failures``,
    ``baud_switches`` (rates tried by ``baud auto``), ``baud_searches`` (a locked rate went quiet).
    """

    bytes_in: int = 0
    garbage_bytes: int = 0
    lines: int = 0
    bad_checksum: int = 0
    no_checksum: int = 0
    truncated: int = 0
    too_long: int = 0
    decode_error: int = 0
    epochs: int = 0
    undated_epochs: int = 0
    rollover_repaired: int = 0
    rollover_refused: int = 0
    losses: int = 0
    open_failures: int = 0
    baud_switches: int = 0
    baud_searches: int = 0
    #: timed sentences left out by the refclock line's sentence selection (its ``mode`` sentence bits)
    unselected: int = 0


@dataclass(frozen=True, slots=True)
class GpsStatus:
    """The GPS receiver as its driver sees it (None in :class:`Snapshot` when no receiver is configured).

    ``fix`` says the receiver reports a fix recently; ``pps`` that pulses arrive (numbered yet or not: the
    signal is there); ``locked`` that the receiver's seconds are checked (its last epochs followed on) and so number the
    pulses; ``nmea_delay_ns`` the measured sentence delay after the pulse.
    ``sky`` is the satellites in view one by one, from the receiver's last complete GSV report, taken at
    ``sky_ns`` (empty when there is none, or it is older than the collector's limit). ``link`` says whether
    the receiver is heard at all (see the field).
    """

    fix: bool
    pps: bool
    locked: bool
    fix_mode: str
    satellites_used: int | None
    satellites_in_view: int | None
    nmea_delay_ns: int | None
    last_fix_ns: int | None
    pps_samples: int
    nmea_samples: int
    pulses: int = 0
    pulses_unpaired: int = 0
    sky: tuple[SatelliteStatus, ...] = ()
    sky_ns: int | None = None
    #: Times the receiver's seconds jumped (an epoch that did not follow on) and the lock was broken.
    lock_breaks: int = 0
    #: Month-end midnights at which the receiver's UTC moved by a leap second the clock had not taken.
    leap_jumps: int = 0
    #: What the serial port hears of the receiver (:class:`appliance.nmea.link.LinkState`): ``talking`` (NMEA
    #: arrives: only then is ``fix`` the receiver's word), ``gone`` (the device vanished or will not open),
    #: ``silent`` (no bytes), ``unknown-rate`` (bytes but no NMEA); ``talking`` when the driver does not say.
    link: str = "talking"
    #: The serial device; its rate (with ``baud auto``, the one being tried while ``searching``); why a gone
    #: device is gone (the loss, or the open error with its likely fix).
    device: str = ""
    baud: int | None = None
    searching: bool = False
    link_why: str = ""
    #: The rate is found by the driver (``baud auto``), not given.
    autobaud: bool = False
    #: The decoder's and the serial driver's counts (all zero when the driver does not say).
    counters: ReceiverCounters = ReceiverCounters()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GpsStatus:
        fields = dict(d)
        fields["sky"] = tuple(SatelliteStatus(**s) for s in fields.get("sky", ()))
        fields["counters"] = ReceiverCounters(**fields.get("counters", {}))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """One reference clock's own state, as ntpq's ``cv`` shows it (ntpd's per-clock ``refclockstat``).

    ``name`` is its source's (``NMEA(0)``); ``device`` what it is, in words; ``time1_ns``/``time2_ns`` the
    configured ``time1``/``time2`` (None: not given); ``flags`` the ``flag1``..``flag4`` set (bits 0-3);
    ``polls`` the poll intervals ended, ``noreply`` those that ended without the samples for an update,
    ``baddata`` the samples refused as bad (from the future, stale, or marked unsynchronised), ``badformat``
    the input the driver could not read (an NMEA receiver's bad sentences); each None where nothing counts
    it (the local clock has no filter; most drivers do not count unreadable input). ``gps`` says the
    snapshot's :class:`GpsStatus` is this receiver's.
    """

    name: str
    device: str
    time1_ns: int | None = None
    time2_ns: int | None = None
    flags: int = 0
    polls: int | None = None
    noreply: int | None = None
    baddata: int | None = None
    badformat: int | None = None
    gps: bool = False


@dataclass(frozen=True, slots=True)
class LeapStatus:
    """The leap-second table in use: where it came from, TAI-UTC now, when it expires (POSIX ns)."""

    path: str
    tai_offset_s: int
    expires_ns: int


@dataclass(frozen=True, slots=True)
class Counters:
    """What the server did with requests since it started (the time path's and mode 6's).

    ``served`` time replies, ``kod`` Kiss-o'-Death replies, ``rate_limited`` requests dropped by the rate
    limiter, ``refused`` requests dropped by access control (``ignore``, ``noserve``, ``noquery``,
    ``nopeer``), ``dropped`` every other drop (malformed, mode 7...), ``control`` mode 6 requests.
    ``served_per_s`` is the time replies a second since the previous snapshot (0.0 for the first).
    ``authenticated`` of the served replies were signed with a trusted key (``keys``), ``crypto_nak`` were
    a crypto-NAK to a MAC no trusted key made; ``interleaved`` were in interleaved mode (RFC 9769).
    ``drops`` every drop by its reason, sorted (``rate``, ``noquery``, ``control-rate``, ``short``...).
    ``queue_drops``: requests the kernel dropped before the server saw them (the sockets' receive queues
    were full: more than the appliance can answer), from ``/proc/net/udp``; counted in no other field.
    """

    received: int
    served: int
    kod: int
    rate_limited: int
    refused: int
    dropped: int
    control: int
    served_per_s: float = 0.0
    authenticated: int = 0
    crypto_nak: int = 0
    interleaved: int = 0
    drops: tuple[tuple[str, int], ...] = ()
    queue_drops: int = 0


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something wrong, in words, with what to do about it (``severity``: ``warning`` or ``critical``)."""

    code: str
    severity: str
    message: str
    action: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The appliance at ``time_ns`` (the served clock's reading); see the module docstring."""

    time_ns: int
    started_ns: int
    version: str
    system: SystemStatus
    sources: tuple[SourceStatus, ...]
    counters: Counters
    gps: GpsStatus | None = None
    leap: LeapStatus | None = None
    alarms: tuple[Alarm, ...] = field(default=())
    #: Each reference clock's own state (ntpq ``cv``), by source name.
    clocks: tuple[ClockStatus, ...] = field(default=())

    def source(self, assoc_id: int) -> SourceStatus | None:
        """The source with association ID ``assoc_id``, or None."""
        for s in self.sources:
            if s.assoc_id == assoc_id:
                return s
        return None

    def clock(self, name: str) -> ClockStatus | None:
        """The reference clock named ``name`` (a source's name), or None."""
        return next((c for c in self.clocks if c.name == name), None)

    @property
    def system_peer(self) -> SourceStatus | None:
        return self.source(self.system.peer) if self.system.peer else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["format"] = FORMAT_VERSION
        return out

    def to_json(self) -> str:
        """One JSON object (no newlines inside); see the module docstring."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        """Read :meth:`to_dict`'s form back; ValueError when the format is not one this code knows."""
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(f"status format {d.get('format')!r} is not {FORMAT_VERSION}")
        try:
            return cls(
                time_ns=d["time_ns"],
                started_ns=d["started_ns"],
                version=d["version"],
                system=SystemStatus(**d["system"]),
                sources=tuple(SourceStatus(**s) for s in d["sources"]),
                counters=Counters(
                    **{**d["counters"], "drops": tuple((r, int(n)) for r, n in d["counters"].get("drops", ()))}
                ),
                gps=GpsStatus.from_dict(d["gps"]) if d.get("gps") else None,
                leap=LeapStatus(**d["leap"]) if d.get("leap") else None,
                alarms=tuple(Alarm(**a) for a in d.get("alarms", ())),
                clocks=tuple(ClockStatus(**c) for c in d.get("clocks", ())),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"status snapshot is malformed: {e}") from e

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"status snapshot is not JSON: {e}") from e
        if not isinstance(d, dict):
            raise ValueError("status snapshot is not a JSON object")
        return cls.from_dict(d)
