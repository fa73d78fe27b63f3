"""Parse ntp.conf into a :class:`~appliance.config.model.Config`, with ntpd's meaning.

The syntax and meaning follow ntpd's manual pages, ntp.conf(5) with
ntp_acc(5) (``restrict``, ``discard``), ntp_clock(5) (``fudge``) and
ntp_misc(5) (``driftfile``, ``includefile``, ``interface`` ...), and NTPsec's
where it adds syntax (``refclock NAME``, ``restrict ADDRESS/PREFIX``). The
tutorial lines work as written::

    server 0.pool.ntp.org iburst
    restrict default kod notrap nomodify nopeer noquery limited
    restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap
    server 127.127.1.0
    fudge 127.127.1.0 stratum 10

Three outcomes per line, never silence:

- understood: it lands in the model;
- understood but not acted on (``keys``, ``tos``, a server's
  ``xleave`` ...): accepted with a :class:`ConfigWarning` naming file and line;
- anything else (a typo, a bad number, a host name where an address is
  needed): :class:`ConfigError` "FILE:LINE: what is wrong".

Lines keep ntpd's order-independence where ntpd has it: a ``fudge`` may come
before its ``server``; several ``fudge`` lines for one clock merge (later
values win); several ``discard`` lines set their options in turn. ``restrict``
lines are kept as written, in file order: merging lines for the same address
and the implicit default are :mod:`appliance.ntp.access`'s job.

Pure: the only I/O is reading the file and its includes in :func:`load_config`,
through :func:`appliance.files.read_regular_file`: regular files only, and at
most :data:`MAX_CONFIG_BYTES` for the file and its includes together (a
configuration that names ``/dev/zero`` is refused at once).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from importlib import resources
from types import MappingProxyType
from typing import NoReturn

from appliance.config.errors import ConfigError
from appliance.config.lexer import Line, Token, tokenize
from appliance.config.model import (
    LOCALCLOCK_PUBLIC,
    LOCALCLOCK_START,
    REFCLOCK_TYPES,
    RESTRICT_FLAGS,
    STATS_FILES,
    Config,
    ConfigWarning,
    Discard,
    Filegen,
    Fudge,
    IPNetwork,
    Listen,
    LocalClockOptions,
    Location,
    Refclock,
    RestrictRule,
    ServerLine,
)
from appliance.files import FileRefused, read_regular_file
from appliance.ntp.keys import Key, KeyFileError, KeyRing, parse_keys, parse_trusted

#: Reads an included file: given its path (already joined to the including
#: file's directory), returns its text; raises OSError when it cannot.
IncludeLoader = Callable[[str], str]

#: How deep ``includefile`` may nest (ntpd's limit: five files below the main one).
MAX_INCLUDE_DEPTH = 5

#: The most a configuration may hold, its includes counted in (a real ntp.conf is a few kB).
MAX_CONFIG_BYTES = 1 << 20

NS_PER_S = 1_000_000_000
#: Largest time in seconds accepted for ``bias``.
MAX_OFFSET_S = 86_400
#: Largest ``holdover`` bound (s): a clock that may be a second off is no stratum 1.
MAX_HOLDOVER_S = 1
#: Largest reference clock offset (``time1``, ``time2``) in seconds either way: a receiver's seconds are
#: paired with its pulses within one second, so a larger offset would number every second wrongly.
MAX_REFCLOCK_OFFSET_S = 1
#: Largest ``time2`` accepted for the shm driver (s), where it is the largest offset believed: ntpd takes
#: 1 to 86400 and ignores the rest, so the rest parses (and is warned about) up to this bound.
MAX_SHM_TIME2_S = 10**9
#: Largest GPIO line number ``ppspath gpio:N`` takes (a chip has far fewer; the driver says which are missing).
MAX_GPIO_LINE = 1023
#: The stratum a reference clock line gives for the clock itself (``fudge``, ``refclock``; the local clock's
#: is :data:`STRATUM_RANGE`): ntpd's and NTPsec's 0 to 15, served one higher.
REFCLOCK_STRATUM_RANGE = (0, 15)
#: ``tos`` strata (``orphan``, ``floor``, ``ceiling``): ntpd's range, 16 being the default of two of them.
TOS_STRATUM_RANGE = (0, 16)
#: The strata a line may give (``fudge``, ``refclock``, ``tos orphan``): 0 is what a Kiss-o'-Death carries
#: and 16 means unsynchronised, so a server serving either would tell every client to stop or to look away.
STRATUM_RANGE = (1, 15)
_UINT32_MAX = 2**32 - 1

_INT = re.compile(r"[+-]?[0-9]{1,20}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][+-]?[0-9]{1,4})?")
_REFCLOCK_ADDRESS = re.compile(r"127\.127\.([0-9]{1,9})\.([0-9]{1,9})")
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_IFACE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}")
_BAUD_RATES = frozenset(
    {50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600}
    | {115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000}
    | {2500000, 3000000, 3500000, 4000000}
)


# -- public API ---------------------------------------------------------------


def parse_config(text: str, filename: str, *, include_loader: IncludeLoader | None = None) -> Config:
    """Parse ntp.conf ``text``; ``filename`` names it in errors and locations.

    ``includefile`` lines are read through ``include_loader`` (relative paths
    join the including file's directory); without a loader they are an error.
    Raises :class:`ConfigError` for the first line that cannot be used, with
    every other such line (of the file and its includes) in its ``more``.
    """
    builder = _Builder(include_loader)
    builder.feed(text, filename, ())
    if builder.errors:
        raise ConfigError.of(builder.errors)
    return builder.finish(filename)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and parse the ntp.conf at ``path`` and the files it includes.

    Raises :class:`ConfigError` when a file cannot be read, as for any error in
    its text. Octets that are not UTF-8 are harmless in a comment (a Latin-1
    ``# Zeitserver für das Büro``, as ntpd reads bytes); anywhere else they
    are an error naming the line and the octet.
    """
    name = os.fspath(path)
    reader = _ConfigReader(MAX_CONFIG_BYTES)
    try:
        text = reader(name)
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", file=name) from e
    return parse_config(text, name, include_loader=reader)


def default_config_text() -> str:
    """The built-in default configuration (``default.conf``, as the SD image ships it)."""
    return resources.files("appliance.config").joinpath("default.conf").read_text(encoding="utf-8")


class _ConfigReader:
    """Reads a configuration's files as UTF-8 text, all of them together at most ``budget`` bytes.

    An octet that is not UTF-8 becomes a lone surrogate (``surrogateescape``):
    the lexer skips it in a comment and refuses it, with its line, elsewhere.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.left = budget

    def __call__(self, path: str) -> str:
        try:
            data = read_regular_file(path, self.left)
        except FileRefused as e:
            if self.left < self.budget and (e.strerror or "").startswith("larger than"):
                raise FileRefused(path, f"the configuration and its includes exceed {self.budget} bytes") from e
            raise
        self.left -= len(data)
        return data.decode("utf-8", "surrogateescape")


# -- reading one line's words -------------------------------------------------


class _Cursor:
    """The words after a directive, taken one at a time; errors name the directive's file and line."""

    def __init__(self, name: str, where: Location, words: tuple[Token, ...]) -> None:
        self.name = name
        self.where = where
        self._words = words
        self._next = 0

    def __bool__(self) -> bool:
        return self._next < len(self._words)

    def peek(self) -> Token | None:
        return self._words[self._next] if self else None

    def take(self, missing: str) -> Token:
        """The next word; ``missing`` says what was expected if there is none."""
        if not self:
            self.fail(missing)
        word = self._words[self._next]
        self._next += 1
        return word

    def keyword(self) -> str:
        """The next word as an option keyword (a quoted word never is one)."""
        word = self.take("missing option")
        return f'"{word.text}"' if word.quoted else word.text

    def value(self, option: str) -> Token:
        """The value word after ``option``."""
        return self.take(f"{self.name} option '{option}' needs a value")

    def end(self) -> None:
        """Refuse words left over."""
        extra = self.peek()
        if extra is not None:
            self.fail(f"unexpected '{extra.text}' after {self.name}")

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(message, self.where)


def _line_number(item: Line | ConfigError) -> int:
    """Where a lexed line or a lexer's error is in its file."""
    if isinstance(item, ConfigError):
        return item.location.line if item.location is not None else 0
    return item.number


def _unknown(kind: str, word: str, known: Iterable[str]) -> str:
    """'unknown KIND 'WORD'', with a suggestion when one is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{word}'{hint}"


def _int(c: _Cursor, tok: Token, what: str, lo: int, hi: int) -> int:
    """A whole number in ``lo..hi`` (decimal digits, optional sign)."""
    if not _INT.fullmatch(tok.text):
        c.fail(f"{what} needs a whole number, not '{tok.text}'")
    value = int(tok.text)
    if not lo <= value <= hi:
        c.fail(f"{what} {value} is out of range ({lo}..{hi})")
    return value


def _seconds_ns(c: _Cursor, tok: Token, what: str, limit_s: int = MAX_OFFSET_S) -> int:
    """A time in decimal seconds (``0.0042``, ``-1e-3``) as int ns, exactly, rounded half-even at 1 ns.

    At most ``limit_s`` either way.
    """
    if not _DECIMAL.fullmatch(tok.text):
        c.fail(f"{what} needs a time in seconds, not '{tok.text}'")
    value = Fraction(tok.text)
    if abs(value) > limit_s:
        c.fail(f"{what} {tok.text} s is out of range (at most {limit_s} s either way)")
    return round(value * NS_PER_S)


def _refclock_offset_ns(c: _Cursor, tok: Token, what: str) -> int:
    """A reference clock's ``time1``/``time2`` (s) as ns, within :data:`MAX_REFCLOCK_OFFSET_S`."""
    return _seconds_ns(c, tok, what, MAX_REFCLOCK_OFFSET_S)


def _refclock_time2_ns(c: _Cursor, tok: Token, driver: str) -> int:
    """``time2`` (s) as ns: an offset within :data:`MAX_REFCLOCK_OFFSET_S`, but for the shm driver the
    largest offset believed (ntpd's 1 to 86400 s; refclock/setup.py warns about a value ntpd ignores)."""
    if driver == "shm":
        return _seconds_ns(c, tok, "time2", MAX_SHM_TIME2_S)
    return _refclock_offset_ns(c, tok, "time2")


def _stratum(c: _Cursor, tok: Token, what: str = "stratum", *, served: bool = True) -> int:
    """A stratum a line gives. ``served``: the local clock's, served as it is, in :data:`STRATUM_RANGE`
    (0 would read as a Kiss-o'-Death); otherwise a reference clock's own, 0 to 15 (ntpd's and NTPsec's
    range, default 0: the appliance serves one more)."""
    lo, hi = STRATUM_RANGE if served else REFCLOCK_STRATUM_RANGE
    if _INT.fullmatch(tok.text) and not lo <= int(tok.text) <= hi:
        why = (
            "0 marks a Kiss-o'-Death and 16 unsynchronised, so clients would discard every reply"
            if served
            else "a reference clock's own stratum, served one higher (16 means unsynchronised)"
        )
        c.fail(f"{what} {int(tok.text)} is out of range ({lo}..{hi}): {why}")
    return _int(c, tok, what, lo, hi)


def _flag_value(c: _Cursor, tok: Token, what: str) -> bool:
    if tok.text not in ("0", "1"):
        c.fail(f"{what} needs 0 or 1, not '{tok.text}'")
    return tok.text == "1"


def _refid(c: _Cursor, tok: Token) -> str:
    text = tok.text
    if not 1 <= len(text) <= 4 or not all("!" <= ch <= "~" for ch in text):
        c.fail(f"refid needs 1 to 4 printable ASCII characters, not '{text}'")
    return text


def _path(c: _Cursor, tok: Token, what: str) -> str:
    if not tok.text:
        c.fail(f"{what} needs a non-empty path")
    return tok.text


def _family_option(c: _Cursor) -> int | None:
    """Consume a leading ``-4`` or ``-6``."""
    word = c.peek()
    if word is not None and not word.quoted and word.text in ("-4", "-6"):
        c.take("")
        return int(word.text[1])
    return None


def _refclock_type(c: _Cursor, tok: Token) -> tuple[int, int] | None:
    """``(type, unit)`` when ``tok`` is a 127.127.t.u pseudo-address, else None; unsupported types fail."""
    m = _REFCLOCK_ADDRESS.fullmatch(tok.text)
    if m is None:
        return None
    t, u = int(m.group(1)), int(m.group(2))
    if t > 255 or u > 255:
        c.fail(f"'{tok.text}' is not a valid reference clock address (127.127.TYPE.UNIT, 0..255 each)")
    if t not in REFCLOCK_TYPES:
        known = ", ".join(f"{n} ({name})" for n, name in sorted(REFCLOCK_TYPES.items()))
        c.fail(f"reference clock type {t} ({tok.text}) is not supported; stratum1 knows types {known}")
    return t, u


# -- the configuration being built --------------------------------------------


class _Builder:
    """Collects what the lines of one parse say; :meth:`finish` freezes it into a Config."""

    def __init__(self, loader: IncludeLoader | None) -> None:
        self.loader = loader
        self.servers: list[ServerLine] = []
        self.restricts: list[RestrictRule] = []
        self.fudges: dict[str, Fudge] = {}
        self.refclocks: list[Refclock] = []
        self.discard = Discard()
        self.paths: dict[str, str | None] = {}
        self.paths_at: dict[str, Location] = {}
        self.filegens: dict[str, Filegen] = {}
        self.listen: list[Listen] = []
        self.localclock = LocalClockOptions()
        self.holdover_ns: int | None = None
        self.keys: dict[int, Key] = {}
        self.keys_file: str | None = None
        self.trusted: set[int] = set()
        self.trusted_at: dict[int, Location] = {}
        self.warnings: list[ConfigWarning] = []
        #: the lines that cannot be used, in the order read (an include's where its includefile line is)
        self.errors: list[ConfigError] = []
        #: (driver name, unit) -> where that reference clock was configured
        self.clocks: dict[tuple[str, int], Location] = {}

    def warn(self, where: Location, message: str) -> None:
        self.warnings.append(ConfigWarning(where, message))

    def feed(self, text: str, filename: str, stack: tuple[str, ...]) -> None:
        """Parse one file's text; ``stack`` holds the (normalised) files that include it."""
        stack = (*stack, os.path.normpath(filename))
        unreadable: list[ConfigError] = []  # lines the lexer could not split into words
        lines = tokenize(text, filename, unreadable)
        items: list[Line | ConfigError] = [*lines, *unreadable]
        for item in sorted(items, key=_line_number):
            if isinstance(item, ConfigError):
                self.errors.append(item)
                continue
            try:
                self.line(item, filename, stack)
            except ConfigError as e:
                self.errors += [e, *e.more]  # and on to the next line: every bad line is reported at once
                e.more = ()

    def line(self, line: Line, filename: str, stack: tuple[str, ...]) -> None:
        """Parse one line into the builder, or raise its ConfigError."""
        head, words = line.tokens[0], line.tokens[1:]
        where = Location(filename, line.number)
        if head.quoted:
            raise ConfigError(f'a line must start with a directive, not the quoted string "{head.text}"', where)
        c = _Cursor(head.text, where, words)
        if head.text == "includefile":
            self.include(c, filename, stack)
        elif head.text in _HANDLERS:
            _HANDLERS[head.text](self, c)
        elif head.text in _IGNORED_DIRECTIVES:
            self.warn(where, f"'{head.text}' is not supported, ignored")
        elif head.text in _REFUSED_DIRECTIVES:
            c.fail(_REFUSED_DIRECTIVES[head.text])
        else:
            c.fail(_unknown("directive", head.text, _KNOWN_DIRECTIVES))

    def include(self, c: _Cursor, including: str, stack: tuple[str, ...]) -> None:
        """``includefile PATH``: parse that file here, relative to the including file's directory."""
        name = _path(c, c.take("includefile needs a file name"), "includefile")
        c.end()
        path = os.path.join(os.path.dirname(including), name)
        if os.path.normpath(path) in stack:
            c.fail(f"include loop: '{path}' is already being read")
        if len(stack) > MAX_INCLUDE_DEPTH:
            c.fail(f"includefile '{path}': includes nest deeper than {MAX_INCLUDE_DEPTH} levels")
        if self.loader is None:
            c.fail(f"includefile '{path}': cannot include files when parsing text that is not a file")
        self.feed(self.read(c, path, "include file"), path, stack)

    def read(self, c: _Cursor, path: str, what: str) -> str:
        """The text of the file at ``path`` (an ``include file``, a ``key file``), or the line's error."""
        assert self.loader is not None
        try:
            text = self.loader(path)
        except OSError as e:
            c.fail(f"cannot read {what} '{path}': {e.strerror or e}")
        except UnicodeDecodeError as e:
            c.fail(f"{what} '{path}' is not UTF-8 text (byte {e.start})")
        if what != "include file":  # (an include's lines go through the lexer, which names the line)
            bad = next((i for i, ch in enumerate(text) if 0xDC80 <= ord(ch) <= 0xDCFF), None)
            if bad is not None:
                line = text.count("\n", 0, bad) + 1
                c.fail(f"{what} '{path}' line {line}: byte 0x{ord(text[bad]) - 0xDC00:02X} is not UTF-8")
        return text

    def claim_clock(self, c: _Cursor, driver: str, unit: int) -> None:
        """Record a reference clock; configuring the same driver and unit twice is an error."""
        first = self.clocks.get((driver, unit))
        if first is not None:
            c.fail(f"reference clock {driver} unit {unit} is already configured at {first}")
        self.clocks[(driver, unit)] = c.where

    def read_keys(self, c: _Cursor, name: str) -> None:
        """``keys PATH``: read the key file now (relative to the including file's directory)."""
        path = os.path.join(os.path.dirname(c.where.file), name)
        if self.loader is None:
            c.fail(f"keys '{path}': cannot read a key file when parsing text that is not a file")
        text = self.read(c, path, "key file")
        try:
            self.keys = parse_keys(text, path)
        except KeyFileError as e:
            errors = [ConfigError(k.message, Location(k.path, k.line)) for k in (e, *e.others)]
            raise ConfigError.of(errors) from None
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0  # read through a loader that is not the file system (tests)
        if mode & 0o004:
            self.warn(
                c.where,
                f"key file '{path}' is readable by every user (mode {mode:04o}): its keys are secrets; "
                f"chown root:stratum1 '{path}' && chmod 640 '{path}'",
            )
        self.keys_file = path

    def check_keys(self) -> None:
        """Every ``key N`` of a server is a trusted key of the key file; trusted numbers it lacks are warned."""
        for s in self.servers:
            if s.key is None or s.refclock is not None:
                continue
            if self.keys_file is None:
                why = f"{s.kind} {s.host}: key {s.key}, but no 'keys' file is configured"
            elif s.key not in self.keys:
                why = f"{s.kind} {s.host}: key {s.key} is not in the key file {self.keys_file}"
            elif s.key not in self.trusted:
                why = f"{s.kind} {s.host}: key {s.key} is not trusted (add it to a 'trustedkey' line)"
            else:
                continue
            self.errors.append(ConfigError(why, s.location))
        for keyid in sorted(self.trusted - self.keys.keys()):
            where = self.trusted_at[keyid]
            if self.keys_file is None:
                self.warn(where, f"trustedkey {keyid}: no 'keys' file is configured, so no key {keyid} exists")
            else:
                self.warn(where, f"trustedkey {keyid}: the key file {self.keys_file} has no key {keyid}")
        for r in self.restricts:
            if "notrust" in r.flags and not self.trusted & self.keys.keys():
                self.warn(r.location, "restrict flag 'notrust' with no trusted key: matching clients get no time")

    def finish(self, filename: str) -> Config:
        self.check_fudges()
        self.check_localclock()
        self.check_keys()
        if self.errors:
            raise ConfigError.of(self.errors)  # the servers' key errors, in the order the lines were read
        return Config(
            path=filename,
            servers=tuple(self.servers),
            restricts=tuple(self.restricts),
            fudges=tuple(self.fudges.values()),
            refclocks=tuple(self.fudged(r) for r in self.refclocks),
            discard=self.discard,
            driftfile=self.paths.get("driftfile"),
            leapfile=self.paths.get("leapfile"),
            logfile=self.paths.get("logfile"),
            statsdir=self.paths.get("statsdir"),
            filegens=tuple(self.filegens.values()),
            listen=tuple(self.listen),
            localclock=self.localclock,
            holdover_ns=self.holdover_ns,
            keys=KeyRing(MappingProxyType(dict(self.keys)), frozenset(self.trusted)),
            keys_file=self.keys_file,
            paths_at=tuple(self.paths_at.items()),
            warnings=tuple(self.warnings),
        )

    def fudged(self, clock: Refclock) -> Refclock:
        """A ``refclock`` line with the ``fudge 127.127.t.u`` for the same clock applied, as NTPsec does.

        ntpd applies fudges after all clocks are configured, so a fudge's
        values win over the refclock line's own.
        """
        t = next(n for n, name in REFCLOCK_TYPES.items() if name == clock.driver)
        f = self.fudges.get(f"127.127.{t}.{clock.unit}")
        if f is None:
            return clock
        return replace(
            clock,
            stratum=clock.stratum if f.stratum is None else f.stratum,
            refid=clock.refid if f.refid is None else f.refid,
            time1_ns=clock.time1_ns if f.time1_ns is None else f.time1_ns,
            time2_ns=clock.time2_ns if f.time2_ns is None else f.time2_ns,
            options=clock.options + tuple((f"flag{n}", "1" if on else "0") for n, on in f.flags),
        )

    def check_fudges(self) -> None:
        """Warn about fudges for clocks that no ``server`` or ``refclock`` line configures."""
        for host, fudge in self.fudges.items():
            t, u = (int(p) for p in host.split(".")[2:])
            if (REFCLOCK_TYPES[t], u) not in self.clocks:
                self.warn(fudge.location, f"fudge for {host}, but no 'server {host}' line: it has no effect")

    def check_localclock(self) -> None:
        """Warn about a ``localclock`` line when no local clock is configured: it has no effect."""
        where = self.localclock.location
        if where is not None and not any(driver == "local" for driver, _ in self.clocks):
            self.warn(where, "localclock, but no local clock ('server 127.127.1.0'): it has no effect")


# -- server, pool, peer ---------------------------------------------------------

_SERVER_FLAGS = frozenset({"iburst", "burst", "prefer", "noselect", "true"})
_SERVER_INTS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "minpoll": (3, 17),
        "maxpoll": (3, 17),
        "version": (1, 4),
        "key": (1, 65535),
        "mode": (0, _UINT32_MAX),
        "port": (1, 65535),
    }
)
#: Options ntpd or NTPsec accept that stratum1 does not act on: the reason, for the warning.
_SERVER_IGNORED_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "preempt": "is not supported, ignored",
        "xleave": "(interleaved mode towards this server) is not supported, ignored (clients that ask the appliance "
        "in interleaved mode are answered in it)",
        "autokey": "(Autokey authentication) is not supported, ignored",
        "xmtnonce": "is not supported, ignored",
        "nts": "is not supported: this server is used without NTS",
        "noval": "(NTS) is not supported, ignored",
    }
)
_SERVER_IGNORED_VALUES: Mapping[str, str] = MappingProxyType(
    {
        "ttl": "is not supported, ignored",
        "bias": "is not supported, ignored",
        "ask": "(NTS) is not supported, ignored",
        "require": "(NTS) is not supported, ignored",
        "expire": "(NTS) is not supported, ignored",
        "cert": "(NTS) is not supported, ignored",
        "ca": "(NTS) is not supported, ignored",
        "aead": "(NTS) is not supported, ignored",
    }
)
#: Server options that only a network server's exchange uses (no effect on a 127.127.t.u reference clock).
_NETWORK_ONLY_FLAGS = frozenset({"iburst", "burst"})
_NETWORK_ONLY_NUMBERS = frozenset({"version", "key", "port"})
_SERVER_OPTIONS = _SERVER_FLAGS | _SERVER_INTS.keys() | _SERVER_IGNORED_FLAGS.keys() | _SERVER_IGNORED_VALUES.keys()


