"""UDP sockets for the NTP server, with kernel receive timestamps (Linux ``SO_TIMESTAMPNS``).

The only code that touches the server's sockets. For each datagram it reads
the kernel's receive timestamp from the ancillary data (falling back to a
clock reading when there is none, counted as ``no_timestamp``), hands
``(data, address, rx_ns)`` to the pure server, reads the clock for the
transmit timestamp immediately before the ``sendto`` of that reply and sends
it. Errors on one datagram are counted, never fatal.

Two serving paths, one answer (``tests/unit/io/test_fastpath.py`` holds them
to the same reply, octet for octet):

- the reference, in Python: one ``recvmsg`` per datagram, up to
  :data:`_BATCH` per wake-up before timers get a look in;
- the compiled data plane (:mod:`appliance.io.fastpath`), where it is built
  and the served clock is the kernel's ``CLOCK_REALTIME`` or a soft clock over
  it (its :class:`~appliance.clock.soft.ClockMap` handed over with
  :meth:`UdpServerSocket.set_clock_map`), for a socket made with
  ``fast=True``: it reads up to 64 datagrams per ``recvmmsg``, answers the
  plain client requests and hands the rest to the Python server. With
  :func:`compiled_wait` as the event loop's wait it also does the waiting, so
  a wake-up for plain requests runs no Python at all.

Interleaved mode (RFC 9769, :mod:`appliance.ntp.interleave`): a reply whose
tail is an :class:`~appliance.ntp.server.Interleave` is sent with ``sendmsg``
asking the kernel for its software transmit timestamp (``SO_TIMESTAMPING``
per message); the kernel puts it on the socket's error queue, read right
after the send and whenever the socket is ready, and the time, on the served
clock, goes to :meth:`~appliance.ntp.server.NtpServer.transmitted` for the
client's next request. A kernel that refuses the socket option leaves every
reply basic.

Sending is *not* batched: each reply gets its own transmit timestamp, read
right before its own ``sendto``. ``sendmmsg`` would save a system call per
reply, but every reply after the first in a batch would leave later than the
time it carries (by the kernel's per-datagram send cost, a few microseconds
each), which is a timestamp error the appliance exists to avoid.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.io.fastpath import FastServer, available, wait_native
from appliance.ntp.mode6 import datagrams
from appliance.ntp.packet import MAX_DATAGRAM, MODE_CONTROL
from appliance.ntp.server import Interleave, NtpServer, finish_reply

if TYPE_CHECKING:  # the soft clock's map is only a value handed through here
    from appliance.clock.soft import ClockMap

log = logging.getLogger(__name__)

# Linux values (asm-generic: x86-64 and ARM alike); Python's socket module does not export them.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_TIMESTAMPING = 37
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17  # Linux 6.12: no SCM_TIMESTAMPING on received datagrams
MSG_ERRQUEUE = 0x2000
_TIMESPEC = struct.Struct("@ll")
_TX_REQUEST = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("@i", SOF_TIMESTAMPING_TX_SOFTWARE))]
# SCM_TIMESTAMPNS, and SCM_TIMESTAMPING (three timespecs) where the kernel cannot keep it off received datagrams
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(3 * _TIMESPEC.size)
# an error-queue message: the reply as sent (with its link, IP and UDP headers), its timestamps and its error
_ERRQUEUE_SIZE = 2048
_ERRQUEUE_CMSG = 256
#: Interleaved replies whose transmit times are still to come from the error queue, at most.
_AWAITING = 64
_BATCH = 512  # datagrams read per wake-up before timers get a look in
# One octet more than the server takes: a longer datagram, cut to this by the kernel, still shows
# as too long, and the server drops and counts it ("oversize") instead of serving its first part.
_RECV_SIZE = MAX_DATAGRAM + 1
_NS = 1_000_000_000

_SOFT_RECV_ERRORS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


@dataclass(slots=True)
class SocketCounters:
    receive_errors: int = 0
    send_errors: int = 0
    no_timestamp: int = 0


# -- what the kernel dropped -------------------------------------------------------------


def receive_queue_drops(text: str, inodes: set[int]) -> int:
    """The datagrams the kernel dropped for the sockets ``inodes`` (their receive queue was full, or a
    filter refused them), from a ``/proc/net/udp`` or ``udp6`` ``text``: the last column, ``drops``. Pure."""
    total = 0
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) >= 13 and words[9].isdigit() and int(words[9]) in inodes and words[-1].isdigit():
            total += int(words[-1])
    return total


def kernel_drops(sockets: list[UdpServerSocket]) -> int:
    """:func:`receive_queue_drops` for ``sockets``, read from this network namespace's ``/proc/net``; 0 where
    it cannot be read (not Linux)."""
    inodes = {s.inode for s in sockets}
    total = 0
    for name in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(name, encoding="ascii", errors="replace") as f:
                total += receive_queue_drops(f.read(), inodes)
        except OSError:
            continue
    return total


# -- the socket ------------------------------------------------------------------


class UdpServerSocket:
    """One bound UDP socket feeding an :class:`NtpServer`.

    ``read_ns`` reads the clock being served (POSIX ns); ``from_kernel_ns``
    maps a kernel ``CLOCK_REALTIME`` timestamp onto that clock (identity when
    the served clock is the kernel's).

    ``fast=True`` asks for the compiled data plane; the caller promises that
    ``read_ns`` reads ``CLOCK_REALTIME`` and passes no ``from_kernel_ns``, or
    that both are a soft clock's over ``CLOCK_REALTIME`` and passes its map as
    ``clock_map`` (and every later one to :meth:`set_clock_map`); ValueError
    for ``from_kernel_ns`` without a map. :attr:`data_plane` says which one serves.
    """

    def __init__(
        self,
        address: str,
        port: int,
        server: NtpServer,
        *,
        read_ns: Callable[[], int] = time.time_ns,
        from_kernel_ns: Callable[[int], int] | None = None,
        rcvbuf: int | None = None,
        fast: bool = False,
        clock_map: ClockMap | None = None,
    ) -> None:
        if fast and (from_kernel_ns is None) != (clock_map is None):
            raise ValueError(
                "the compiled data plane serves CLOCK_REALTIME, or a soft clock over it: with fast=True, "
                "from_kernel_ns and clock_map go together"
            )
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            tx_stamps = _report_software_timestamps(sock)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            # through getaddrinfo: a link-local fe80::1%eth0 needs its scope as the fourth field of the address
            sock.bind(socket.getaddrinfo(address, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0][4])
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.server = server
        self.read_ns = read_ns
        self.from_kernel_ns = from_kernel_ns
        self.counters = SocketCounters()
        #: Whether the kernel stamps replies as they leave (interleaved mode); else every reply is basic.
        self.tx_stamps = tx_stamps
        self._awaiting: dict[int, bytes] = {}  # receive timestamp of an interleaved reply -> the reply sent
        self._fast: FastServer | None = None
        if fast and available():
            self._fast = FastServer(sock.fileno(), server)
            if clock_map is not None:
                self._fast.set_clock_map(clock_map)

    def set_clock_map(self, clock_map: ClockMap | None) -> None:
        """The soft clock served changed (:meth:`appliance.clock.soft.SoftClock.watch`): the compiled plane follows."""
        if self._fast is not None:
            self._fast.set_clock_map(clock_map)

    @property
    def data_plane(self) -> str:
        """``"compiled"`` while the compiled data plane answers plain client requests, else ``"python"``."""
        return "compiled" if self._fast is not None else "python"

    @property
    def address(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return name[0], name[1]

    @property
    def inode(self) -> int:
        """The socket's inode: its row in ``/proc/net/udp`` (:func:`kernel_drops`)."""
        return os.fstat(self.sock.fileno()).st_ino

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_readable(self) -> None:
        """Serve every datagram waiting (up to a batch), then return to the loop."""
        if self.tx_stamps:
            self._read_transmit_times()
        if self._fast is not None:
            self._serve_fast(self._fast)
        else:
            self._serve_plain()

    def _serve_fast(self, fast: FastServer) -> None:
        try:
            punted = fast.serve(_BATCH)
        except OSError as e:
            self._fall_back(e)
            self.on_readable()
            return
        fast.take_counters(self._add_counts)
        if punted:
            self._serve_punted(punted)

    def _fall_back(self, e: OSError) -> None:
        """The compiled data plane failed (the kernel refused its system calls): Python serves from now on."""
        fast = self._fast
        if fast is None:
            return
        log.warning("the compiled data plane failed (%s): serving from Python from now on", e)
        self._fast = None
        fast.take_counters(self._add_counts)
        fast.close()

    def _serve_punted(self, punted: list[tuple[bytes, Any, int]]) -> None:
        """Serve the datagrams the compiled data plane left to the Python server."""
        for data, addr, rx_ns in punted:
            try:
                self._reply(data, addr, rx_ns)
            except Exception:  # a bug must not lose the rest of the batch, already read
                log.exception("serving a datagram from %s failed", addr[0])

    def _add_counts(self, send_errors: int, receive_errors: int, no_timestamp: int) -> None:
        c = self.counters
        c.send_errors += send_errors
        c.receive_errors += receive_errors
        c.no_timestamp += no_timestamp

    def _reply(self, data: bytes, addr: tuple, rx_ns: int) -> None:  # type: ignore[type-arg]
        """Hand one datagram to the server and send its reply, if any (the per-datagram path)."""
        reply = self.server.handle(data, addr[0], addr[1], rx_ns)
        if reply is None:
            return
        head, tail = reply
        try:
            if tail is None and head[0] & 7 == MODE_CONTROL:
                for datagram in datagrams(head):  # a mode 6 answer in fragments: each its own datagram
                    self.sock.sendto(datagram, addr)
            elif tail is None:
                self.sock.sendto(head, addr)
            elif isinstance(tail, Interleave) and self.tx_stamps:
                datagram = finish_reply(head, tail, self.read_ns())
                self.sock.sendmsg([datagram], _TX_REQUEST, 0, addr)
                self._await_transmit_time(tail.receive, datagram)
            else:
                # transmit timestamp: read right before this reply's own sendto (and signed after it)
                self.sock.sendto(finish_reply(head, tail, self.read_ns()), addr)
        except OSError as e:
            self.counters.send_errors += 1
            log.debug("send to %s failed: %s", addr[0], e)

    def _await_transmit_time(self, receive: int, datagram: bytes) -> None:
        awaiting = self._awaiting
        awaiting[receive] = datagram
        if len(awaiting) > _AWAITING:  # stamps the kernel never gave: forget the oldest
            del awaiting[next(iter(awaiting))]
        self._read_transmit_times()

    def _read_transmit_times(self) -> None:
        """Read the error queue: each transmit timestamp to the server, under the receive timestamp of its reply.

        An ICMP error queued there too (``IP_RECVERR``) is counted once, as a receive error, from the socket's
        pending error (which reading the queue would clear unseen, and which a receive reports instead when
        it comes first)."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._receive_error(err, OSError(err, os.strerror(err)))
        recvmsg = self.sock.recvmsg
        while True:
            try:
                data, ancdata, _flags, _addr = recvmsg(_ERRQUEUE_SIZE, _ERRQUEUE_CMSG, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._receive_error(e.errno, e)
                return
            tx_ns = 0
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(cdata) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)  # the first of three: the software timestamp
                    tx_ns = sec * _NS + nsec
            if not tx_ns or not self._awaiting:
                continue
            # the reply comes back whole, after its headers: the one it is names its receive timestamp
            receive = next((r for r, sent in self._awaiting.items() if data.endswith(sent)), None)
            if receive is None and not data and len(self._awaiting) == 1:  # net.core.tstamp_allow_data = 0
                receive = next(iter(self._awaiting))
            if receive is None:
                continue
            del self._awaiting[receive]
            if self.from_kernel_ns is not None:
                tx_ns = self.from_kernel_ns(tx_ns)
            self.server.transmitted(receive, tx_ns)

    def _serve_plain(self) -> None:
        recvmsg = self.sock.recvmsg
        read_ns = self.read_ns
        conv = self.from_kernel_ns
        unpack = _TIMESPEC.unpack_from
        reply = self._reply

        for _ in range(_BATCH):
            try:
                data, ancdata, _flags, addr = recvmsg(_RECV_SIZE, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._receive_error(e.errno, e)
                continue
            rx_ns = 0
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    sec, nsec = unpack(cdata)
                    rx_ns = sec * _NS + nsec
                    if conv is not None:
                        rx_ns = conv(rx_ns)
            if not rx_ns:
                self.counters.no_timestamp += 1
                rx_ns = read_ns()
            reply(data, addr, rx_ns)

    def _receive_error(self, err: int | None, e: object) -> None:
        self.counters.receive_errors += 1
        if err not in _SOFT_RECV_ERRORS:
            log.warning("receive error: %s", e)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self.sock.close()


def _report_software_timestamps(sock: socket.socket) -> bool:
    """Have ``sock`` report the software transmit timestamps its replies ask for; False where the kernel refuses."""
    for flags in (SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_RX_FILTER, SOF_TIMESTAMPING_SOFTWARE):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            return True
        except OSError:
            continue
    return False


class CompiledWait:
    """The event loop's wait done by the compiled data plane of ``sockets`` (:meth:`EventLoop.set_wait`).

    The C code waits on the loop's epoll descriptor and answers the plain
    requests of these sockets itself, wake-up after wake-up, with no Python in
    between. It comes back when the loop has something to do (a timer due,
    another file ready, a signal, a stop), when a datagram needs the Python
    server (served here, by its socket), or 1 s after it first answered one;
    each time the counts are added to the server's and the sockets' counters.
    A socket whose compiled plane has failed or closed leaves the wait to the
    selector (it is served through the loop's reader callback instead).
    """

    def __init__(self, sockets: Sequence[UdpServerSocket]) -> None:
        self.sockets = list(sockets)

    def __call__(self, epoll_fd: int, timeout: float) -> None:
        # A socket whose plane failed is not in the list: its readiness sends the wait back to the loop.
        fast = [(s, s._fast) for s in self.sockets if s._fast is not None]
        try:
            punted = wait_native(epoll_fd, [f for _, f in fast], timeout, _BATCH)
        except OSError as e:
            if e.errno in (errno.EBADF, errno.EINVAL) or not fast:
                raise  # the loop's descriptor: not the data plane's fault
            for s, _ in fast:
                s._fall_back(e)
            return
        finally:
            for s, f in fast:
                if s._fast is f:
                    f.take_counters(s._add_counts)
        if punted:
            for i, datagrams in punted:
                fast[i][0]._serve_punted(datagrams)


def compiled_wait(sockets: Sequence[UdpServerSocket]) -> CompiledWait | None:
    """The loop's wait for ``sockets`` (:class:`CompiledWait`), or None when none is served by compiled code."""
    if not any(s.data_plane == "compiled" for s in sockets):
        return None
    return CompiledWait(sockets)
