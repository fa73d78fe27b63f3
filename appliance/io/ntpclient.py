"""The upstream NTP client's sockets: runs :class:`~appliance.sources.client.Upstreams` on the event loop.

The thin edge of :mod:`appliance.sources.client`, which decides everything;
this module only moves bytes and reads clocks:

- **One socket per request** (RFC 9109, "port randomisation"): a fresh UDP
  socket, non-blocking, ``connect()``-ed to the server, so the kernel picks a
  random source port and drops datagrams from anyone else; it is closed
  after the reply that answers the request, or after
  :data:`~appliance.sources.client.RESPONSE_TIMEOUT_NS` (1.5 s). A datagram
  that fails the origin check leaves it open for the real reply.
- **Timestamps**: T1 is read from ``read_ns`` (the disciplined clock) just
  before ``send``; T4 is the kernel's receive timestamp (``SO_TIMESTAMPNS``,
  as :mod:`appliance.io.udp`), mapped by ``from_kernel_ns`` when the clock
  served is not the kernel's, or ``read_ns()`` when the kernel gave none.
- **Scheduling** is on ``monotonic_ns`` (the loop's clock): one timer, set to
  the earliest request or lookup :meth:`Upstreams.next_wakeup_ns` names.
- **Names** are resolved with ``socket.getaddrinfo`` on the loop's thread:
  it blocks (for seconds when DNS is down), which is acceptable at start
  and for the rare pool refresh, not more. A resolver thread is the cure if
  it ever matters. ``resolve`` is injectable for tests.

``on_reply(association, reply)`` is called after every datagram that got
through to an association (the daemon reselects on samples).
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.io.loop import EventLoop, Timer
from appliance.io.udp import SCM_TIMESTAMPNS, SO_TIMESTAMPNS
from appliance.sources.client import RESPONSE_TIMEOUT_NS, Association, Reply, Resolution, Upstreams
from appliance.timebase import NS_PER_S

log = logging.getLogger(__name__)

_TIMESPEC = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_MAX_DATAGRAM = 1024
#: Requests due within this much of a timer firing go out with it (float timers are not ns-exact).
_SLACK_NS = 1_000_000
#: With nothing scheduled, look again after this long (seconds).
_IDLE_S = 60.0

Resolver = Callable[[str, int, int | None], list[str]]


def resolve_name(host: str, port: int, family: int | None) -> list[str]:
    """The addresses of ``host`` (``family`` 4, 6 or None for both), in the resolver's order, without repeats.

    Blocks while the system resolver works; raises OSError (``socket.gaierror``) when it fails.
    """
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    seen: list[str] = []
    for _, _, _, _, sockaddr in socket.getaddrinfo(host, port, fam, socket.SOCK_DGRAM, socket.IPPROTO_UDP):
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclass(slots=True)
class ClientIOCounters:
    send_errors: int = 0
    receive_errors: int = 0
    no_timestamp: int = 0
    lookups: int = 0
    lookup_failures: int = 0


class _Exchange:
    """One request in flight: its association, socket and timeout."""

    __slots__ = ("association", "sock", "timer")

    def __init__(self, association: Association, sock: socket.socket) -> None:
        self.association = association
        self.sock = sock
        self.timer: Timer | None = None


class NtpClientIO:
    """Polls the servers of ``upstreams`` through ``loop``; see the module docstring.

    Call :meth:`start` once, :meth:`close` at the end. Everything runs on
    the loop's thread.
    """

    def __init__(
        self,
        loop: EventLoop,
        upstreams: Upstreams,
        *,
        read_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        from_kernel_ns: Callable[[int], int] | None = None,
        resolve: Resolver = resolve_name,
        on_reply: Callable[[Association, Reply], Any] | None = None,
    ) -> None:
        self.loop = loop
        self.upstreams = upstreams
        self.read_ns = read_ns
        self.monotonic_ns = monotonic_ns
        self.from_kernel_ns = from_kernel_ns
        self.resolve = resolve
        self.on_reply = on_reply
        self.counters = ClientIOCounters()
        self._exchanges: dict[Association, _Exchange] = {}
        self._timer: Timer | None = None
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Requests waiting for a reply (open sockets)."""
        return len(self._exchanges)

    def start(self) -> None:
        """Begin: resolve names and send the first requests now."""
        self._tick()

    def reschedule(self) -> None:
        """The upstreams changed (a configuration reload): forget the servers gone, ask the new ones, now."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._tick()

    def close(self) -> None:
        """Stop polling and close every socket."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ex in list(self._exchanges.values()):
            self._finish(ex)

    # -- scheduling -----------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        if self._closed:
            return
        now = self.monotonic_ns()
        for r in self.upstreams.resolutions_due(now):
            self._resolve(r, now)
        for a in self.upstreams.retire(now):
            self._forget(a)
        for a in self.upstreams.due(now + _SLACK_NS):
            self._send(a, now)
        self._schedule()

    def _schedule(self) -> None:
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        nxt = self.upstreams.next_wakeup_ns()
        delay = _IDLE_S if nxt is None else max(0.0, (nxt - self.monotonic_ns()) / NS_PER_S)
        self._timer = self.loop.call_later(delay, self._tick)

    def _resolve(self, r: Resolution, now: int) -> None:
        self.counters.lookups += 1
        try:
            addresses = self.resolve(r.host, r.port, r.family)
        except OSError as e:
            addresses = []
            log.warning("cannot resolve %s: %s (trying again later)", r.host, e)
        if not addresses:
            self.counters.lookup_failures += 1
            self.upstreams.resolution_failed(r.key, now)
            return
        for a in self.upstreams.resolved(r.key, addresses, now):
            log.info("%s: using server %s", r.host, a.name)

    def _forget(self, a: Association) -> None:
        ex = self._exchanges.get(a)
        if ex is not None:
            self._finish(ex)
        why = a.stopped or "unreachable"
        log.info("%s: no longer using %s (%s)", a.host, a.name, why)

    # -- one exchange ---------------------------------------------------------

    def _send(self, a: Association, now: int) -> None:
        old = self._exchanges.get(a)
        if old is not None:
            self._finish(old)
        data = a.request(now)
        try:
            family = socket.AF_INET6 if ":" in a.address else socket.AF_INET
            sockaddr = socket.getaddrinfo(a.address, a.port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0][4]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            self._send_failed(a, e)
            return
        ex = _Exchange(a, sock)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                pass  # not Linux: T4 is read from the clock instead
            sock.setblocking(False)
            sock.connect(sockaddr)
            self.loop.add_reader(sock, lambda: self._readable(ex))
            self._exchanges[a] = ex
            t1 = self.read_ns()
            sock.send(data)
        except OSError as e:
            self._finish(ex)
            self._send_failed(a, e)
            return
        a.sent(t1)
        ex.timer = self.loop.call_later(RESPONSE_TIMEOUT_NS / NS_PER_S, lambda: self._expire(ex))

    def _send_failed(self, a: Association, e: OSError) -> None:
        self.counters.send_errors += 1
        log.debug("request to %s failed: %s", a.name, e)
        a.timed_out()

    def _readable(self, ex: _Exchange) -> None:
        a = ex.association
        while self._exchanges.get(a) is ex:
            try:
                data, ancdata, _flags, _addr = ex.sock.recvmsg(_MAX_DATAGRAM, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # ECONNREFUSED: an ICMP port unreachable came back
                self.counters.receive_errors += 1
                log.debug("receive from %s failed: %s", a.name, e)
                self._finish(ex)
                a.timed_out()
                return
            reply = a.receive(data, self._t4(ancdata))
            if reply.outcome == "kod":
                if a.stopped is not None:
                    log.warning("%s", a.stopped)
                else:
                    log.info("%s sent a %s Kiss-o'-Death: poll interval now 2**%d s", a.name, reply.reason, a.poll)
            if self.on_reply is not None:
                self.on_reply(a, reply)
            if reply.answered:
                self._finish(ex)
                self._schedule()  # a KoD or a recovery may have moved the next poll
                return

    def _t4(self, ancdata: list[tuple[int, int, bytes]]) -> int:
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(cdata)
                t = sec * NS_PER_S + nsec
                return self.from_kernel_ns(t) if self.from_kernel_ns is not None else t
        self.counters.no_timestamp += 1
        return self.read_ns()

    def _expire(self, ex: _Exchange) -> None:
        if self._exchanges.get(ex.association) is ex:
            self._finish(ex)
            ex.association.timed_out()

    def _finish(self, ex: _Exchange) -> None:
        if ex.timer is not None:
            ex.timer.cancel()
            ex.timer = None
        if self._exchanges.get(ex.association) is ex:
            del self._exchanges[ex.association]
        self.loop.remove_reader(ex.sock)
        ex.sock.close()