def _server(b: _Builder, c: _Cursor) -> None:
    """``server|pool|peer [-4|-6] HOST [options]`` (ntp.conf(5), "Configuration Commands")."""
    family = _family_option(c)
    host_tok = c.take(f"{c.name} needs a host name or address")
    if host_tok.text in _SERVER_OPTIONS and not host_tok.quoted:
        c.fail(f"{c.name} needs a host name or address before its options ('{host_tok.text}' is an option)")
    clock = _refclock_type(c, host_tok)
    if clock is not None and c.name != "server":
        c.fail(f"a reference clock ({host_tok.text}) needs 'server', not '{c.name}'")
    host = f"127.127.{clock[0]}.{clock[1]}" if clock else _network_host(c, host_tok, family)
    flags, numbers = _server_options(b, c)
    if "mode" in numbers and clock is None:
        b.warn(c.where, f"{c.name} option 'mode' applies only to reference clocks (127.127.t.u), ignored")
        del numbers["mode"]
    if clock is not None:  # what only an NTP exchange uses has no effect on a reference clock
        said = [f"-{family}"] if family is not None else []
        said += sorted(flags & _NETWORK_ONLY_FLAGS) + sorted(numbers.keys() & _NETWORK_ONLY_NUMBERS)
        for opt in said:
            b.warn(
                c.where, f"server {host} option '{opt}' applies only to network servers, not a reference clock, ignored"
            )
        flags -= _NETWORK_ONLY_FLAGS
        numbers = {k: v for k, v in numbers.items() if k not in _NETWORK_ONLY_NUMBERS}
        family = None
    lo, hi = numbers.get("minpoll"), numbers.get("maxpoll")
    if lo is not None and hi is not None and lo > hi:
        c.fail(f"minpoll {lo} is greater than maxpoll {hi}")
    line = ServerLine(
        c.name,
        host,
        c.where,
        iburst="iburst" in flags,
        burst="burst" in flags,
        prefer="prefer" in flags,
        noselect="noselect" in flags,
        true="true" in flags,
        minpoll=lo,
        maxpoll=hi,
        version=numbers.get("version"),
        key=numbers.get("key"),
        mode=numbers.get("mode"),
        port=numbers.get("port"),
        family=family,
    )
    if clock is not None:
        b.claim_clock(c, REFCLOCK_TYPES[clock[0]], clock[1])
    for other in b.servers:
        if other.kind == line.kind and other.host == line.host:
            b.warn(c.where, f"duplicate {c.name} line for '{host}' (first at {other.location}), ignored")
            return
    b.servers.append(line)


