"""The UDP edge over real loopback sockets: kernel timestamps, oversize, IPv6, errors counted, the compiled wait.

Both serving paths are exercised where it matters: the Python reference (``fast=False``) and the
compiled data plane (``fast=True``, where it is built). The compiled wait runs inside a real
:class:`~appliance.io.loop.EventLoop`: plain requests are answered without the socket's Python
callback, the rest by Python, and timers, signals and stop() still get through.
"""

from __future__ import annotations

import ipaddress
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from status_sample import SNAP
from support import replies_before_marker

from appliance.config.model import Discard, Location, RestrictRule
from appliance.io import fastpath
from appliance.io.fastpath import FastRateLimiter
from appliance.io.loop import EventLoop
from appliance.io.udp import SO_TIMESTAMPNS, UdpServerSocket, compiled_wait
from appliance.ntp import mode6
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.packet import MAX_DATAGRAM
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer
from appliance.state import local_clock_state
from appliance.timebase import NS_PER_S, ns_from_ntp64, ntp64_from_ns

needs_build = pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
PLANES = ["python", pytest.param("compiled", marks=needs_build)]
#: A served clock far from the kernel's: a reply's receive timestamp near the kernel's time came from the kernel.
FAKE_NOW = 1_900_000_000 * NS_PER_S
IP_RECVERR = 11  # Linux; the socket module does not export it


def _server() -> NtpServer:
    limiter = FastRateLimiter(Discard()) if fastpath.available() else RateLimiter(Discard())
    return NtpServer(AccessTable.from_rules([]), limiter, state=local_clock_state(10, -20, time.time_ns()))


@pytest.fixture
def client() -> Iterator[socket.socket]:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    yield c
    c.close()


def _serve_once(sock: UdpServerSocket, client: socket.socket, payloads: list[bytes]) -> list[bytes]:
    for p in payloads:
        client.sendto(p, sock.address)
    assert select.select([sock.sock], [], [], 2.0)[0], "the datagrams never arrived"
    time.sleep(0.01)  # all of them queued: one wake-up reads them all
    sock.on_readable()
    return replies_before_marker(sock.sock, client)


@pytest.mark.parametrize("plane", ["python"])
def test_receive_timestamp_is_the_kernels_and_transmit_the_served_clock(plane: str, client: socket.socket) -> None:
    """The served clock reads FAKE_NOW; the receive timestamp still comes from the kernel (SO_TIMESTAMPNS)."""
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, read_ns=lambda: FAKE_NOW)
    try:
        request, xmt = client_request(FAKE_NOW)
        sent = time.time_ns()
        (reply,) = _serve_once(sock, client, [request])
        rx, tx = struct.unpack("!QQ", reply[32:48])
        assert struct.unpack("!Q", reply[24:32])[0] == xmt
        assert abs(ns_from_ntp64(rx, sent) - sent) < NS_PER_S  # the kernel's time, not the served clock's
        assert tx == ntp64_from_ns(FAKE_NOW)  # read from the served clock right before the send
        assert sock.counters.no_timestamp == 0
        assert server.counters.served == 1
    finally:
        sock.close()


def test_kernel_timestamps_are_mapped_onto_the_served_clock(client: socket.socket) -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, from_kernel_ns=lambda t: t + 10 * NS_PER_S)
    try:
        request, _ = client_request(time.time_ns())
        sent = time.time_ns()
        (reply,) = _serve_once(sock, client, [request])
        rx = ns_from_ntp64(struct.unpack("!Q", reply[32:40])[0], sent)
        assert 9 * NS_PER_S < rx - sent < 11 * NS_PER_S
    finally:
        sock.close()


@pytest.mark.parametrize("plane", PLANES)
def test_a_datagram_without_a_kernel_timestamp_is_stamped_on_arrival_and_counted(
    plane: str, client: socket.socket
) -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    assert sock.data_plane == plane
    sock.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 0)
    try:
        request, _ = client_request(time.time_ns())
        before = time.time_ns()
        (reply,) = _serve_once(sock, client, [request])
        after = time.time_ns()
        rx = ns_from_ntp64(struct.unpack("!Q", reply[32:40])[0], before)
        assert before - 1000 <= rx <= after + 1000  # read by the server once the datagram was read
        assert sock.counters.no_timestamp == 1
    finally:
        sock.close()


@pytest.mark.parametrize("plane", PLANES)
def test_oversize_is_dropped_and_counted_and_the_rest_served(plane: str, client: socket.socket) -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    try:
        request, _ = client_request(time.time_ns())
        replies = _serve_once(sock, client, [request + bytes(MAX_DATAGRAM), request, bytes(MAX_DATAGRAM + 1)])
        assert len(replies) == 1 and len(replies[0]) == 48
        assert server.counters.dropped == {"oversize": 2}
        assert server.counters.received == 3 and server.counters.served == 1
    finally:
        sock.close()


