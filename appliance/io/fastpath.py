"""The compiled data plane of the NTP server (``_fastpath.c``), and what decides whether it serves.

The pure modules say what every datagram gets (:mod:`appliance.ntp.server`,
:mod:`~appliance.ntp.access`, :mod:`~appliance.ntp.ratelimit`); the Python
serving loop in :mod:`appliance.io.udp` is the reference for it, at about
half of chronyd's rate (bench/README.md). The compiled module does the same for
the one kind of datagram that is nearly all of a time server's traffic, a
plain 48-octet client request, drops and counts a datagram longer than
:data:`~appliance.ntp.packet.MAX_DATAGRAM` octets as the Python server does
("oversize"), and hands every other datagram (control, symmetric,
authenticated, extension fields, malformed, NTPv1 mode 0) back to the Python
path whole:

- :class:`FastServer` reads up to 64 datagrams per ``recvmmsg(2)`` with
  their kernel receive timestamps, looks the source up in the ``restrict``
  entries of the :class:`~appliance.ntp.access.AccessTable` (exported with
  :meth:`~appliance.ntp.access.AccessTable.scan_lists`), passes ``limited``
  clients through the rate limiter, takes the reply's first 24 octets from
  :meth:`~appliance.ntp.server.NtpServer.reply_prefix` (once per second and
  key), and sends each reply with its own ``CLOCK_REALTIME`` reading taken
  right before its own ``sendto(2)``. Its counts are added to the server's
  and the socket's counters after every call.
- :func:`wait_native` is the event loop's wait done in C (through
  :class:`appliance.io.udp.CompiledWait`): it calls ``epoll_wait`` on the loop's
  descriptor and answers plain requests until the loop has something to do,
  so a wake-up for a plain request runs no Python.
- :class:`FastRateLimiter` is :class:`~appliance.ntp.ratelimit.RateLimiter`'s
  table in C, with the same parameters (:func:`~appliance.ntp.ratelimit.limits`)
  and the same answers; both paths share it, so a client cannot get twice the
  rate by mixing kinds of request.
- :class:`FastMru` is :class:`~appliance.ntp.mru.MruTable` in C (a fixed pool
  of 64-octet entries, hash chains and a recency list: O(1) a datagram); both
  paths record into it, and mode 6 reads it (``ntpq -c mrulist``). A table
  other than :class:`FastMru` is not written by the compiled path.

It serves only when the served clock is the kernel's ``CLOCK_REALTIME`` (the
appliance's kernel clock, or the machine's clock served as the local clock),
since it reads that clock itself. The soft and simulated clocks, a build
without a compiler, or ``stratum1 serve --no-fastpath`` leave everything to
the Python path. ``tests/unit/io/test_fastpath.py`` holds both paths to the
same reply, octet for octet, for random requests, addresses and tables.

The C objects are safe to misuse from Python: they are set up whole when
made (no ``__init__`` to skip), the server takes part in garbage collection,
every argument is range-checked, and :meth:`FastServer.serve` refuses to run
twice at once (one thread); ``tests/sanitize/run`` runs these tests with the
extension built under AddressSanitizer and UndefinedBehaviorSanitizer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from appliance.config.model import Discard
from appliance.ntp.access import FLAG_BITS, AccessTable
from appliance.ntp.mru import MAX_DEPTH, MruEntry, MruTable
from appliance.ntp.ratelimit import KOD_BURST, KOD_PER_SECOND, RateLimiter, limits
from appliance.ntp.server import NtpServer

if TYPE_CHECKING:  # the soft clock's map is only a value handed through here
    from appliance.clock.soft import ClockMap

_native: ModuleType | None
try:
    _native = importlib.import_module("appliance.io._fastpath")
except ImportError:  # not built here (no compiler, not Linux): the Python path serves
    _native = None

#: Actions of :meth:`FastServer.handle`.
DROP, REPLY, KOD, PUNT = 0, 1, 2, 3

#: The socket's counts among those of :meth:`FastServer.take_counters`, in ``add_socket_counts`` order.
_SOCKET_COUNTS = ("send_errors", "receive_errors", "no_timestamp")


def available() -> bool:
    """Whether the compiled data plane was built for this machine."""
    return _native is not None


_LimiterBase: Any = _native.Limiter if _native is not None else object


class FastRateLimiter(_LimiterBase):  # type: ignore[misc]
    """:class:`~appliance.ntp.ratelimit.RateLimiter` in C: same arguments, answers and counters.

    The set a client lands in comes from a hash keyed with 128 random bits
    (``os.urandom``) per table, as Python's salted string hash does for the
    Python table. Keys must be IP addresses (IPv4, or IPv6 with or without a
    scope id, which is ignored); times POSIX ns in [0, 2**62) (OverflowError
    otherwise).

    The C type is set up whole by ``__new__`` (it has no ``__init__`` to skip
    or to run twice), so the parameters are turned into buckets here too.
    """

    __slots__ = ()

    def __new__(
        cls,
        discard: Discard,
        *,
        slots: int = 65536,
        ways: int = 8,
        kod_per_second: float = KOD_PER_SECOND,
        kod_burst: int = KOD_BURST,
    ) -> FastRateLimiter:
        if _native is None:
            raise RuntimeError("the compiled data plane is not built here")
        p = limits(discard, slots=slots, ways=ways, kod_per_second=kod_per_second, kod_burst=kod_burst)
        seed = os.urandom(16)
        table: FastRateLimiter = super().__new__(
            cls,
            p.avg_ns,
            p.avg_tau,
            p.min_ns,
            p.min_tau,
            p.kod_ns,
            p.kod_tau,
            slots,
            ways,
            int.from_bytes(seed[:8], "little"),
            int.from_bytes(seed[8:], "little"),
            discard.average_log2,
        )
        return table


def rate_limiter(discard: Discard) -> RateLimiter | FastRateLimiter:
    """The compiled table where it was built, else the Python one: the server's limiter."""
    return FastRateLimiter(discard) if _native is not None else RateLimiter(discard)