def _network_host(c: _Cursor, tok: Token, family: int | None) -> str:
    """Check a server's host: a name, an IPv4 or an IPv6 address (its family must agree with -4/-6)."""
    text = tok.text
    if ":" in text or re.fullmatch(r"[0-9.]+", text):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            c.fail(f"'{text}' is not a valid IP address")
        if family is not None and address.version != family:
            c.fail(f"-{family} given with the IPv{address.version} address '{text}'")
        return text
    if not _HOST_NAME.fullmatch(text):
        c.fail(f"'{text}' is not a host name or address")
    return text


def _server_options(b: _Builder, c: _Cursor) -> tuple[set[str], dict[str, int]]:
    """The flags and numeric options after a server's host (a repeated number: the last wins, as in ntpd)."""
    flags: set[str] = set()
    numbers: dict[str, int] = {}
    while c:
        opt = c.keyword()
        if opt in _SERVER_FLAGS:
            flags.add(opt)
            if opt == "true":
                b.warn(c.where, f"{c.name} option 'true' is not supported: the source is selected like any other")
        elif opt in _SERVER_INTS:
            lo, hi = _SERVER_INTS[opt]
            numbers[opt] = _int(c, c.value(opt), opt, lo, hi)
        elif opt in _SERVER_IGNORED_FLAGS:
            b.warn(c.where, f"{c.name} option '{opt}' {_SERVER_IGNORED_FLAGS[opt]}")
        elif opt == "ttl":
            _int(c, c.value(opt), opt, 0, 255)
            b.warn(c.where, f"{c.name} option 'ttl' {_SERVER_IGNORED_VALUES[opt]}")
        elif opt == "bias":
            _seconds_ns(c, c.value(opt), opt)
            b.warn(c.where, f"{c.name} option 'bias' {_SERVER_IGNORED_VALUES[opt]}")
        elif opt in _SERVER_IGNORED_VALUES:
            c.value(opt)
            b.warn(c.where, f"{c.name} option '{opt}' {_SERVER_IGNORED_VALUES[opt]}")
        else:
            c.fail(_unknown(f"{c.name} option", opt, _SERVER_OPTIONS))
    return flags, numbers