@pytest.mark.parametrize("plane", PLANES)
def test_ipv6_is_served_with_kernel_timestamps(plane: str) -> None:
    server = _server()
    try:
        sock = UdpServerSocket("::1", 0, server, fast=plane == "compiled")
    except OSError:
        pytest.skip("::1 is not configured here")
    client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        assert sock.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        client.bind(("::1", 0))
        request, xmt = client_request(time.time_ns())
        sent = time.time_ns()
        (reply,) = _serve_once(sock, client, [request])
        assert struct.unpack("!Q", reply[24:32])[0] == xmt
        assert abs(ns_from_ntp64(struct.unpack("!Q", reply[32:40])[0], sent) - sent) < NS_PER_S
        assert sock.counters.no_timestamp == 0 and server.counters.served == 1
    finally:
        client.close()
        sock.close()


@pytest.mark.parametrize("plane", PLANES)
def test_an_icmp_error_on_the_socket_is_counted_not_fatal(plane: str) -> None:
    """A client gone before its reply: the port-unreachable surfaces on the socket (IP_RECVERR) and is counted."""
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    sock.sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stays = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stays.bind(("127.0.0.1", 0))
        gone.bind(("127.0.0.1", 0))
        request, _ = client_request(time.time_ns())
        gone.sendto(request, sock.address)
        assert select.select([sock.sock], [], [], 2.0)[0]
        gone.close()  # the reply goes to a closed port: ICMP port unreachable
        sock.on_readable()
        stays.sendto(request, sock.address)
        assert select.select([sock.sock], [], [], 2.0)[0]
        sock.on_readable()
        sock.on_readable()
        c = sock.counters
        assert c.receive_errors == 1 and c.send_errors == 0  # read from the socket before the next reply
        assert select.select([stays], [], [], 2.0)[0], "the next client went unanswered"
        assert len(stays.recv(2048)) == 48
    finally:
        stays.close()
        sock.close()


def test_a_send_error_is_counted(client: socket.socket) -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server)
    try:
        request, _ = client_request(time.time_ns())
        sock._reply(request, ("127.0.0.1", 0), time.time_ns())  # port 0: the kernel refuses the sendto
        assert sock.counters.send_errors == 1 and server.counters.served == 1
    finally:
        sock.close()


def test_the_compiled_plane_is_asked_for_not_assumed() -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server)
    try:
        assert sock.data_plane == "python"
        assert compiled_wait([sock]) is None  # nothing for compiled code to wait for
    finally:
        sock.close()


# -- the compiled wait, inside the event loop -----------------------------------------------------------


class _Running:
    """A loop serving ``sock`` with the compiled wait, on a thread; ``on_readable`` calls are counted."""

    def __init__(self, sock: UdpServerSocket) -> None:
        self.sock = sock
        self.loop = EventLoop()
        self.python_wakeups = 0
        self.loop.add_reader(sock, self._on_readable)
        self.loop.set_wait(compiled_wait([sock]))
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def _on_readable(self) -> None:
        self.python_wakeups += 1
        self.sock.on_readable()

    def __enter__(self) -> _Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.stop()
        self.thread.join(5)
        assert not self.thread.is_alive(), "stop() from another thread did not end the compiled wait"
        self.loop.close()
        self.sock.close()


def _ask(client: socket.socket, address: tuple[str, int], payload: bytes) -> bytes:
    client.sendto(payload, address)
    assert select.select([client], [], [], 2.0)[0], "no reply"
    return client.recv(2048)


@needs_build
def test_compiled_wait_answers_plain_requests_without_python(client: socket.socket) -> None:
    server = _server()
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=True)
    with _Running(sock) as running:
        for _ in range(20):
            request, xmt = client_request(time.time_ns())
            reply = _ask(client, sock.address, request)
            assert struct.unpack("!Q", reply[24:32])[0] == xmt
            time.sleep(0.002)  # one wake-up each
        request, _ = client_request(time.time_ns())
        mac = request + struct.pack("!I", 1) + bytes(16)  # key 1, unknown: a crypto-NAK from the Python server
        assert len(_ask(client, sock.address, mac)) == 52
        deadline = time.monotonic() + 3.0
        while server.counters.received < 21 and time.monotonic() < deadline:
            time.sleep(0.02)  # the counts are taken when the wait returns: within 1 s of the first reply
        assert running.python_wakeups == 0  # not one reader callback: C waited, answered and handed over
        assert server.counters.served == 21 and server.counters.received == 21


@needs_build
def test_timers_run_while_the_compiled_wait_serves(client: socket.socket) -> None:
    sock = UdpServerSocket("127.0.0.1", 0, _server(), fast=True)
    ticks: list[float] = []
    running = _Running(sock)
    running.loop.call_every(0.05, lambda: ticks.append(time.monotonic()))  # before the loop's thread starts
    with running:
        deadline = time.monotonic() + 3.0
        while len(ticks) < 5 and time.monotonic() < deadline:
            request, _ = client_request(time.time_ns())
            _ask(client, sock.address, request)
            time.sleep(0.005)
    assert len(ticks) >= 5
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) < 0.5  # each timer on time, traffic or not


