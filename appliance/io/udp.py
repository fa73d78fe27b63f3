"""UDP sockets for the NTP server, with kernel receive timestamps (Linux ``SO_TIMESTAMPNS``).

The only code that touches the server's sockets. For each datagram it reads
the kernel's receive timestamp from the ancillary data (falling back to a
clock reading when there is none), hands ``(data, address, rx_ns)`` to the
pure server, reads the clock for the transmit timestamp immediately before
the ``sendto`` of that reply and sends it. Errors on one datagram are
counted, never fatal.

Receiving is batched: on Linux the datagrams waiting are read with
``recvmmsg(2)`` (through ``ctypes.CDLL(None)``, as the rest of the I/O edge
calls libc), up to :data:`_MMSG_COUNT` per system call, each with its own
kernel timestamp, so batching costs no accuracy. Where ``recvmmsg`` is
missing (or fails with ENOSYS) the socket falls back to one ``recvmsg`` per
datagram.

Where the compiled data plane is built (:mod:`appliance.io.fastpath`) and
the served clock is the kernel's ``CLOCK_REALTIME``, a socket made with
``fast=True`` lets it answer the plain client requests of each batch and
hands the rest to the Python path below.

Sending is *not* batched: each reply gets its own transmit timestamp, read
right before its own ``sendto``. ``sendmmsg`` would save a system call per
reply, but every reply after the first in a batch would leave later than the
time it carries (by the kernel's per-datagram send cost, a few microseconds
each), which is a timestamp error the appliance exists to avoid.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.io.fastpath import FastServer, available
from appliance.ntp.packet import MAX_DATAGRAM
from appliance.ntp.server import NtpServer
from appliance.timebase import ntp64_from_ns

log = logging.getLogger(__name__)

# Linux values (asm-generic: x86-64 and ARM alike); Python's socket module does not export them.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_BATCH = 512  # datagrams read per wake-up before timers get a look in
# One octet more than the server takes: a longer datagram, cut to this by the kernel, still shows
# as too long, and the server drops and counts it ("oversize") instead of serving its first part.
_RECV_SIZE = MAX_DATAGRAM + 1
_MMSG_COUNT = 64  # datagrams per recvmmsg call
_ADDR_CACHE_SIZE = 4096  # raw sockaddr -> address tuple entries kept before the cache is emptied

# The transmit timestamp: appliance.timebase.ntp64_from_ns with the second's part cached, so
# that little runs between the clock read and the send (same result, rounding included).
_NS = 1_000_000_000
_FRAC = 1 << 32
_HALF_NS = _NS // 2
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_TS = struct.Struct("!Q")

_SOFT_RECV_ERRORS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


@dataclass(slots=True)
class SocketCounters:
    receive_errors: int = 0
    send_errors: int = 0
    no_timestamp: int = 0


# -- recvmmsg through ctypes ---------------------------------------------------


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    # glibc's layout (msg_iovlen and msg_controllen are size_t), the same on 32- and 64-bit.
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_SIZE_T = "Q" if ctypes.sizeof(ctypes.c_size_t) == 8 else "I"
_MMSG_STRIDE = ctypes.sizeof(_MMsgHdr)
_OFF_NAMELEN = _MsgHdr.msg_namelen.offset
_OFF_CTLLEN = _MsgHdr.msg_controllen.offset
_OFF_LEN = _MMsgHdr.msg_len.offset
# (msg_namelen, msg_controllen, msg_len) of one mmsghdr, native byte order, no alignment padding added.
_MMSG_FIELDS = struct.Struct(
    f"={_OFF_NAMELEN}xI{_OFF_CTLLEN - _OFF_NAMELEN - 4}x{_SIZE_T}"
    f"{_OFF_LEN - _OFF_CTLLEN - ctypes.sizeof(ctypes.c_size_t)}xI"
)
# A cmsghdr (cmsg_len, cmsg_level, cmsg_type) followed by a timespec: with native alignment the
# timespec lands on CMSG_DATA on both LP64 and ILP32 Linux (checked below).
_CMSG_HDR = struct.Struct("@Nii")
_CMSG_TS = struct.Struct("@Niill")
_CMSG_HDR_LEN = socket.CMSG_LEN(0)
_CMSG_TS_LEN = socket.CMSG_LEN(_TIMESPEC.size)
_CMSG_ALIGN = ctypes.sizeof(ctypes.c_size_t)
_NAME_SIZE = 32  # >= sizeof(struct sockaddr_in6) == 28
_CONTROL_SIZE = max(64, _CMSG_SPACE)
_FAMILY_BYTEORDER = sys.byteorder  # sa_family_t and sin6_scope_id are in host order


def _load_recvmmsg() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    if _CMSG_HDR.size != _CMSG_HDR_LEN or _CMSG_TS.size != _CMSG_TS_LEN:
        return None  # an ABI this module does not know: use recvmsg
    try:
        fn = ctypes.CDLL(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    fn.restype = ctypes.c_int
    return fn


_recvmmsg = _load_recvmmsg()


def _decode_sockaddr(raw: bytes) -> tuple[str, int] | tuple[str, int, int, int] | None:
    """The address tuple Python's ``recvmsg`` would give for a raw ``sockaddr_in``/``sockaddr_in6``."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[0:2], _FAMILY_BYTEORDER)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6 and len(raw) >= 28:
        return (
            socket.inet_ntop(socket.AF_INET6, raw[8:24]),
            int.from_bytes(raw[2:4], "big"),
            int.from_bytes(raw[4:8], "big"),
            int.from_bytes(raw[24:28], _FAMILY_BYTEORDER),
        )
    return None