# -- fudge and refclock ---------------------------------------------------------

_FUDGE_OPTIONS = frozenset({"time1", "time2", "stratum", "refid", "flag1", "flag2", "flag3", "flag4", "minjitter"})


def _fudge(b: _Builder, c: _Cursor) -> None:
    """``fudge 127.127.t.u [time1 S] [time2 S] [stratum N] [refid T] [flag1..flag4 0|1]`` (ntp_clock(5))."""
    tok = c.take("fudge needs a reference clock address (127.127.TYPE.UNIT)")
    clock = _refclock_type(c, tok)
    if clock is None:
        c.fail(f"fudge needs a reference clock address (127.127.TYPE.UNIT); '{tok.text}' is not one")
    host = f"127.127.{clock[0]}.{clock[1]}"
    if not c:
        c.fail(f"fudge {tok.text} needs at least one option ({', '.join(sorted(_FUDGE_OPTIONS))})")
    fudge = b.fudges.get(host, Fudge(host, c.where))
    flags = dict(fudge.flags)
    while c:
        opt = c.keyword()
        if opt == "time1":
            fudge = replace(fudge, time1_ns=_refclock_offset_ns(c, c.value(opt), opt))
        elif opt == "time2":
            fudge = replace(fudge, time2_ns=_refclock_time2_ns(c, c.value(opt), REFCLOCK_TYPES[clock[0]]))
        elif opt == "stratum":
            fudge = replace(fudge, stratum=_stratum(c, c.value(opt), served=REFCLOCK_TYPES[clock[0]] == "local"))
        elif opt == "refid":
            fudge = replace(fudge, refid=_refid(c, c.value(opt)))
        elif opt in ("flag1", "flag2", "flag3", "flag4"):
            flags[int(opt[-1])] = _flag_value(c, c.value(opt), opt)
        elif opt == "minjitter":
            _refclock_offset_ns(c, c.value(opt), opt)
            b.warn(c.where, "fudge option 'minjitter' is not supported, ignored")
        else:
            c.fail(_unknown("fudge option", opt, _FUDGE_OPTIONS))
    b.fudges[host] = replace(fudge, flags=tuple(sorted(flags.items())))