@needs_build
def test_a_signal_reaches_its_callback_during_the_compiled_wait(client: socket.socket) -> None:
    """On the main thread (signals go there): SIGUSR1 from another thread ends the run through its callback."""
    sock = UdpServerSocket("127.0.0.1", 0, _server(), fast=True)
    loop = EventLoop()
    got: list[str] = []
    loop.add_reader(sock, sock.on_readable)
    loop.set_wait(compiled_wait([sock]))
    loop.on_signal(signal.SIGUSR1, lambda: (got.append("usr1"), loop.stop()))

    def poke() -> None:
        time.sleep(0.2)
        request, _ = client_request(time.time_ns())
        got.append(f"reply {len(_ask(client, sock.address, request))}")
        os.kill(os.getpid(), signal.SIGUSR1)

    helper = threading.Thread(target=poke)
    try:
        helper.start()
        start = time.monotonic()
        loop.run()
        assert time.monotonic() - start < 3.0
        helper.join(5)
        assert got == ["reply 48", "usr1"]
    finally:
        loop.close()
        sock.close()


@needs_build
def test_the_native_wait_checks_its_arguments() -> None:
    from appliance.io import _fastpath as fp  # type: ignore[attr-defined]

    sock = UdpServerSocket("127.0.0.1", 0, _server(), fast=True)
    loop = EventLoop()
    try:
        fd = loop._sel.fileno()
        native = sock._fast._native  # type: ignore[union-attr]
        with pytest.raises(TypeError):
            fp.wait(fd, (object(),), 0.0, 1)
        with pytest.raises(TypeError):
            fp.wait(fd, [native], 0.0, 1)  # a tuple, not a list
        with pytest.raises(ValueError):
            fp.wait(fd, (native,), -1.0, 1)
        with pytest.raises(ValueError):
            fp.wait(fd, (native,), 0.0, -1)
        with pytest.raises(ValueError):
            fp.wait(fd, (native,) * 17, 0.0, 1)
        with pytest.raises(OSError):
            fp.wait(-1, (native,), 0.0, 1)  # not an epoll descriptor
        assert fp.wait(fd, (native,), 0.0, 1) is None  # nothing ready: back at once
        start = time.monotonic()
        assert fp.wait(fd, (), 0.05, 1) is None  # no server: a plain wait of the timeout
        assert 0.04 <= time.monotonic() - start < 1.0
        native.close()
        with pytest.raises(ValueError, match="closed"):
            fp.wait(fd, (native,), 0.0, 1)
    finally:
        loop.close()
        sock.close()


@needs_build
def test_a_second_wait_or_serve_while_one_waits_is_refused() -> None:
    from appliance.io import _fastpath as fp  # type: ignore[attr-defined]

    sock = UdpServerSocket("127.0.0.1", 0, _server(), fast=True)
    loop = EventLoop()
    loop.add_reader(sock, sock.on_readable)
    try:
        fd = loop._sel.fileno()
        native = sock._fast._native  # type: ignore[union-attr]
        waiting = threading.Thread(target=fp.wait, args=(fd, (native,), 0.5, 1))
        waiting.start()
        time.sleep(0.1)  # in epoll_wait, the GIL let go
        with pytest.raises(RuntimeError, match="one thread"):
            fp.wait(fd, (native,), 0.0, 1)
        with pytest.raises(RuntimeError, match="one thread"):
            native.serve(1)
        waiting.join(5)
        assert native.serve(1) is None  # free again
    finally:
        loop.close()
        sock.close()


@pytest.mark.parametrize("plane", PLANES)
def test_a_mode6_answer_in_fragments_leaves_as_one_datagram_each(plane: str, client: socket.socket) -> None:
    sources = tuple(replace(SNAP.sources[1], assoc_id=1000 + i) for i in range(200))
    snap = replace(SNAP, sources=sources)
    server = _server()
    localhost = RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), Location("test.conf", 1))
    server.access = AccessTable.from_rules([localhost])  # without noquery, as ntpq's own machine is
    server.control = mode6.ControlHandler(snapshot=lambda: snap)
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    try:
        request = mode6.HEADER.pack(2 << 3 | 6, mode6.OP_READSTAT, 5, 0, 0, 0, 0)
        replies = _serve_once(sock, client, [request])
        assert [len(r) for r in replies] == [12 + mode6.MAX_DATA, 12 + 4 * 200 - mode6.MAX_DATA]
        assert [mode6.HEADER.unpack_from(r)[5] for r in replies] == [0, mode6.MAX_DATA]  # offsets
        assert [bool(r[1] & 0x20) for r in replies] == [True, False]  # "more" on the first only
    finally:
        sock.close()
