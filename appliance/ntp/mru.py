"""The MRU list of recent clients (ntpd's monitor, ntp_mon(5)), sans I/O: what ``ntpq -c mrulist`` reads.

One entry per client address: the port of its latest datagram, when it was first and last seen (POSIX ns,
passed in), how many datagrams came, its latest packet's mode and version (``mv``, the first octet's low 6
bits as ntpd keeps them) and the restrict flags that matched it (:mod:`appliance.ntp.access` bits). The
server records every datagram it does not ``ignore``, whatever it then does with it (served, rate limited,
refused), on both serving paths: the Python path here (:class:`MruTable`), the compiled one in the same
table made in C (``appliance.io.fastpath.FastMru``, one table for both, as for the rate limiter).

The table is bounded: at most :data:`MAX_DEPTH` entries (ntpd's ``mru maxdepth``); a new address when it is
full takes the place of the least recently seen one. ntpd's ``mru`` directive is not read (the parser
ignores it with a warning), so the bound is fixed here: 8192 entries of 64 octets in C (512 KiB), below
ntpd's default ``maxmem`` of 1 MiB. Nothing here reads a clock.

    >>> t = MruTable(maxdepth=2)
    >>> t.record("192.0.2.1", 40000, 10, 0x23, 0)
    >>> t.record("192.0.2.2", 40001, 20, 0x23, 0)
    >>> t.record("192.0.2.1", 40002, 30, 0x23, 0)
    >>> t.record("192.0.2.3", 123, 40, 0x24, 0)   # full: 192.0.2.2, the least recent, goes
    >>> [(e.addr, e.port, e.count) for e in t.entries()]
    [('192.0.2.1', 40002, 2), ('192.0.2.3', 123, 1)]
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from appliance.timebase import ntp64_from_ns

#: The most entries a table keeps (ntpd's ``mru maxdepth``).
MAX_DEPTH = 8192


@dataclass(frozen=True)
class MruEntry:
    """One client: its address and latest port, first and last seen (POSIX ns), datagrams, ``mv``, flags."""

    addr: str
    port: int
    first_ns: int
    last_ns: int
    count: int
    mv: int
    flags: int


class ClientRecorder(Protocol):
    """What the server writes and mode 6 reads: :class:`MruTable` or the compiled one."""

    @property
    def maxdepth(self) -> int:
        """The most entries the table keeps."""
        ...

    def record(self, addr: str, port: int, now_ns: int, mv: int, flags: int) -> None:
        """Count one datagram."""
        ...

    def entries(self) -> list[MruEntry]:
        """Every entry, least recently seen first."""
        ...

    def after(self, addr: str | None, last_ntp64: int, count: int) -> list[MruEntry] | None:
        """Up to ``count`` entries newer than ``addr``'s, least recent first (``addr`` None: from the oldest).

        None when ``addr`` is not in the table, or was seen again since: its last-seen time as an NTP
        timestamp (:func:`~appliance.timebase.ntp64_from_ns`) is not ``last_ntp64``.
        """
        ...

    def newest(self) -> MruEntry | None:
        """The most recently seen entry (None: the table is empty)."""
        ...

    def __len__(self) -> int:
        """How many entries the table holds."""
        ...


class MruTable:
    """The Python path's MRU table (see the module docstring); entries are least recently seen first."""

    def __init__(self, maxdepth: int = MAX_DEPTH) -> None:
        if maxdepth < 1:
            raise ValueError(f"maxdepth must be >= 1, not {maxdepth}")
        self.maxdepth = maxdepth
        self.evicted = 0
        # addr -> [port, first_ns, last_ns, count, mv, flags]; a list so that a hit changes it in place
        self._table: OrderedDict[str, list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def record(self, addr: str, port: int, now_ns: int, mv: int, flags: int) -> None:
        """Count one datagram from ``addr``:``port`` received at ``now_ns`` (first octet's low bits ``mv``).

        ``addr`` as the socket module writes it; an IPv4-mapped IPv6 address (a dual-stack socket's IPv4
        client) is kept as the IPv4 address and a scope id is dropped, as the compiled table does.
        """
        addr = _canonical(addr)
        table = self._table
        e = table.get(addr)
        if e is not None:
            e[0] = port
            e[2] = now_ns
            e[3] += 1
            e[4] = mv & 0x3F
            e[5] = flags
            table.move_to_end(addr)
            return
        if len(table) >= self.maxdepth:
            table.popitem(last=False)
            self.evicted += 1
        table[addr] = [port, now_ns, now_ns, 1, mv & 0x3F, flags]

    def entries(self) -> list[MruEntry]:
        """Every entry, least recently seen first."""
        return [MruEntry(a, e[0], e[1], e[2], e[3], e[4], e[5]) for a, e in self._table.items()]

    def after(self, addr: str | None, last_ntp64: int, count: int) -> list[MruEntry] | None:
        """Up to ``count`` entries newer than ``addr``'s (see :class:`ClientRecorder`); O(table) here, O(count)
        in the compiled table."""
        items = iter(self._table.items())
        if addr is not None:
            addr = _canonical(addr)
            e = self._table.get(addr)
            if e is None or ntp64_from_ns(e[2]) != last_ntp64:
                return None
            for a, _ in items:
                if a == addr:
                    break
        return [MruEntry(a, *e) for a, e in itertools.islice(items, count)]

    def newest(self) -> MruEntry | None:
        """The most recently seen entry (None: the table is empty)."""
        if not self._table:
            return None
        addr = next(reversed(self._table))
        return MruEntry(addr, *self._table[addr])


def _canonical(addr: str) -> str:
    if "%" in addr:
        addr = addr.partition("%")[0]
    if addr.startswith("::ffff:") and "." in addr:
        addr = addr[7:]
    return addr