_REFCLOCK_FLAGS = frozenset({"prefer", "noselect"})
_REFCLOCK_INTS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "minpoll": (0, 17),
        "maxpoll": (0, 17),
        "stratum": REFCLOCK_STRATUM_RANGE,
        "subtype": (0, 255),
        "mode": (0, _UINT32_MAX),
    }
)
_REFCLOCK_OPTIONS = (
    _REFCLOCK_FLAGS
    | _REFCLOCK_INTS.keys()
    | {"unit", "path", "ppspath", "baud", "time1", "time2", "refid", "flag1", "flag2", "flag3", "flag4"}
)


def _refclock(b: _Builder, c: _Cursor) -> None:
    """NTPsec's ``refclock NAME [unit N] [options]`` (NTPsec ntp.conf(5), "Reference Clock Support")."""
    drivers = sorted(set(REFCLOCK_TYPES.values()))
    tok = c.take(f"refclock needs a driver name ({', '.join(drivers)})")
    if tok.text not in drivers:
        c.fail(_unknown("refclock driver", tok.text, drivers) + f"; stratum1 knows {', '.join(drivers)}")
    clock = Refclock(tok.text, 0, c.where)
    options: list[tuple[str, str]] = []
    while c:
        opt = c.keyword()
        if opt == "prefer":
            clock = replace(clock, prefer=True)
            continue
        if opt == "noselect":
            clock = replace(clock, noselect=True)
            continue
        if opt not in _REFCLOCK_OPTIONS:
            c.fail(_unknown("refclock option", opt, _REFCLOCK_OPTIONS))
        value = c.value(opt)
        clock = _refclock_option(c, clock, opt, value)
        if opt != "unit":
            options.append((opt, value.text))
    lo, hi = clock.minpoll, clock.maxpoll
    if lo is not None and hi is not None and lo > hi:
        c.fail(f"minpoll {lo} is greater than maxpoll {hi}")
    b.claim_clock(c, clock.driver, clock.unit)
    b.refclocks.append(replace(clock, options=tuple(options)))