_MruBase: Any = _native.Mru if _native is not None else object


class FastMru(_MruBase):  # type: ignore[misc]
    """:class:`~appliance.ntp.mru.MruTable` in C: the same ``record`` and ``entries``, in 64 octets an entry.

    The hash chain a client lands in comes from 128 random bits (``os.urandom``) per table.
    """

    __slots__ = ()

    def __new__(cls, maxdepth: int = MAX_DEPTH) -> FastMru:
        if _native is None:
            raise RuntimeError("the compiled data plane is not built here")
        seed = os.urandom(16)
        table: FastMru = super().__new__(
            cls, maxdepth, int.from_bytes(seed[:8], "little"), int.from_bytes(seed[8:], "little")
        )
        return table

    @property
    def maxdepth(self) -> int:
        depth: int = self.capacity
        return depth

    def entries(self) -> list[MruEntry]:
        """Every entry, least recently seen first."""
        return [MruEntry(*e) for e in super().entries()]

    def after(self, addr: str | None, last_ntp64: int, count: int) -> list[MruEntry] | None:
        """Up to ``count`` entries newer than ``addr``'s (:class:`~appliance.ntp.mru.ClientRecorder`), O(count)."""
        got = super().after(addr, last_ntp64, count)
        return None if got is None else [MruEntry(*e) for e in got]

    def newest(self) -> MruEntry | None:
        """The most recently seen entry (None: the table is empty)."""
        e = super().newest()
        return None if e is None else MruEntry(*e)


def mru_table(maxdepth: int = MAX_DEPTH) -> MruTable | FastMru:
    """The compiled table where it was built, else the Python one: the server's MRU list."""
    return FastMru(maxdepth) if _native is not None else MruTable(maxdepth)


def _rules(access: AccessTable) -> tuple[list[tuple[bytes, bytes, bool, int, bool]], ...]:
    v4, v6 = access.scan_lists()
    return tuple(
        [
            (mask.to_bytes(width, "big"), net.to_bytes(width, "big"), ntponly, r.flags, r.is_default)
            for mask, net, ntponly, r in entries
        ]
        for entries, width in ((v4, 4), (v6, 16))
    )


