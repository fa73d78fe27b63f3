"""The leap-second table: the IETF/NIST ``leap-seconds.list`` file, parsed, checked and asked.

Pure: text in, a frozen :class:`LeapTable` out, the time passed in to every
question. Only :func:`load_leapfile` reads a file (the one named to it).

The file format (IERS / NIST ``leap-seconds.list``, shipped by tzdata as
``/usr/share/zoneinfo/leap-seconds.list``; the IERS README at
https://hpiers.obspm.fr/iers/bul/bulc/ntp/sources/README explains the hash):

- ``#$ N``: when the file was last updated, NTP seconds (since 1900-01-01);
- ``#@ N``: when the file expires, NTP seconds. After this the table may be
  missing leap seconds announced since (IERS Bulletin C comes out every six
  months and the file is valid for six months ahead);
- data lines ``N  DTAI  # comment``: from NTP second ``N`` (always 00:00:00
  UTC, the first instant *after* the leap second) TAI - UTC is ``DTAI``
  seconds. The first line (1972, 10 s) starts the table; each later line is
  a leap second: one more second than the previous line is an inserted
  23:59:60 at the end of the day before, one fewer a deleted 23:59:59;
- ``#h w1 w2 w3 w4 w5``: the SHA-1 of the file's data as five 32-bit words in
  hex. The hash input is the *digits* only, in file order, with nothing in
  between: the digits of the ``#$`` number, then of the ``#@`` number, then
  of each data line's first two fields (the comment after ``#`` is not
  hashed). NIST's copies have been published with a word's leading zeros
  dropped, so a word is 1 to 8 hex digits, compared as a number (as ntpd does);
- any other line starting with ``#`` is a comment; blank lines are ignored.

The file counts seconds since 1900 without wrapping, so there is no NTP era
to resolve: ``NTP second N`` is POSIX second ``N - 2208988800``.

Leap indicator served (RFC 5905 section 7.3, "LI"): :meth:`LeapTable.indicator`
gives :data:`~appliance.ntp.packet.LEAP_INSERT` (or ``LEAP_DELETE``) during the
last UTC day before a leap second, i.e. the 24 hours ending at the file's
time for that leap, and :data:`~appliance.ntp.packet.LEAP_NONE` otherwise;
during an inserted 23:59:60 (POSIX time repeats 23:59:59) the indicator is
still set, and it drops at 00:00:00. :func:`leap_to_serve` combines the
table with what the selected source says.

Every problem with a file is a :class:`LeapFileError` naming the file and
line; the appliance then runs without a table (:func:`find_leap_table` says
so in its messages) and takes leap warnings from its sources only.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.files import FileRefused, read_regular_file
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE, LEAP_UNSYNC
from appliance.timebase import NS_PER_S, NTP_UNIX_OFFSET_S

#: Where tzdata installs the IETF-format table (Debian, Raspberry Pi OS, Fedora, Alpine).
TZDATA_LEAPFILE = "/usr/share/zoneinfo/leap-seconds.list"
#: One UTC day, ns (a leap day has one second more or less; the table's times are midnights).
DAY_NS = 86_400 * NS_PER_S
#: Files larger than this are not a leap-seconds.list (the real one is about 5 kB).
MAX_FILE_BYTES = 1 << 20

_DATA = re.compile(r"\s*([0-9]+)\s+([0-9]+)\s*(?:#.*)?")
_NUMBER_TAG = re.compile(r"#[$@]\s+([0-9]+)\s*")
_HASH = re.compile(r"#h\s+((?:[0-9A-Fa-f]{1,8}\s+){4}[0-9A-Fa-f]{1,8})\s*")


class LeapFileError(Exception):
    """A leap-second file that cannot be used: ``path``, ``line`` (None when no line is at fault), ``message``.

    Its text reads like a compiler's: ``/usr/share/zoneinfo/leap-seconds.list:121: ...``.
    """

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class LeapEntry:
    """A data line: from ``at_ns`` (POSIX ns, a UTC midnight) TAI - UTC is ``tai_offset_s`` seconds."""

    at_ns: int
    tai_offset_s: int
    line: int = 0


@dataclass(frozen=True, slots=True)
class LeapSecond:
    """One leap second: at the end of the UTC day ending at ``at_ns`` (POSIX ns, the next day's 00:00:00).

    ``delta_s`` is +1 for an inserted second (23:59:60), -1 for a deleted one
    (23:59:59 skipped); ``tai_offset_s`` is TAI - UTC from ``at_ns`` on.
    """

    at_ns: int
    delta_s: int
    tai_offset_s: int

    @property
    def indicator(self) -> int:
        """The NTP leap indicator announcing this leap: LEAP_INSERT or LEAP_DELETE."""
        return LEAP_INSERT if self.delta_s > 0 else LEAP_DELETE

    @property
    def day_start_ns(self) -> int:
        """The start of the last UTC day before the leap, POSIX ns: from here the indicator is set."""
        return self.at_ns - DAY_NS


@dataclass(frozen=True, slots=True)
class LeapTable:
    """A checked leap-second table; every question takes the time (POSIX ns) as an argument.

    ``entries`` are in strictly increasing time order; ``updated_ns`` and
    ``expires_ns`` are the file's ``#$`` and ``#@`` times (POSIX ns);
    ``path`` is where it came from.
    """

    path: str
    updated_ns: int
    expires_ns: int
    entries: tuple[LeapEntry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a leap table needs at least one entry")
        for before, after in zip(self.entries, self.entries[1:], strict=False):
            if after.at_ns <= before.at_ns:
                raise ValueError(f"leap table entries out of order: {before} then {after}")

    @property
    def leaps(self) -> tuple[LeapSecond, ...]:
        """Every leap second in the table (the first entry starts the table and is not one)."""
        return tuple(
            LeapSecond(after.at_ns, after.tai_offset_s - before.tai_offset_s, after.tai_offset_s)
            for before, after in zip(self.entries, self.entries[1:], strict=False)
        )

    def expired(self, now_ns: int) -> bool:
        """True from the file's expiry time on: leap seconds announced since may be missing."""
        return now_ns >= self.expires_ns

    def tai_offset(self, now_ns: int) -> int:
        """TAI - UTC at ``now_ns``, seconds; 0 before the table's first entry (1972: not an integer then)."""
        offset = 0
        for entry in self.entries:
            if entry.at_ns > now_ns:
                break
            offset = entry.tai_offset_s
        return offset

    def next_leap(self, now_ns: int) -> LeapSecond | None:
        """The first leap second whose moment (``at_ns``) is after ``now_ns``, or None if the table knows none."""
        for leap in self.leaps:
            if leap.at_ns > now_ns:
                return leap
        return None

    def indicator(self, now_ns: int) -> int:
        """The NTP leap indicator to serve at ``now_ns``: the warning in the 24 h ending at a leap, else none.

        Answers from what the table knows even when it has expired (check
        :meth:`expired` and warn, :func:`expiry_warning`).
        """
        leap = self.next_leap(now_ns)
        if leap is not None and now_ns >= leap.day_start_ns:
            return leap.indicator
        return LEAP_NONE


# --- hashing -------------------------------------------------------------------------------------


def hash_fields(fields: Iterable[str]) -> tuple[int, int, int, int, int]:
    """SHA-1 over the concatenated digit strings ``fields`` (update, expiry, then each line's two fields).

    Returns the five 32-bit words the ``#h`` line carries. The strings are
    hashed as written in the file (a leading zero is part of the hash).
    """
    digest = hashlib.sha1(usedforsecurity=False)
    for field in fields:
        if not field.isdigit() or not field.isascii():
            raise ValueError(f"leap file hash fields are digits, not {field!r}")
        digest.update(field.encode("ascii"))
    raw = digest.digest()
    w = tuple(int.from_bytes(raw[i : i + 4], "big") for i in range(0, 20, 4))
    return (w[0], w[1], w[2], w[3], w[4])


def format_hash_line(words: Sequence[int]) -> str:
    """The ``#h`` line for five 32-bit words, as IERS writes it (``#h``, a tab, 8 hex digits each)."""
    return "#h\t" + _hex(words)


def _hex(words: Sequence[int]) -> str:
    return " ".join(f"{w:08x}" for w in words)


# --- parsing -------------------------------------------------------------------------------------


def _posix_ns(ntp_seconds: int) -> int:
    return (ntp_seconds - NTP_UNIX_OFFSET_S) * NS_PER_S


def _ntp_seconds(posix_ns: int) -> int:
    seconds, rem = divmod(posix_ns, NS_PER_S)
    if rem:
        raise ValueError(f"leap file times are whole seconds, not {posix_ns} ns")
    return seconds + NTP_UNIX_OFFSET_S


def _date(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns // NS_PER_S, tz=UTC).date().isoformat()


def parse_leapfile(text: str, path: str) -> LeapTable:
    """Parse and check a ``leap-seconds.list``; ``path`` names it in errors. LeapFileError on any fault."""
    updated: tuple[str, int] | None = None  # (digits, line)
    expires: tuple[str, int] | None = None
    published: tuple[tuple[int, ...], int] | None = None
    entries: list[LeapEntry] = []
    hashed: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(("#$", "#@")):
            tag = stripped[:2]
            m = _NUMBER_TAG.fullmatch(stripped)
            if m is None:
                raise LeapFileError(path, number, f"'{tag}' needs one number of NTP seconds, not '{stripped}'")
            previous = updated if tag == "#$" else expires
            if previous is not None:
                raise LeapFileError(path, number, f"a second '{tag}' line (the first is line {previous[1]})")
            if tag == "#$":
                updated = (m.group(1), number)
            else:
                expires = (m.group(1), number)
            continue
        if stripped.startswith("#h") and (len(stripped) == 2 or stripped[2].isspace()):
            m = _HASH.fullmatch(stripped)
            if m is None:
                raise LeapFileError(path, number, f"'#h' needs five hex words (the SHA-1), not '{stripped}'")
            if published is not None:
                raise LeapFileError(path, number, f"a second '#h' line (the first is line {published[1]})")
            published = (tuple(int(w, 16) for w in m.group(1).split()), number)
            continue
        if stripped.startswith("#"):
            continue
        m = _DATA.fullmatch(line)
        if m is None:
            raise LeapFileError(path, number, f"not a leap-second line ('NTP-seconds TAI-UTC # comment'): '{stripped}'")
        entries.append(_entry(path, number, int(m.group(1)), int(m.group(2)), entries))
        hashed += [m.group(1), m.group(2)]
    end = max(len(lines), 1)
    if updated is None:
        raise LeapFileError(path, end, "no '#$' line (last update): not a leap-seconds.list")
    if expires is None:
        raise LeapFileError(path, end, "no '#@' line (expiry): not a leap-seconds.list")
    if not entries:
        raise LeapFileError(path, end, "no leap-second lines")
    if int(expires[0]) <= int(updated[0]):
        raise LeapFileError(path, expires[1], "the file expires before it was last updated ('#@' <= '#$')")
    if published is None:
        raise LeapFileError(path, end, "no '#h' hash line: the file is incomplete or not the published one")
    computed = hash_fields([updated[0], expires[0], *hashed])
    if published[0] != computed:
        raise LeapFileError(
            path,
            published[1],
            "SHA-1 hash does not match the file's contents (edited or damaged): "
            f"published {_hex(published[0])}, computed {_hex(computed)}",
        )
    return LeapTable(path, _posix_ns(int(updated[0])), _posix_ns(int(expires[0])), tuple(entries))


def _entry(path: str, number: int, ntp_seconds: int, tai_offset_s: int, before: list[LeapEntry]) -> LeapEntry:
    if ntp_seconds % 86_400:
        raise LeapFileError(path, number, f"{ntp_seconds} is not a midnight UTC (leap seconds end a UTC day)")
    entry = LeapEntry(_posix_ns(ntp_seconds), tai_offset_s, number)
    if before:
        last = before[-1]
        if entry.at_ns <= last.at_ns:
            raise LeapFileError(
                path,
                number,
                f"{ntp_seconds} ({_date(entry.at_ns)}) is not after line {last.line} ({_date(last.at_ns)})",
            )
        if abs(tai_offset_s - last.tai_offset_s) != 1:
            raise LeapFileError(
                path,
                number,
                f"TAI-UTC goes from {last.tai_offset_s} (line {last.line}) to {tai_offset_s}: "
                "a leap second changes it by exactly one",
            )
    return entry


def load_leapfile(path: str) -> LeapTable:
    """Read and parse the leap-second file at ``path``; LeapFileError (with the line) on any fault."""
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileRefused as e:
        raise LeapFileError(path, None, f"{e.strerror}: not a leap-seconds.list") from e
    except OSError as e:
        raise LeapFileError(path, None, f"cannot read: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LeapFileError(path, line, f"not UTF-8 text (byte {e.start})") from e
    return parse_leapfile(text, path)


def default_leapfile_paths() -> tuple[str, ...]:
    """Where to look for the table when the configuration names none: tzdata's copy."""
    return (TZDATA_LEAPFILE,)


@dataclass(frozen=True, slots=True)
class LeapTableLoad:
    """What :func:`find_leap_table` found: the table (None: run without one) and lines to log, in order."""

    table: LeapTable | None
    messages: tuple[str, ...]


def find_leap_table(leapfile: str | None) -> LeapTableLoad:
    """Load the configured ``leapfile``, or else the first of :func:`default_leapfile_paths` that loads.

    Never raises: each failure becomes a message, and when nothing loads the
    last message says the appliance runs without a leap-second table.
    """
    paths = (leapfile,) if leapfile is not None else default_leapfile_paths()
    messages: list[str] = []
    for path in paths:
        try:
            table = load_leapfile(path)
        except LeapFileError as e:
            messages.append(f"leap-second file {e}")
            continue
        return LeapTableLoad(table, tuple(messages))
    messages.append(
        "running without a leap-second table: leap seconds are announced only when the selected source does"
    )
    return LeapTableLoad(None, tuple(messages))


def leapfile_signature(leapfile: str | None) -> tuple[tuple[str, int, int, int] | None, ...]:
    """What :func:`find_leap_table` would read, as (path, inode, size, mtime) each (None: absent), to tell
    a replaced or rewritten file (a tzdata upgrade, a fresh download) from an unchanged one cheaply."""
    out: list[tuple[str, int, int, int] | None] = []
    for path in (leapfile,) if leapfile is not None else default_leapfile_paths():
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def expiry_warning(table: LeapTable, now_ns: int) -> str | None:
    """The loud warning line for an expired table (with its expiry date), or None while it is current."""
    if not table.expired(now_ns):
        return None
    days = (now_ns - table.expires_ns) // DAY_NS
    return (
        f"WARNING: leap-second file {table.path} expired on {_date(table.expires_ns)} ({days} days ago): "
        "leap seconds announced since then are unknown; update tzdata or point 'leapfile' at a current "
        "leap-seconds.list"
    )


def leap_to_serve(table: LeapTable | None, now_ns: int, source_leap: int) -> int:
    """The leap indicator to serve and to arm on the clock, given the selected source's ``source_leap``.

    Unsynchronised (3) stays so. A current table decides alone (ntpd trusts
    its leapfile over its peers). An expired table still announces the leaps
    it knows; otherwise, as with no table, the source's warning is used.
    """
    if source_leap == LEAP_UNSYNC or table is None:
        return source_leap
    indicator = table.indicator(now_ns)
    if indicator != LEAP_NONE or not table.expired(now_ns):
        return indicator
    return source_leap


def leap_to_arm(served_leap: int) -> int:
    """The value for :meth:`appliance.clock.base.Clock.set_leap` given the served indicator: 3 arms nothing.

    Call it with what :func:`leap_to_serve` returned, every tick: the
    clocks ignore a repeated value, arm the leap during the last day and
    are disarmed from 00:00:00 on, after the leap.
    """
    return served_leap if served_leap in (LEAP_INSERT, LEAP_DELETE) else LEAP_NONE


def render_leapfile(updated_ns: int, expires_ns: int, entries: Sequence[tuple[int, int]]) -> str:
    """A valid ``leap-seconds.list`` text (with its hash) for ``entries`` of (POSIX ns, TAI - UTC s).

    For tests and simulations that need a table with leap seconds of their
    choosing; times must be whole seconds. The result parses with
    :func:`parse_leapfile` when the entries are a valid table.
    """
    updated, expires = str(_ntp_seconds(updated_ns)), str(_ntp_seconds(expires_ns))
    rows = [(str(_ntp_seconds(at_ns)), str(offset)) for at_ns, offset in entries]
    words = hash_fields([updated, expires, *(f for row in rows for f in row)])
    lines = [
        "#\tleap-seconds.list (IETF format), written by appliance.leap.render_leapfile",
        f"#$\t{updated}",
        f"#@\t{expires}",
        *(f"{ntp}\t{offset}\t# {_date(_posix_ns(int(ntp)))}" for ntp, offset in rows),
        format_hash_line(words),
    ]
    return "\n".join(lines) + "\n"