def _refclock_option(c: _Cursor, clock: Refclock, opt: str, value: Token) -> Refclock:
    """Check one ``refclock`` option's value; fill the model's field for it, if it has one."""
    if opt == "unit":
        return replace(clock, unit=_int(c, value, opt, 0, 255))
    if opt in _REFCLOCK_INTS:
        lo, hi = _REFCLOCK_INTS[opt]
        if opt == "stratum":
            number = _stratum(c, value, served=clock.driver == "local")
        else:
            number = _int(c, value, opt, lo, hi)
        if opt == "minpoll":
            return replace(clock, minpoll=number)
        if opt == "maxpoll":
            return replace(clock, maxpoll=number)
        return replace(clock, stratum=number) if opt == "stratum" else clock  # subtype, mode: options only
    if opt == "time1":
        return replace(clock, time1_ns=_refclock_offset_ns(c, value, opt))
    if opt == "time2":
        return replace(clock, time2_ns=_refclock_time2_ns(c, value, clock.driver))
    if opt == "refid":
        return replace(clock, refid=_refid(c, value))
    if opt in ("path", "ppspath"):
        _path(c, value, opt)
        pps = opt == "ppspath" or clock.driver == "pps"
        if pps and value.text.startswith("gpio:"):  # a GPIO line of the header (build.py, io/gpio.py)
            line = Token(value.text[5:], value.line, value.column + 5)
            _int(c, line, f"{opt} {value.text}: the GPIO line", 0, MAX_GPIO_LINE)
    elif opt == "baud":
        if value.text.lower() == "auto":
            return clock  # detect the rate (refclock/setup.py)
        if _int(c, value, opt, 1, 4_000_000) not in _BAUD_RATES:
            c.fail(f"baud {value.text} is not a serial port speed")
    else:  # flag1..flag4
        _flag_value(c, value, opt)
    return clock


# -- restrict -------------------------------------------------------------------

#: restrict flags ntpd or NTPsec know that stratum1 does not act on: how many value words follow.
_RESTRICT_IGNORED: Mapping[str, int] = MappingProxyType({"ippeerlimit": 1, "mssntp": 0, "epeer": 0, "flake": 0})
_RESTRICT_WORDS = RESTRICT_FLAGS | _RESTRICT_IGNORED.keys() | {"serverresponse"}


def _restrict(b: _Builder, c: _Cursor) -> None:
    """``restrict [-4|-6] (default | source | ADDRESS [mask MASK] | ADDRESS/PREFIX) [flag ...]`` (ntp_acc(5))."""
    family = _family_option(c)
    tok = c.take("restrict needs an address, 'default' or 'source'")
    network: IPNetwork | None = None
    source = False
    if tok.text == "default" and not tok.quoted:
        pass
    elif tok.text == "source" and not tok.quoted:
        if family is not None:
            c.fail(f"-{family} cannot be used with 'restrict source'")
        source = True
    else:
        network = _restrict_network(c, tok, family)
        family = network.version
    _no_mask_here(c, tok)
    flags = _restrict_flags(b, c)
    b.restricts.append(RestrictRule(network, family, flags, c.where, source=source))


def _no_mask_here(c: _Cursor, after: Token) -> None:
    word = c.peek()
    if word is not None and word.text == "mask" and not word.quoted:
        c.fail(f"'mask' cannot follow '{after.text}'")


def _restrict_network(c: _Cursor, tok: Token, family: int | None) -> IPNetwork:
    """The network of ``ADDRESS [mask MASK]`` or ``ADDRESS/PREFIX``; host bits under the mask are cleared."""
    text, _, prefix_text = tok.text.partition("/")
    address = _restrict_address(c, text)
    width = address.max_prefixlen
    if prefix_text or "/" in tok.text:
        prefix = _int(c, Token(prefix_text, tok.line, tok.column), f"prefix length of '{tok.text}'", 0, width)
        _no_mask_here(c, tok)
    else:
        prefix = width
        word = c.peek()
        if word is not None and word.text == "mask" and not word.quoted:
            c.take("")
            prefix = _mask_prefix(c, c.take("'mask' needs a netmask"), address.version)
    if family is not None and address.version != family:
        c.fail(f"-{family} given with the IPv{address.version} address '{text}'")
    return ipaddress.ip_network((address, prefix), strict=False)


