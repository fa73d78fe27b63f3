"""What the NMEA decoder skipped, and why: one count per reason.

Bad input is dropped and counted, never raised (DESIGN.md, "Rules of the
road"). Every byte fed and every candidate line ends up in exactly one
bucket, so the counts add up (the fuzz tests check it)::

    bytes_in == garbage_bytes + eol_bytes + line_bytes

    lines == decoded + ignored + proprietary + unknown_type
             + bad_checksum + no_checksum + truncated + too_long + decode_error

    decoded == placed + unplaced + unselected

A decoder owns one :class:`Tally` (mutable, never shared, never global) and
hands out :class:`NmeaCounters` snapshots, which are frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class NmeaCounters:
    """A snapshot of one decoder's counts (all ints, all start at 0)."""

    #: Bytes handed to ``feed``.
    bytes_in: int = 0
    #: Bytes outside any sentence: binary protocols, line noise, NUL padding,
    #: a lone ``$``.
    garbage_bytes: int = 0
    #: CR and LF bytes that end lines (not garbage).
    eol_bytes: int = 0
    #: Bytes of candidate lines, from the ``$``/``!`` up to (not including) the
    #: byte that ends them; includes rejected lines and the unfinished one.
    line_bytes: int = 0
    #: Candidate lines: a ``$`` or ``!`` followed by at least one character.
    lines: int = 0
    #: Lines whose ``*hh`` checksum does not match (or is not two hex digits).
    bad_checksum: int = 0
    #: Lines ended by CR/LF without a checksum, when checksums are required.
    no_checksum: int = 0
    #: Lines cut short without a checksum: ended by a new ``$``/``!`` or by a
    #: binary byte.
    truncated: int = 0
    #: Lines longer than the decoder's limit (NMEA allows 82 bytes with CRLF).
    too_long: int = 0
    #: Lines with a good checksum that are no well-formed sentence, or whose
    #: time field is malformed.
    decode_error: int = 0
    #: Proprietary ``$P...`` sentences we do not use.
    proprietary: int = 0
    #: Well-formed standard sentences of a type we do not use (VTG, TXT, GST...).
    ignored: int = 0
    #: Address fields that are no known sentence type (``$GYOACC``, ``$SNRSTAT``).
    unknown_type: int = 0
    #: Sentences decoded and handed to epoch assembly (RMC, ZDA, GGA, GNS, GLL,
    #: GSA, GSV, PUBX,04).
    decoded: int = 0
    #: Decoded sentences that had one or more unreadable optional fields (those
    #: fields are read as absent).
    bad_field: int = 0
    #: Decoded sentences that joined an epoch.
    placed: int = 0
    #: Decoded sentences that joined no epoch: no time of day in a timed
    #: sentence, untimed sentences before the first time, or sentences that
    #: arrived after their epoch had already been reported.
    unplaced: int = 0
    #: Timed sentences left out by the receiver's sentence selection (ntpd's NMEA ``mode`` bits): of a type
    #: the line did not choose, in a second that brought none of the chosen ones.
    unselected: int = 0
    #: Epochs reported as :class:`~appliance.nmea.epoch.Fix` values.
    epochs: int = 0
    #: Epochs reported without a UTC time (no date known yet, or refused).
    undated_epochs: int = 0
    #: Dates moved forward by 1024-week steps (GPS week-number rollover).
    rollover_repaired: int = 0
    #: Dates refused by the rollover policy.
    rollover_refused: int = 0
    #: Complete GSV groups (satellites in view) read into an epoch's sky.
    sky_groups: int = 0
    #: GSV groups dropped: a message missing, out of order or unreadable, or the group cut by the epoch's end.
    sky_groups_dropped: int = 0

    @property
    def recognised(self) -> int:
        """Lines that were NMEA: a checksum that matched (or none, where that is allowed), used or not."""
        return self.decoded + self.ignored + self.proprietary + self.unknown_type + self.decode_error


class Tally:
    """The mutable counts behind :class:`NmeaCounters`; one per decoder."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = dict.fromkeys(_NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a field of :class:`NmeaCounters`)."""
        if name not in self._counts:
            raise KeyError(name)
        self._counts[name] += n

    def get(self, name: str) -> int:
        """Return the current value of counter ``name``."""
        return self._counts[name]

    def snapshot(self) -> NmeaCounters:
        """Return the counts now, as a frozen value."""
        return NmeaCounters(**self._counts)


_NAMES = tuple(f.name for f in fields(NmeaCounters))