class FastServer:
    """The compiled data plane for one socket of ``server`` (file descriptor ``fd``).

    The server's access table and limiter are read here, and again after each
    :meth:`~appliance.ntp.server.NtpServer.reconfigure` (a configuration
    reload: the compiled server is built anew around them); its state is
    followed through :meth:`~appliance.ntp.server.NtpServer.add_state_listener`.
    A limiter other than :class:`FastRateLimiter` leaves ``limited`` clients
    to the Python path.
    """

    def __init__(self, fd: int, server: NtpServer) -> None:
        if _native is None:
            raise RuntimeError("the compiled data plane is not built here")
        self.fd = fd
        self.server = server
        self._clock_map: ClockMap | None = None  # None: CLOCK_REALTIME is served as it is
        self._native = self._build()
        self._retired: list[Any] = []  # replaced by a reload: their counts are still to be taken
        server.add_state_listener(self._invalidate)
        server.add_config_listener(self._rebuild)

    def _build(self) -> Any:
        assert _native is not None
        v4, v6 = _rules(self.server.access)
        limiter = self.server.limiter if isinstance(self.server.limiter, _native.Limiter) else None
        mru = self.server.mru if isinstance(self.server.mru, _native.Mru) else None
        native = _native.Server(self.fd, v4, v6, self.server.reply_prefix, limiter, FLAG_BITS, mru)
        native.set_clock_map(self._clock_map)
        return native

    def set_clock_map(self, clock_map: ClockMap | None) -> None:
        """Serve the soft clock ``clock_map`` describes (:class:`appliance.clock.soft.ClockMap`), None: CLOCK_REALTIME.

        The receive timestamps and the transmit readings are mapped onto it as
        :meth:`~appliance.clock.soft.SoftClock.at_base_ns` maps them, to the
        nanosecond. ValueError or OverflowError for a map out of range (the
        one in force stays).
        """
        self._native.set_clock_map(clock_map)
        self._clock_map = clock_map

    def served_ns(self, base_ns: int) -> int:
        """The served clock's reading at CLOCK_REALTIME ``base_ns``, as the C code works it out."""
        served: int = self._native.served_ns(base_ns)
        return served

    def _invalidate(self) -> None:
        self._native.invalidate()

    def _rebuild(self) -> None:
        """The server's access table or limiter changed: serve with a compiled server built from the new ones."""
        self._retired.append(self._native)
        self._native = self._build()

    def close(self) -> None:
        """Let go of the server (the listeners and the prefix callback tie the two together).

        Without it the pair is still freed, by the garbage collector (the C object takes part in it).
        """
        self.server.remove_state_listener(self._invalidate)
        self.server.remove_config_listener(self._rebuild)
        for native in [*self._retired, self._native]:
            native.close()

    def serve(self, limit: int) -> list[tuple[bytes, Any, int]] | None:
        """Answer up to ``limit`` waiting datagrams; return those left to Python, as (data, address, rx_ns).

        One thread: the receive buffers live in the C object, so a second call while one runs (from the
        prefix callback, or from another thread meanwhile) raises RuntimeError. Datagrams over
        :data:`~appliance.ntp.packet.MAX_DATAGRAM` octets are dropped and counted ("oversize").
        """
        punted: list[tuple[bytes, Any, int]] | None = self._native.serve(limit)
        return punted

    def take_counters(self, add_socket_counts: Callable[[int, int, int], None]) -> None:
        """Add the counts since the last call to the server's counters (and the socket's, through the callback).

        The C side names its counts (only those not zero): the :class:`~appliance.ntp.server.ServerCounters`
        fields ``received``, ``served`` and ``kod_sent``, the socket's ``send_errors``, ``receive_errors`` and
        ``no_timestamp``, and every other name is a drop reason of the Python server. Compiled servers
        replaced by a reload give their last counts here too.
        """
        retired, self._retired = self._retired, []
        for native in [*retired, self._native]:
            self._add_counters(native.take_counters(), add_socket_counts)
        for native in retired:
            native.close()

    def _add_counters(self, counts: dict[str, int], add_socket_counts: Callable[[int, int, int], None]) -> None:
        if not counts:
            return
        c = self.server.counters
        c.received += counts.pop("received", 0)
        c.served += counts.pop("served", 0)
        c.kod_sent += counts.pop("kod_sent", 0)
        socket_counts = [counts.pop(name, 0) for name in _SOCKET_COUNTS]
        for reason, n in counts.items():
            c.dropped[reason] = c.dropped.get(reason, 0) + n
        if any(socket_counts):
            add_socket_counts(*socket_counts)

    def handle(self, data: bytes, ip: str, port: int, rx_ns: int, tx_ns: int) -> tuple[int, bytes | None]:
        """What the data plane does with one datagram, without a socket (for tests): (action, reply).

        ``rx_ns`` and ``tx_ns`` are POSIX ns in [0, 2**62) (OverflowError otherwise), ``port`` 0 .. 65535.
        """
        result: tuple[int, bytes | None] = self._native.handle(data, ip, port, rx_ns, tx_ns)
        return result


def wait_native(
    epoll_fd: int, servers: list[FastServer], timeout: float, limit: int
) -> list[tuple[int, list[tuple[bytes, Any, int]]]] | None:
    """Wait on the event loop's epoll descriptor, answering the plain requests of ``servers`` meanwhile.

    Returns when ``timeout`` seconds have passed, another file of the loop is
    ready, a signal interrupts the wait, 1 s after the first reply, or
    datagrams are left to Python: then ``[(index into servers, [(data,
    address, rx_ns), ...]), ...]``. The counts stay in each server until
    :meth:`FastServer.take_counters`. The GIL is let go while waiting.
    """
    if _native is None:
        raise RuntimeError("the compiled data plane is not built here")
    result: list[tuple[int, list[tuple[bytes, Any, int]]]] | None = _native.wait(
        epoll_fd, tuple(f._native for f in servers), timeout, limit
    )
    return result