def _restrict_address(c: _Cursor, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if _HOST_NAME.fullmatch(text) and re.search(r"[A-Za-z_-]", text):
            c.fail(f"restrict needs a numeric address; '{text}' is a host name")
        c.fail(f"restrict needs a numeric address; '{text}' is not an IPv4 or IPv6 address")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        c.fail(f"restrict cannot take a scoped address ('{text}')")
    return address


def _mask_prefix(c: _Cursor, tok: Token, version: int) -> int:
    """The prefix length of a contiguous netmask (``255.255.255.0`` -> 24) of the address's family."""
    try:
        mask = ipaddress.ip_address(tok.text)
    except ValueError:
        c.fail(f"mask '{tok.text}' is not a netmask")
    if mask.version != version:
        c.fail(f"mask '{tok.text}' is IPv{mask.version} but the address is IPv{version}")
    value, width = int(mask), mask.max_prefixlen
    inverse = ~value & ((1 << width) - 1)
    if inverse & (inverse + 1):
        c.fail(f"mask '{tok.text}' is not a valid netmask (its one bits must be contiguous from the left)")
    return width - inverse.bit_length()


def _restrict_flags(b: _Builder, c: _Cursor) -> frozenset[str]:
    flags: set[str] = set()
    while c:
        word = c.keyword()
        if word in RESTRICT_FLAGS:
            flags.add(word)
        elif word == "ippeerlimit":
            _int(c, c.value(word), word, -1, 65535)
            b.warn(c.where, "restrict flag 'ippeerlimit' is not supported, ignored")
        elif word == "serverresponse":
            fuzz = c.take("restrict flag 'serverresponse' needs 'fuzz'")
            if fuzz.text != "fuzz":
                c.fail(f"restrict flag 'serverresponse' needs 'fuzz', not '{fuzz.text}'")
            b.warn(c.where, "restrict flag 'serverresponse fuzz' is not supported, ignored")
        elif word in _RESTRICT_IGNORED:
            b.warn(c.where, f"restrict flag '{word}' is not supported, ignored")
        else:
            c.fail(_unknown("restrict flag", word, _RESTRICT_WORDS))
    return frozenset(flags)


# -- discard, files, interface ------------------------------------------------

#: discard options -> (Discard field, lowest, highest)
_DISCARD_OPTIONS: Mapping[str, tuple[str, int, int]] = MappingProxyType(
    {
        "average": ("average_log2", 0, 16),
        "minimum": ("minimum_s", 0, 3600),
        "monitor": ("monitor", 0, 2**31 - 1),
        "burst": ("burst", 1, 256),
    }
)


def _discard(b: _Builder, c: _Cursor) -> None:
    """``discard [average LOG2S] [minimum S] [monitor N] [burst N]`` (ntp_acc(5); ``burst`` is stratum1's)."""
    if not c:
        c.fail(f"discard needs at least one option ({', '.join(_DISCARD_OPTIONS)})")
    while c:
        opt = c.keyword()
        if opt not in _DISCARD_OPTIONS:
            c.fail(_unknown("discard option", opt, _DISCARD_OPTIONS))
        name, lo, hi = _DISCARD_OPTIONS[opt]
        b.discard = replace(b.discard, **{name: _int(c, c.value(opt), opt, lo, hi)})
        if opt == "monitor":
            b.warn(c.where, "discard option 'monitor' (ntpd's MRU discard probability) has no meaning here, ignored")


def _keys(b: _Builder, c: _Cursor) -> None:
    """``keys PATH``: the symmetric key file (ntp.keys(5)), read with the configuration; the last line wins."""
    name = _path(c, c.take("keys needs a file name"), "keys")
    c.end()
    b.read_keys(c, name)


def _trustedkey(b: _Builder, c: _Cursor) -> None:
    """``trustedkey N [N ...]``, NTPsec's ranges ``(first ... last)`` too: the keys that may authenticate."""
    words = [c.take("trustedkey needs a key number").text]
    while c:
        words.append(c.take("").text)
    try:
        numbers = parse_trusted(words)
    except ValueError as e:
        c.fail(f"trustedkey: {e}")
    for n in numbers:
        b.trusted_at.setdefault(n, c.where)
    b.trusted |= numbers


def _file_directive(b: _Builder, c: _Cursor) -> None:
    """``leapfile PATH``, ``logfile PATH``, ``statsdir PATH``: one path each, the last line wins."""
    b.paths[c.name] = _path(c, c.take(f"{c.name} needs a path"), c.name)
    b.paths_at[c.name] = c.where
    if c.name in _NOT_WRITTEN_YET:
        b.warn(c.where, f"'{c.name}' {_NOT_WRITTEN_YET[c.name]}, ignored")
    c.end()


#: Files ntpd writes that stratum1 does not write yet: why, for the warning.
_NOT_WRITTEN_YET: Mapping[str, str] = MappingProxyType(
    {
        "logfile": "is not written: the daemon logs to standard error (the journal under systemd)",
    }
)


def _stats_name(b: _Builder, c: _Cursor) -> str | None:
    """A statistics file set's name: one stratum1 writes, or None (with a warning) for one of ntpd's others."""
    tok = c.take(f"{c.name} needs a statistics name ({', '.join(STATS_FILES)})")
    if tok.text in STATS_FILES:
        return tok.text
    if tok.text in _OTHER_STATS:
        b.warn(c.where, f"{c.name} '{tok.text}' is not written by stratum1 (only {', '.join(STATS_FILES)}), ignored")
        return None
    c.fail(_unknown("statistics name", tok.text, STATS_FILES + _OTHER_STATS))


def _statistics(b: _Builder, c: _Cursor) -> None:
    """``statistics NAME...``: write these files (in ``statsdir``), daily, as ntpd does."""
    if not c:
        c.fail(f"statistics needs at least one name ({', '.join(STATS_FILES)})")
    while c:
        name = _stats_name(b, c)
        if name is not None:
            b.filegens[name] = replace(b.filegens.get(name, Filegen(name, name)), enabled=True)


def _filegen(b: _Builder, c: _Cursor) -> None:
    """``filegen NAME [file F] [type day|none] [link|nolink] [enable|disable]``."""
    name = _stats_name(b, c)
    # a filegen line alone does not switch the file on (ntpd): 'enable' or a statistics line does
    g = b.filegens.get(name or "", Filegen(name or "", name or "", enabled=False))
    while c:
        opt = c.keyword()
        if opt == "file":
            g = replace(g, file=_path(c, c.value(opt), "filegen file"))
            if "/" in g.file:
                c.fail("filegen file is a name inside statsdir, not a path")
        elif opt == "type":
            kind = c.value(opt).text
            if kind in ("day", "none"):
                g = replace(g, type=kind)
            elif kind in ("pid", "week", "month", "year", "age"):
                b.warn(c.where, f"filegen type '{kind}' is not supported, daily files are written")
                g = replace(g, type="day")
            else:
                c.fail(_unknown("filegen type", kind, ("day", "none", "week", "month", "year", "age", "pid")))
        elif opt in ("link", "nolink"):
            g = replace(g, link=opt == "link")
        elif opt in ("enable", "disable"):
            g = replace(g, enabled=opt == "enable")
        else:
            c.fail(_unknown("filegen option", opt, ("file", "type", "link", "nolink", "enable", "disable")))
    if name is not None:
        b.filegens[name] = g


_OTHER_STATS = ("rawstats", "sysstats", "protostats", "timingstats", "cryptostats", "usestats")


def _driftfile(b: _Builder, c: _Cursor) -> None:
    """``driftfile [PATH [WANDER]]``: a bare ``driftfile`` means none (as in ntpd)."""
    if not c:
        b.paths["driftfile"] = None
        return
    b.paths["driftfile"] = _path(c, c.take(""), "driftfile")
    if c:
        wander = c.take("")
        if not _DECIMAL.fullmatch(wander.text):
            c.fail(f"driftfile wander threshold needs a number, not '{wander.text}'")
        b.warn(c.where, "driftfile wander threshold is not supported, ignored")
    c.end()


_LOCALCLOCK_OPTIONS = {"public": LOCALCLOCK_PUBLIC, "start": LOCALCLOCK_START}


def _localclock(b: _Builder, c: _Cursor) -> None:
    """``localclock public unsync|serve start wait|serve`` (stratum1's): who gets the free-running local
    clock, and whether it waits for another source's first synchronisation.

    See :class:`~appliance.config.model.LocalClockOptions`. For each option a later line wins.
    """
    if not c:
        c.fail("localclock needs an option: 'public unsync|serve' or 'start wait|serve'")
    options = b.localclock
    while c:
        opt = c.keyword()
        if opt not in _LOCALCLOCK_OPTIONS:
            c.fail(_unknown("localclock option", opt, tuple(_LOCALCLOCK_OPTIONS)))
        value = c.value(opt)
        allowed = _LOCALCLOCK_OPTIONS[opt]
        if value.text not in allowed:
            c.fail(f"localclock {opt} needs {' or '.join(allowed)}, not '{value.text}'")
        options = replace(options, location=c.where, **{opt: value.text})
    b.localclock = options


def _holdover(b: _Builder, c: _Cursor) -> None:
    """``holdover SECONDS`` (stratum1's): keep serving stratum 1 after the GPS is lost while the clock's
    estimated error stays under this bound (default 0.001). A later line wins.
    """
    bound = _seconds_ns(
        c, c.take("holdover needs a bound in seconds, such as 'holdover 0.001'"), "holdover", MAX_HOLDOVER_S
    )
    c.end()
    if bound <= 0:
        c.fail("holdover needs a bound above 0 s ('holdover 0.001' is a millisecond)")
    b.holdover_ns = bound


#: ``tos`` options (ntp_misc(5)) whose value is a stratum; every other one takes a number.
_TOS_STRATA = frozenset({"orphan", "floor", "ceiling"})
_TOS_OPTIONS = _TOS_STRATA | {
    "beacon",
    "cohort",
    "maxclock",
    "maxdist",
    "minclock",
    "mindist",
    "minsane",
    "orphanwait",
    "bcpollbstep",
    "basedate",
}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _tos(b: _Builder, c: _Cursor) -> None:
    """``tos [option value] ...`` (ntp_misc(5)): checked (a stratum in 0..16, as ntpd), then ignored with a
    warning."""
    if not c:
        c.fail(f"tos needs an option ({', '.join(sorted(_TOS_OPTIONS))})")
    while c:
        opt = c.keyword()
        if opt not in _TOS_OPTIONS:
            c.fail(_unknown("tos option", opt, _TOS_OPTIONS))
        value = c.value(opt)
        if opt in _TOS_STRATA:
            _int(c, value, f"tos {opt}", *TOS_STRATUM_RANGE)
        elif opt == "basedate":
            if not _DATE.fullmatch(value.text) and not _INT.fullmatch(value.text):
                c.fail(f"tos basedate needs a date (YYYY-MM-DD) or a day number, not '{value.text}'")
        elif not _DECIMAL.fullmatch(value.text):
            c.fail(f"tos {opt} needs a number, not '{value.text}'")
    b.warn(c.where, "'tos' is not supported, ignored")


_INTERFACE_CLASSES = frozenset({"all", "ipv4", "ipv6", "wildcard"})


def _interface(b: _Builder, c: _Cursor) -> None:
    """``interface|nic (listen|ignore|drop) (all|ipv4|ipv6|wildcard|NAME|ADDRESS[/PREFIX])`` (ntp_misc(5))."""
    action = c.take(f"{c.name} needs listen, ignore or drop").text
    if action not in ("listen", "ignore", "drop"):
        c.fail(f"{c.name} needs listen, ignore or drop, not '{action}'")
    what = c.take(f"{c.name} {action} needs all, ipv4, ipv6, wildcard, an interface name or an address").text
    c.end()
    if what not in _INTERFACE_CLASSES and not _interface_address(what) and not _IFACE_NAME.fullmatch(what):
        c.fail(f"'{what}' is not all, ipv4, ipv6, wildcard, an interface name or an address")
    if action == "listen":
        b.listen.append(Listen(what, c.where))
    elif action == "ignore" and what == "wildcard":
        b.listen.append(Listen(what, c.where, action="ignore"))
    else:
        b.warn(c.where, f"'{c.name} {action}' is not supported, ignored")


def _interface_address(text: str) -> bool:
    if ":" not in text and not re.fullmatch(r"[0-9./]+", text):
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


# -- the directive tables -------------------------------------------------------

_HANDLERS: Mapping[str, Callable[[_Builder, _Cursor], None]] = MappingProxyType(
    {
        "server": _server,
        "pool": _server,
        "peer": _server,
        "fudge": _fudge,
        "refclock": _refclock,
        "restrict": _restrict,
        "discard": _discard,
        "driftfile": _driftfile,
        "leapfile": _file_directive,
        "logfile": _file_directive,
        "statsdir": _file_directive,
        "statistics": _statistics,
        "filegen": _filegen,
        "interface": _interface,
        "nic": _interface,
        "localclock": _localclock,
        "holdover": _holdover,
        "keys": _keys,
        "trustedkey": _trustedkey,
        "tos": _tos,
    }
)

#: ntpd and NTPsec directives that stratum1 accepts and ignores, with a warning.
_IGNORED_DIRECTIVES = frozenset(
    {
        # monitoring and logging
        "logconfig",
        "mru",
        "reset",
        # authentication and NTS
        "keysdir",
        "requestkey",
        "controlkey",
        "crypto",
        "revoke",
        "nts",
        "ntpsigndsocket",
        # system behaviour
        "enable",
        "disable",
        "tinker",
        "rlimit",
        "nonvolatile",
        "leapsmearinterval",
        "saveconfigdir",
        "setvar",
        "pidfile",
        "dscp",
        "qos",
        "extra",
        "pollskewlist",
        "mdnstries",
        "device",
        # broadcast, multicast, manycast, traps, modems
        "broadcast",
        "broadcastclient",
        "broadcastdelay",
        "multicastclient",
        "manycastserver",
        "manycastclient",
        "automax",
        "ttl",
        "trap",
        "phone",
        "calldelay",
        # run-time reconfiguration
        "unpeer",
        "unconfig",
    }
)

#: Directives refused with an explanation.
_REFUSED_DIRECTIVES: Mapping[str, str] = MappingProxyType(
    {
        "unrestrict": "unrestrict is not supported: edit or remove the restrict line instead",
        "simulate": "simulate (ntpd's network simulator) is not supported",
    }
)

_KNOWN_DIRECTIVES = _HANDLERS.keys() | _IGNORED_DIRECTIVES | _REFUSED_DIRECTIVES.keys() | {"includefile"}


@dataclass(frozen=True, slots=True)
class DirectiveSummary:
    """What :func:`directives` reports: the directive names by how stratum1 treats them."""

    parsed: frozenset[str]
    ignored: frozenset[str]
    refused: frozenset[str]


def directives() -> DirectiveSummary:
    """Every directive name the parser knows, by treatment (for docs and tests)."""
    return DirectiveSummary(
        parsed=frozenset(_HANDLERS.keys() | {"includefile"}),
        ignored=_IGNORED_DIRECTIVES,
        refused=frozenset(_REFUSED_DIRECTIVES),
    )