def _find_timestamp(control: memoryview, start: int, length: int) -> tuple[int, int] | None:
    """Walk the control messages in ``control[start:start+length]`` for SCM_TIMESTAMPNS (the slow path)."""
    off = start
    end = start + length
    while off + _CMSG_HDR_LEN <= end:
        clen, level, kind = _CMSG_HDR.unpack_from(control, off)
        if clen < _CMSG_HDR_LEN:
            return None
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and off + _CMSG_TS_LEN <= end:
            _, _, _, sec, nsec = _CMSG_TS.unpack_from(control, off)
            return sec, nsec
        off += (clen + _CMSG_ALIGN - 1) & ~(_CMSG_ALIGN - 1)
    return None


class _Batch:
    """The buffers of one ``recvmmsg`` call: ``count`` slots of data, address and control space."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.data = bytearray(count * _RECV_SIZE)
        self.names = bytearray(count * _NAME_SIZE)
        self.control = bytearray(count * _CONTROL_SIZE)
        self.hdrs = bytearray(count * _MMSG_STRIDE)
        self._iovs = (_IOVec * count)()
        data_at = ctypes.addressof(ctypes.c_char.from_buffer(self.data))
        names_at = ctypes.addressof(ctypes.c_char.from_buffer(self.names))
        control_at = ctypes.addressof(ctypes.c_char.from_buffer(self.control))
        msgs = (_MMsgHdr * count).from_buffer(self.hdrs)
        for i in range(count):
            iov = self._iovs[i]
            iov.iov_base = data_at + i * _RECV_SIZE
            iov.iov_len = _RECV_SIZE
            h = msgs[i].msg_hdr
            h.msg_name = names_at + i * _NAME_SIZE
            h.msg_namelen = _NAME_SIZE
            h.msg_iov = ctypes.addressof(iov)
            h.msg_iovlen = 1
            h.msg_control = control_at + i * _CONTROL_SIZE
            h.msg_controllen = _CONTROL_SIZE
        del msgs
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.hdrs))
        # The kernel overwrites msg_namelen, msg_controllen, msg_flags and msg_len: a clean copy
        # restores them before each call (a memcpy, cheaper than setting fields through ctypes).
        self.template = memoryview(bytes(self.hdrs))
        self.dirty = 0  # octets of the headers the last call wrote to
        self.parts = (
            self.hdrs,
            self.template,
            self.address,
            count,
            memoryview(self.hdrs),
            memoryview(self.data),
            memoryview(self.names),
            memoryview(self.control),
        )


# -- the socket ------------------------------------------------------------------


class UdpServerSocket:
    """One bound UDP socket feeding an :class:`NtpServer`.

    ``read_ns`` reads the clock being served (POSIX ns); ``from_kernel_ns``
    maps a kernel ``CLOCK_REALTIME`` timestamp onto that clock (identity when
    the served clock is the kernel's).

    ``batched`` is true while datagrams are read with ``recvmmsg``; set it to
    False to use one ``recvmsg`` per datagram (it also turns False by itself
    if the kernel lacks ``recvmmsg``).

    ``fast=True`` asks for the compiled data plane; the caller promises that
    ``read_ns`` reads ``CLOCK_REALTIME`` and passes no ``from_kernel_ns``
    (ValueError otherwise). :attr:`data_plane` says which one serves.
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
    ) -> None:
        if fast and from_kernel_ns is not None:
            raise ValueError("the compiled data plane serves CLOCK_REALTIME only: no from_kernel_ns with fast=True")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((address, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.server = server
        self.read_ns = read_ns
        self.from_kernel_ns = from_kernel_ns
        self.counters = SocketCounters()
        self.batched = _recvmmsg is not None
        self._batch: _Batch | None = None
        self._addresses: dict[bytes, tuple[str, int] | tuple[str, int, int, int] | None] = {}
        self._tx_second = (0, 0, 0)  # (start ns, end ns, NTP timestamp) of the second last stamped
        self._fast: FastServer | None = None
        if fast and available() and self.batched:
            self._fast = FastServer(sock.fileno(), server)

    @property
    def data_plane(self) -> str:
        """``"compiled"`` while the compiled data plane answers plain client requests, else ``"python"``."""
        return "compiled" if self._fast is not None else "python"

    @property
    def address(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return name[0], name[1]

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_readable(self) -> None:
        """Serve every datagram waiting (up to a batch), then return to the loop."""
        if self._fast is not None:
            self._serve_fast(self._fast)
        elif self.batched:
            self._serve_batched()
        else:
            self._serve_plain()

    def _serve_fast(self, fast: FastServer) -> None:
        try:
            punted = fast.serve(_BATCH)
        except OSError as e:
            log.warning("the compiled data plane failed (%s): serving from Python from now on", e)
            self._fast = None
            fast.take_counters(self._add_counts)
            fast.close()
            self.on_readable()
            return
        fast.take_counters(self._add_counts)
        if punted:
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
            if tail is None:
                self.sock.sendto(head, addr)
            else:
                # transmit timestamp: read right before this reply's own sendto
                self.sock.sendto(head + _TS.pack(self._ntp64(self.read_ns())) + tail, addr)
        except OSError as e:
            self.counters.send_errors += 1
            log.debug("send to %s failed: %s", addr[0], e)

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

    def _second(self, t_ns: int) -> tuple[int, int, int]:
        """The POSIX second holding ``t_ns``: (start ns, end ns, its NTP timestamp); cached."""
        start = t_ns - t_ns % _NS
        self._tx_second = second = (start, start + _NS, ntp64_from_ns(start))
        return second

    def _ntp64(self, t_ns: int) -> int:
        """``ntp64_from_ns(t_ns)``, with the seconds part cached (the transmit timestamp's hot path)."""
        start, end, ntp = self._tx_second
        if not start <= t_ns < end:
            start, end, ntp = self._second(t_ns)
        return (ntp + ((t_ns - start) * _FRAC + _HALF_NS) // _NS) & _MASK64

    def _receive_error(self, err: int | None, e: object) -> None:
        self.counters.receive_errors += 1
        if err not in _SOFT_RECV_ERRORS:
            log.warning("receive error: %s", e)

    def _serve_batched(self) -> None:
        b = self._batch
        if b is None:
            b = self._batch = _Batch(_MMSG_COUNT)
        recvmmsg = _recvmmsg
        assert recvmmsg is not None
        fd = self.sock.fileno()
        hdrs, template, msgs_at, count, hdrs_view, data_view, names_view, control_view = b.parts
        fields = _MMSG_FIELDS.unpack_from
        cmsg_ts = _CMSG_TS.unpack_from
        addresses = self._addresses
        counters = self.counters
        handle = self.server.handle
        sendto = self.sock.sendto
        read_ns = self.read_ns
        conv = self.from_kernel_ns
        pack_ts = _TS.pack
        sol_socket = socket.SOL_SOCKET
        sec_ns, sec_end, sec_ntp = self._tx_second

        done = 0
        while done < _BATCH:
            if b.dirty:
                hdrs[: b.dirty] = template[: b.dirty]
                b.dirty = 0
            n = recvmmsg(fd, msgs_at, count, socket.MSG_DONTWAIT, None)
            if n <= 0:
                err = ctypes.get_errno()
                if n == 0 or err in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                if err == errno.EINTR:
                    continue
                if err == errno.ENOSYS:
                    log.info("recvmmsg is not available: reading one datagram at a time")
                    self.batched = False
                    self._serve_plain()
                    return
                self._receive_error(err, OSError(err, errno.errorcode.get(err, str(err))))
                done += 1
                continue
            b.dirty = n * _MMSG_STRIDE
            done += n
            for i in range(n):
                namelen, ctllen, length = fields(hdrs_view, i * _MMSG_STRIDE)
                at = i * _RECV_SIZE
                data = data_view[at : at + length].tobytes()
                at = i * _NAME_SIZE
                raw = names_view[at : at + namelen].tobytes()
                addr = addresses.get(raw)
                if addr is None:
                    addr = _decode_sockaddr(raw)
                    if addr is None:
                        counters.receive_errors += 1
                        continue
                    if len(addresses) >= _ADDR_CACHE_SIZE:
                        addresses.clear()
                    addresses[raw] = addr
                rx_ns = 0
                if ctllen >= _CMSG_TS_LEN:
                    at = i * _CONTROL_SIZE
                    _, level, kind, sec, nsec = cmsg_ts(control_view, at)
                    if level != sol_socket or kind != SCM_TIMESTAMPNS:
                        found = _find_timestamp(control_view, at, ctllen)
                        sec, nsec = found if found is not None else (0, 0)
                    rx_ns = sec * _NS + nsec
                    if rx_ns and conv is not None:
                        rx_ns = conv(rx_ns)
                if not rx_ns:
                    counters.no_timestamp += 1
                    rx_ns = read_ns()
                try:
                    reply = handle(data, addr[0], addr[1], rx_ns)
                except Exception:  # a bug must not lose the rest of the batch, already read
                    log.exception("serving a datagram from %s failed", addr[0])
                    continue
                if reply is None:
                    continue
                head, tail = reply
                try:
                    if tail is None:
                        sendto(head, addr)
                    else:
                        # Transmit timestamp: read right before this reply's own sendto (not once
                        # per batch). ntp64_from_ns inlined, with the second's part cached.
                        t = read_ns()
                        if not sec_ns <= t < sec_end:
                            sec_ns, sec_end, sec_ntp = self._second(t)
                        ts = (sec_ntp + ((t - sec_ns) * _FRAC + _HALF_NS) // _NS) & _MASK64
                        sendto(head + pack_ts(ts) + tail if tail else head + pack_ts(ts), addr)
                except OSError as e:
                    counters.send_errors += 1
                    log.debug("send to %s failed: %s", addr[0], e)
            if n < count:
                return

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self.sock.close()
