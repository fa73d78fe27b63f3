"""Access control: what a source address may ask of us (ntpd's ``restrict``), sans I/O.

The configuration's ``restrict`` lines (:class:`appliance.config.model.RestrictRule`)
become an :class:`AccessTable`; the server asks it about the source address
of every packet and gets back a :class:`Restriction`: a bitmask of the flags
below and whether only a default entry matched.

Matching follows ntpd (``ntp_restrict.c``, documented in ntp_acc(5) and the
"Access Control Support" page):

- each ``restrict`` line is an *entry* keyed by (network, mask, ``ntpport``);
  a line that repeats an existing key adds its flags to that entry (ntpd ORs
  them: ``restrict 10.0.0.0 mask 255.0.0.0 noquery`` followed by the same
  address and mask with ``nopeer`` gives ``noquery nopeer``; flags are never
  taken away by a later line);
- a packet gets the flags of the *most specific* entry that matches its
  source: the longest mask wins; with the same address and mask, the entry
  with ``ntpport`` wins, but it matches only packets from source port 123;
- ``restrict default ...`` (family None) is the entry 0.0.0.0/0 *and* the
  entry ::/0; ``restrict -4 default`` and ``-6 default`` are one of them, so a
  bare ``default`` and a ``-6 default`` line both add to the IPv6 default;
- ``restrict source ...`` is a template, as in ntpd (ntp_acc(5): "a template
  restriction automatically added at runtime for each association"): the
  flags of the last such line (:attr:`AccessTable.source_flags`; ntpd keeps
  only the last one too) become a host entry for the address of each
  association, the servers, pool servers and peers in use
  (:meth:`AccessTable.with_sources`, which the daemon calls whenever that set
  of addresses changes), except an address a ``restrict`` line names as a
  host already (ntpd leaves such an entry alone);
- a packet from a multicast source address gets ``Restriction(IGNORE, False)``
  whatever the table says (ntpd does the same: such a source is forged);
- loopback is not exempt: the usual configurations say ``restrict 127.0.0.1``
  and ``restrict ::1`` explicitly, and without them 127.0.0.1 gets the default.

Where stratum1 differs from ntpd, on purpose:

- *The implicit default.* When no ``default`` line (without ``ntpport``) covers
  an address family, ntpd's default entry has no flags at all: everybody may
  query and modify. stratum1 uses ``implicit_default`` instead, by default
  ``nomodify notrap nopeer noquery``, so an appliance whose configuration
  forgot the line still serves time to everybody but takes no orders.
- *IPv4-mapped IPv6 addresses* (``::ffff:192.0.2.1``, as a dual-stack socket
  reports IPv4 peers) are looked up as the IPv4 address, and rules written in
  that form are IPv4 rules. IPv6 scope ids (``fe80::1%eth0``) are dropped.

The ``ntpport`` flag is a matching condition, not a restriction: it is never
set in :attr:`Restriction.flags`.

Lookups are cached per source address in a bounded dict (emptied when full),
so the usual case costs one dict lookup; a miss converts the address with
:func:`socket.inet_pton` (pure conversion, no I/O) and scans the entries of
its family, most specific first.

Example::

    >>> import ipaddress
    >>> from appliance.config.model import Location, RestrictRule
    >>> here = Location("ntp.conf", 1)
    >>> rules = [
    ...     RestrictRule(None, None, frozenset({"kod", "limited", "noquery"}), here),
    ...     RestrictRule(ipaddress.ip_network("192.168.0.0/24"), 4, frozenset({"nomodify"}), here),
    ... ]
    >>> table = AccessTable.from_rules(rules)
    >>> table.lookup("192.168.0.7") == Restriction(NOMODIFY, False)
    True
    >>> flag_names(table.lookup("2001:db8::1").flags)
    ('noquery', 'kod', 'limited')
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_pton
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config's model imports the keys, which use address_value from here
    from appliance.config.model import RestrictRule

IGNORE = 1 << 0
NOSERVE = 1 << 1
NOQUERY = 1 << 2
NOMODIFY = 1 << 3
NOTRAP = 1 << 4
NOPEER = 1 << 5
KOD = 1 << 6
LIMITED = 1 << 7
NOMRULIST = 1 << 8
VERSION = 1 << 9
NOTRUST = 1 << 10
NOEPEER = 1 << 11
NTPPORT = 1 << 12
LOWPRIOTRAP = 1 << 13

#: Flag name (as in ntp.conf) -> bit, in bit order.
FLAG_BITS: dict[str, int] = {
    "ignore": IGNORE,
    "noserve": NOSERVE,
    "noquery": NOQUERY,
    "nomodify": NOMODIFY,
    "notrap": NOTRAP,
    "nopeer": NOPEER,
    "kod": KOD,
    "limited": LIMITED,
    "nomrulist": NOMRULIST,
    "version": VERSION,
    "notrust": NOTRUST,
    "noepeer": NOEPEER,
    "ntpport": NTPPORT,
    "lowpriotrap": LOWPRIOTRAP,
}

#: stratum1's flags for an address family that no ``default`` line covers (ntpd: none).
IMPLICIT_DEFAULT = NOMODIFY | NOTRAP | NOPEER | NOQUERY

#: Cached lookups kept before the cache is emptied.
CACHE_SIZE = 4096

NTP_PORT = 123

_V4_MAPPED = 0xFFFF  # the top 96 bits of ::ffff:a.b.c.d
_V4_MULTICAST_MASK = 0xF000_0000
_V4_MULTICAST_NET = 0xE000_0000  # 224.0.0.0/4
_V6_MULTICAST_SHIFT = 120
_V6_MULTICAST_TOP = 0xFF  # ff00::/8


def flags_from_names(names: Iterable[str]) -> int:
    """Return the bitmask for restrict flag names (``"kod"``, ``"noquery"``...).

    Raises ValueError for a name that is not a restrict flag.
    """
    bits = 0
    for name in names:
        try:
            bits |= FLAG_BITS[name]
        except KeyError:
            raise ValueError(f"unknown restrict flag {name!r}") from None
    return bits


def flag_names(flags: int) -> tuple[str, ...]:
    """Return the names of the bits set in ``flags``, in bit order (for status and logs)."""
    return tuple(name for name, bit in FLAG_BITS.items() if flags & bit)


@dataclass(frozen=True, slots=True)
class Restriction:
    """The answer for one source address.

    ``flags`` is a bitmask of the module's flag constants (never NTPPORT).
    ``is_default`` is true when only a ``default`` entry (or the implicit
    default) matched: the address was not admitted specifically.
    """

    flags: int
    is_default: bool


#: What a multicast source address gets.
_IGNORED = Restriction(IGNORE, False)

# One entry of a family's scan list: (mask, network, ntpport only, answer).
_Entry = tuple[int, int, bool, Restriction]


class AccessTable:
    """The restrict entries of a configuration, ready for per-packet lookups.

    Build it with :meth:`from_rules`. Not thread-safe (the cache is shared);
    the appliance has one event loop thread.
    """

    __slots__ = (
        "_v4",
        "_v6",
        "_ntpport",
        "_cache",
        "_cache_ntp",
        "_cache_size",
        "source_flags",
        "rules",
        "implicit_default",
        "sources",
    )

    def __init__(
        self,
        v4: list[_Entry],
        v6: list[_Entry],
        source_flags: int | None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """Take the scan lists as built by :meth:`from_rules` (most specific entry first)."""
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._v4 = v4
        self._v6 = v6
        self._ntpport = any(e[2] for e in v4) or any(e[2] for e in v6)
        self._cache: dict[str, Restriction] = {}
        self._cache_ntp: dict[str, Restriction] = {}  # answers for source port 123, if they can differ
        self._cache_size = cache_size
        #: Flags of the last ``restrict source`` line (bitmask, no NTPPORT), or None without one.
        self.source_flags = source_flags
        #: What :meth:`from_rules` was given: the lines, the implicit default, the associations' addresses.
        self.rules: tuple[RestrictRule, ...] = ()
        self.implicit_default = IMPLICIT_DEFAULT
        self.sources: frozenset[str] = frozenset()

    @classmethod
    def from_rules(
        cls,
        rules: Iterable[RestrictRule],
        implicit_default: int = IMPLICIT_DEFAULT,
        *,
        sources: Iterable[str] = (),
        cache_size: int = CACHE_SIZE,
    ) -> AccessTable:
        """Build the table from ``restrict`` lines in file order.

        ``implicit_default`` is the flag bitmask for a family that no
        ``default`` line covers (ntpd would use 0; see the module docstring).
        ``sources`` are the associations' addresses, each given a host entry
        with the ``restrict source`` flags when there is such a line and no
        line names the address as a host. Raises ValueError for an unknown
        flag name or an address that is none.
        """
        rules = tuple(rules)
        # (family, network int, prefix length, ntpport) -> OR of the lines' flags
        merged: dict[tuple[int, int, int, bool], int] = {}
        source_flags: int | None = None
        for rule in rules:
            bits = flags_from_names(rule.flags)
            ntponly = bool(bits & NTPPORT)
            bits &= ~NTPPORT
            if rule.source:
                source_flags = bits
                continue
            if rule.network is None:
                families = (4, 6) if rule.family is None else (rule.family,)
                keys = [(fam, 0, 0, ntponly) for fam in families]
            else:
                keys = [(*_network_key(rule.network), ntponly)]
            for key in keys:
                merged[key] = merged.get(key, 0) | bits
        if source_flags is not None:
            for ip in sources:
                fam, value = address_value(ip)
                host = (fam, value, 32 if fam == 4 else 128)
                if (*host, False) not in merged and (*host, True) not in merged:
                    merged[(*host, False)] = source_flags
        for fam in (4, 6):
            merged.setdefault((fam, 0, 0, False), implicit_default & ~NTPPORT)
        lists: dict[int, list[_Entry]] = {4: [], 6: []}
        ordered = sorted(merged.items(), key=lambda kv: (-kv[0][2], not kv[0][3]))
        for (fam, net, plen, ntponly), bits in ordered:
            width = 32 if fam == 4 else 128
            mask = ((1 << plen) - 1) << (width - plen)
            lists[fam].append((mask, net, ntponly, Restriction(bits, plen == 0)))
        table = cls(lists[4], lists[6], source_flags, cache_size)
        table.rules = rules
        table.implicit_default = implicit_default
        table.sources = frozenset(sources)
        return table

    def with_sources(self, addresses: Iterable[str]) -> AccessTable:
        """This table's lines with ``restrict source`` applied to ``addresses`` (the associations in use)."""
        return AccessTable.from_rules(self.rules, self.implicit_default, sources=addresses, cache_size=self._cache_size)

    def scan_lists(self) -> tuple[list[_Entry], list[_Entry]]:
        """The IPv4 and IPv6 entries, most specific first, as :meth:`lookup` scans them (copies)."""
        return list(self._v4), list(self._v6)

    def lookup(self, ip: str, port: int = 0) -> Restriction:
        """Return the restriction for source address ``ip`` (textual IPv4 or IPv6) and source port.

        Raises ValueError when ``ip`` is not an IPv4 or IPv6 address.
        """
        cache = self._cache_ntp if port == NTP_PORT and self._ntpport else self._cache
        found = cache.get(ip)
        if found is None:
            found = self._match(ip, port == NTP_PORT)
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[ip] = found
        return found

    def _match(self, ip: str, from_ntp_port: bool) -> Restriction:
        """Scan the entries of the address's family, most specific first (the uncached path)."""
        family, value = address_value(ip)
        if family == 4:
            if value & _V4_MULTICAST_MASK == _V4_MULTICAST_NET:
                return _IGNORED
            entries = self._v4
        else:
            if value >> _V6_MULTICAST_SHIFT == _V6_MULTICAST_TOP:
                return _IGNORED
            entries = self._v6
        for mask, net, ntponly, answer in entries:
            if value & mask == net and (from_ntp_port or not ntponly):
                return answer
        raise AssertionError("unreachable: every family has a default entry")


def address_value(ip: str) -> tuple[int, int]:
    """Return ``(family, address as int)`` for a textual address.

    IPv4-mapped IPv6 addresses come back as IPv4 (family 4); an IPv6 scope id
    (``%eth0``) is dropped. Raises ValueError for anything else.
    """
    try:
        if ":" not in ip:
            return 4, int.from_bytes(inet_pton(AF_INET, ip), "big")
        if "%" in ip:
            ip = ip.partition("%")[0]
        value = int.from_bytes(inet_pton(AF_INET6, ip), "big")
    except OSError:
        raise ValueError(f"not an IP address: {ip!r}") from None
    if value >> 32 == _V4_MAPPED:
        return 4, value & 0xFFFF_FFFF
    return 6, value


def _network_key(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int, int]:
    """Return ``(family, network int, prefix length)``; IPv4-mapped IPv6 networks become IPv4."""
    if network.version == 4:
        return 4, int(network.network_address), network.prefixlen
    value = int(network.network_address)
    if network.prefixlen >= 96 and value >> 32 == _V4_MAPPED:
        return 4, value & 0xFFFF_FFFF, network.prefixlen - 96
    return 6, value, network.prefixlen
