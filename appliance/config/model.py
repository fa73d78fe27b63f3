"""The configuration model: what an ntp.conf means, as frozen values.

The parser (:mod:`appliance.config.parser`) builds a :class:`Config` from
ntp.conf text; everything else reads only this model. Each value keeps the
:class:`Location` it came from so later errors can still name file and line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from appliance.ntp.keys import KeyRing

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: restrict flags with ntpd's meaning that the server enforces.
RESTRICT_FLAGS = frozenset(
    {
        "ignore",  # drop every packet
        "noserve",  # drop time requests (mode 3, 1); mode 6 is still subject to noquery
        "noquery",  # drop mode 6 (ntpq) and mode 7 queries
        "nomodify",  # refuse mode 6 writes
        "notrap",  # refuse mode 6 trap service
        "nopeer",  # no symmetric (mode 1) associations
        "kod",  # send a Kiss-o'-Death instead of silence when rate limited
        "limited",  # apply the discard rate limits
        "nomrulist",  # refuse the mode 6 MRU list
        "version",  # drop packets whose version is not 4
        "notrust",  # serve only clients whose requests carry a MAC of a trusted key
        "noepeer",  # no ephemeral symmetric associations
        "ntpport",  # the rule matches only packets from source port 123
        "lowpriotrap",  # low priority traps (traps are not offered: accepted, no effect)
    }
)

#: The reference clock drivers stratum1 has: ntpd's driver type number (the
#: ``t`` of a ``127.127.t.u`` pseudo-address) -> NTPsec's driver name (the
#: ``NAME`` of ``refclock NAME``). Any other (ntpd's ``generic``, 8, among
#: them) is a file:line error that names these; ``appliance.refclock.driver.DRIVERS``
#: holds the same drivers with what the refclock layer needs of each.
REFCLOCK_TYPES: Mapping[int, str] = MappingProxyType(
    {
        1: "local",  # the undisciplined local clock (LOCAL)
        20: "nmea",  # NMEA GPS receiver (GPS_NMEA)
        22: "pps",  # a bare PPS signal (ATOM)
        28: "shm",  # shared memory, as gpsd writes it (SHM)
        46: "gpsd",  # gpsd's JSON protocol (GPSD_JSON)
    }
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a directive came from: file name and 1-based line number."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something the parser accepted but does not act on (unsupported directive or option)."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: warning: {self.message}"


@dataclass(frozen=True, slots=True)
class RestrictRule:
    """One ``restrict`` line.

    ``network`` is None for ``default``; ``family`` is 4 or 6, or None for a
    ``default`` that covers both (ntpd 4.2.6+ applies a bare ``default`` to
    IPv4 and IPv6). ``source`` is true for ``restrict source`` (applies to the
    addresses of configured servers).
    """

    network: IPNetwork | None
    family: int | None
    flags: frozenset[str]
    location: Location
    source: bool = False


@dataclass(frozen=True, slots=True)
class Discard:
    """``discard average A minimum M monitor P`` (ntpd's rate limits for ``limited``).

    ``average_log2`` is the log2 of the minimum mean interval in seconds (ntpd
    default 3: 8 s); ``minimum_s`` the minimum spacing in seconds (default 2);
    ``burst`` the number of requests a client may send back to back before
    the average applies (stratum1's addition, default 8: an ``iburst``).
    """

    average_log2: int = 3
    minimum_s: int = 2
    monitor: int = 3000
    burst: int = 8


@dataclass(frozen=True, slots=True)
class ServerLine:
    """A ``server``, ``pool`` or ``peer`` line (kind says which), with its options.

    ``host`` is as written (a name, an address, or a refclock pseudo-address
    such as ``127.127.1.0``). Refclock pseudo-addresses also fill ``mode``.
    ``family`` is 4 or 6 for ``server -4 HOST`` / ``server -6 HOST`` (resolve
    the name in that family only), else None.
    """

    kind: str
    host: str
    location: Location
    iburst: bool = False
    burst: bool = False
    prefer: bool = False
    noselect: bool = False
    true: bool = False
    minpoll: int | None = None
    maxpoll: int | None = None
    version: int | None = None
    key: int | None = None
    mode: int | None = None
    port: int | None = None
    family: int | None = None

    @property
    def refclock(self) -> tuple[int, int] | None:
        """``(driver type, unit)`` for a 127.127.t.u pseudo-address, else None."""
        parts = self.host.split(".")
        if len(parts) == 4 and parts[0] == "127" and parts[1] == "127" and all(p.isdigit() for p in parts):
            return int(parts[2]), int(parts[3])
        return None


@dataclass(frozen=True, slots=True)
class Fudge:
    """A ``fudge 127.127.t.u ...`` line: refclock adjustments (times in ns)."""

    host: str
    location: Location
    time1_ns: int | None = None
    time2_ns: int | None = None
    stratum: int | None = None
    refid: str | None = None
    flags: tuple[tuple[int, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class Refclock:
    """A reference clock in NTPsec's ``refclock NAME [unit N] [option ...]`` form or ours.

    ``driver`` is a name (``nmea``, ``pps``, ``local``, ``shm``...); options
    keep their values as written, with times converted to ns where known.
    """

    driver: str
    unit: int
    location: Location
    options: tuple[tuple[str, str], ...] = ()
    prefer: bool = False
    noselect: bool = False
    minpoll: int | None = None
    maxpoll: int | None = None
    stratum: int | None = None
    refid: str | None = None
    time1_ns: int | None = None
    time2_ns: int | None = None


#: The values of ``localclock public``: what clients admitted only by a ``default`` restrict entry get.
LOCALCLOCK_PUBLIC = ("unsync", "serve")
LOCALCLOCK_START = ("wait", "serve")


@dataclass(frozen=True, slots=True)
class LocalClockOptions:
    """``localclock public unsync|serve start wait|serve``: who is served the free-running local clock, and when.

    While the appliance serves its own clock (``server 127.127.1.0``), a
    client that only a ``default`` restrict entry matches (``restrict
    default``, ``-4 default``, ``-6 default`` or stratum1's implicit default)
    gets "unsynchronised" (leap 3, stratum 16) with ``public = "unsync"``
    (the default), or the local clock at its fudged stratum with ``"serve"``.
    Clients matched by a more specific ``restrict`` line always get the local
    clock.

    ``start = "wait"`` (the shipped ntp.conf says so): when other sources
    are configured (a refclock, a server), the local clock is not used
    before one of them has synchronised the clock since the daemon started:
    a Pi without a real-time clock starts from the time it was switched off,
    and that is not served as time (chrony's ``local activate``).
    ``"serve"`` (the default without a line, what an ntp.conf written for
    ntpd expects): from the start. A local clock that is the only source is
    served from the start either way. ``location`` is the last line that
    set an option (None: the defaults).
    """

    public: str = "unsync"
    location: Location | None = None
    start: str = "serve"

    @property
    def public_unsync(self) -> bool:
        """True when default-only clients are told "unsynchronised" while the local clock is served."""
        return self.public == "unsync"

    @property
    def waits_for_sync(self) -> bool:
        """True when the local clock waits for another source's first synchronisation."""
        return self.start == "wait"


@dataclass(frozen=True, slots=True)
class Listen:
    """``interface listen X``: an address, ``ADDRESS/PREFIX``, interface name, ``all``, ``wildcard``,
    ``ipv4`` or ``ipv6`` to serve on (:mod:`appliance.config.listen` resolves it); ``action`` ``ignore``
    only for ``interface ignore wildcard`` (bind each address, never the wildcard), the one ignore acted on."""

    address: str
    location: Location
    action: str = "listen"


#: The statistics files stratum1 writes (ntpd's names; ``rawstats``, ``sysstats`` and the rest are not kept).
STATS_FILES = ("loopstats", "peerstats", "clockstats")


@dataclass(frozen=True, slots=True)
class Filegen:
    """One statistics file set, from ``statistics NAME...`` and ``filegen NAME [file F] [type T] [link|nolink]
    [enable|disable]``: written to ``statsdir/file.YYYYMMDD`` (``type day``) or ``statsdir/file`` (``type
    none``), with ``statsdir/file`` a symbolic link to today's file when ``link`` (ntpd's default)."""

    name: str
    file: str
    type: str = "day"
    link: bool = True
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration, the result of parsing one file and its includes."""

    path: str = "<built-in>"
    servers: tuple[ServerLine, ...] = ()
    restricts: tuple[RestrictRule, ...] = ()
    fudges: tuple[Fudge, ...] = ()
    refclocks: tuple[Refclock, ...] = ()
    discard: Discard = field(default_factory=Discard)
    driftfile: str | None = None
    leapfile: str | None = None
    logfile: str | None = None
    statsdir: str | None = None
    filegens: tuple[Filegen, ...] = ()
    listen: tuple[Listen, ...] = ()
    localclock: LocalClockOptions = field(default_factory=LocalClockOptions)
    #: ``keys PATH`` (the key file, read with the configuration) and ``trustedkey``: the symmetric keys
    #: that authenticate clients and upstream servers; empty when there is no ``keys`` line.
    keys: KeyRing = field(default_factory=KeyRing)
    keys_file: str | None = None
    holdover_ns: int | None = None  # ``holdover SECONDS``: stratum 1 holdover bound (None: the default)
    #: Where ``leapfile``, ``logfile`` and ``statsdir`` were said (the last line of each), for warnings.
    paths_at: tuple[tuple[str, Location], ...] = ()
    warnings: tuple[ConfigWarning, ...] = ()

    def fudge_for(self, host: str) -> Fudge | None:
        """The last ``fudge`` line for a refclock pseudo-address, if any."""
        found = None
        for f in self.fudges:
            if f.host == host:
                found = f
        return found
