"""The sky of one epoch: which satellites a receiver sees, where, how loud, and which it uses (pure).

NMEA 0183 facts used here:

- GSV lists the satellites in view, four to a message, in a *group* of ``total`` messages numbered
  ``1..total`` sent in a row, every one repeating the group's count in view. Each constellation has its own
  group under its own talker (``$GPGSV`` GPS and SBAS, ``$GLGSV`` GLONASS, ``$GAGSV`` Galileo, ``$GBGSV`` or
  ``$BDGSV`` BeiDou, ``$GQGSV`` QZSS, ``$GIGSV`` NavIC); NMEA 4.11 adds a signal ID and sends one group per
  signal (L1 C/A, L5...) one after the other, so the same satellite can come twice: it is kept once, with its
  loudest signal. (Quectel's LC79D numbers its signals' messages as one group: the last ones carry a signal
  ID, the first ones none; a group is therefore a talker's run of messages, whatever their signal IDs.)
  Some receivers put every constellation under ``$GPGSV`` or ``$GNGSV`` and tell them apart by PRN.
- GSA lists the PRNs used in the fix (up to 12 per message), one message per constellation on multi-GNSS
  receivers: under its own talker, or under ``GN`` with NMEA 4.10's system ID (1 GPS, 2 GLONASS, 3 Galileo,
  4 BeiDou, 5 QZSS, 6 NavIC) or, before 4.10, told apart by PRN alone.
- PRN ranges in ``GP``/``GN`` sentences (NMEA 0183 4.0 and u-blox's extended numbering, as gpsd reads them):
  1-32 GPS, 33-64 and 120-158 SBAS, 65-96 GLONASS, 193-200 QZSS, 201-263 and 401-463 BeiDou, 301-336 Galileo.

Groups are assembled per talker in arrival order, within one epoch. A group is kept only when
every message from 1 to ``total`` came, in order, with the same total and count in view and no unreadable
field; anything else (a message missing or repeated, a group cut by the end of the epoch, a bad field) drops
the group whole and counts it. An epoch with no complete group says nothing about the sky (None): MediaTek
receivers send GSV every fifth second, and the sky of the last epoch that had one stands meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance.nmea.sentence import Gsa, Gsv, SatView, Sentence

#: NMEA 4.10's GSA/GSV system ID.
SYSTEM_IDS = {1: "GPS", 2: "GLONASS", 3: "Galileo", 4: "BeiDou", 5: "QZSS", 6: "NavIC"}
#: Talkers that name one constellation (``GP`` and ``GN`` sentences are sorted by PRN).
TALKERS = {
    "GP": "GPS",
    "GL": "GLONASS",
    "GA": "Galileo",
    "GB": "BeiDou",
    "BD": "BeiDou",
    "GQ": "QZSS",
    "QZ": "QZSS",
    "GI": "NavIC",
    "IN": "NavIC",
}
#: PRN ranges of ``GP``/``GN`` sentences (see the module docstring): (first, last, system).
PRN_RANGES = (
    (1, 32, "GPS"),
    (33, 64, "SBAS"),
    (65, 96, "GLONASS"),
    (120, 158, "SBAS"),
    (193, 200, "QZSS"),
    (201, 263, "BeiDou"),
    (301, 336, "Galileo"),
    (401, 463, "BeiDou"),
)
#: Display order of the systems.
SYSTEMS = ("GPS", "SBAS", "GLONASS", "Galileo", "BeiDou", "QZSS", "NavIC", "GNSS")


def system_of(talker: str, prn: int, system_id: int | None = None) -> str:
    """The constellation of satellite ``prn`` in a sentence from ``talker`` (with NMEA 4.10's system ID)."""
    system = SYSTEM_IDS.get(system_id) if system_id is not None else None
    if system is None:
        system = TALKERS.get(talker, "GNSS")
    if system in ("GPS", "GNSS"):
        for first, last, name in PRN_RANGES:
            if first <= prn <= last:
                return name
    return system


@dataclass(frozen=True, slots=True)
class Satellite:
    """One satellite in view: constellation, PRN as the receiver numbers it, position, signal, used or not.

    ``elevation_deg`` above the horizon (0-90; negative, below it, as a receiver may say),
    ``azimuth_deg`` clockwise from true north (0-359), ``snr_dbhz``
    the carrier-to-noise ratio in dB-Hz; None where the receiver left the field empty (not tracked, or its
    position not yet known). ``used``: listed by a GSA of the same epoch (in the fix).
    """

    system: str
    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_dbhz: int | None
    used: bool = False


@dataclass(frozen=True, slots=True)
class Sky:
    """What the GSV/GSA sentences of one epoch said: the satellites (None: no complete group) and the group counts."""

    satellites: tuple[Satellite, ...] | None
    groups: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Group:
    total: int | None
    in_view: int | None
    next_num: int
    sats: list[SatView] = field(default_factory=list)
    broken: bool = False


def sky_of(sentences: Iterable[Sentence]) -> Sky:
    """The sky of one epoch's sentences (in arrival order); see the module docstring."""
    open_groups: dict[str, _Group] = {}
    complete: list[tuple[str, list[SatView]]] = []
    dropped = 0
    used: set[tuple[str, int]] = set()
    for s in sentences:
        if isinstance(s, Gsa):
            used.update((system_of(s.talker, p, s.system_id), p) for p in s.prns)
            continue
        if not isinstance(s, Gsv):
            continue
        key = s.talker
        g = open_groups.get(key)
        ok = not s.bad_field and s.msg_total is not None and s.msg_num is not None and 1 <= s.msg_num <= s.msg_total
        continues = g is not None and (s.msg_num, s.msg_total, s.in_view) == (g.next_num, g.total, g.in_view)
        if g is not None and ok and not continues:  # a new group (or a stray message): the open one ends unfinished
            dropped += 1
            g = None
        if g is None:
            g = open_groups[key] = _Group(s.msg_total, s.in_view, s.msg_num or 0, broken=not ok or s.msg_num != 1)
        elif not ok:
            g.broken = True  # a bad message in the group spoils it
        g.sats += s.satellites
        g.next_num = (s.msg_num or g.next_num) + 1
        if s.msg_num is not None and s.msg_num == s.msg_total:  # the group's last message
            del open_groups[key]
            if g.broken:
                dropped += 1
            else:
                complete.append((s.talker, g.sats))
    dropped += len(open_groups)  # cut off by the end of the epoch
    if not complete:
        return Sky(None, 0, dropped)
    return Sky(_merge(complete, used), len(complete), dropped)


def _merge(groups: list[tuple[str, list[SatView]]], used: set[tuple[str, int]]) -> tuple[Satellite, ...]:
    """One entry per (system, PRN): the first position given, the loudest signal."""
    by_id: dict[tuple[str, int], Satellite] = {}
    for talker, sats in groups:
        for v in sats:
            key = (system_of(talker, v.prn), v.prn)
            old = by_id.get(key)
            if old is None:
                by_id[key] = Satellite(key[0], v.prn, v.elevation_deg, v.azimuth_deg, v.snr_dbhz, key in used)
                continue
            snr = max((x for x in (old.snr_dbhz, v.snr_dbhz) if x is not None), default=None)
            by_id[key] = Satellite(
                old.system,
                old.prn,
                old.elevation_deg if old.elevation_deg is not None else v.elevation_deg,
                old.azimuth_deg if old.azimuth_deg is not None else v.azimuth_deg,
                snr,
                old.used,
            )
    order = {name: i for i, name in enumerate(SYSTEMS)}
    return tuple(sorted(by_id.values(), key=lambda sat: (order.get(sat.system, len(order)), sat.prn)))
