"""The compiled data plane answers exactly as the Python server does, and leaves the rest to it.

The Python modules are the specification; these tests hold the C code to it:
- differentially, for random requests, source addresses, ports, times, restrict tables and
  system states: the same reply octet for octet (transmit timestamp included, given the same
  clock reading), the same drops, the same limiter verdicts and counters;
- over a real loopback socket: plain requests are answered by C, everything else by Python,
  and the counters add up; a datagram over 1024 octets is dropped and counted on every path;
- from Python, misused: objects never set up, set up twice, left in garbage cycles, given
  out-of-range arguments, a prefix callback that closes, re-enters or changes the server, and a
  second serve() at once. (tests/sanitize/run runs this file with the extension built under
  AddressSanitizer and UndefinedBehaviorSanitizer, which turns a silent corruption into a failure.)
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import replies_before_marker

from appliance.clock.soft import SoftClock
from appliance.config.model import Discard, Location, RestrictRule
from appliance.config.parser import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.io import fastpath
from appliance.io.fastpath import DROP, KOD, PUNT, REPLY, FastMru, FastRateLimiter, FastServer
from appliance.io.udp import UdpServerSocket
from appliance.ntp.access import FLAG_BITS, AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.interleave import mark_receive, may_interleave
from appliance.ntp.mru import MruTable
from appliance.ntp.packet import MAX_DATAGRAM
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, finish_reply
from appliance.state import SystemState, local_clock_state
from appliance.timebase import NS_PER_S, ns_from_ntp64, ntp64_from_ns

needs_build = pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
HERE = Location("fast.conf", 1)
NOW = 1_795_000_000 * NS_PER_S


def test_built_where_ci_runs() -> None:
    """CI installs with a compiler: there the data plane must exist (elsewhere it is optional)."""
    if os.environ.get("CI") == "true":
        assert fastpath.available(), "appliance.io._fastpath was not built"


@needs_build
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_timestamp_conversion_matches_timebase(t: int) -> None:
    """Any int64, the ends included: the seconds wrap as on the wire, with no overflow on the way."""
    native = pytest.importorskip("appliance.io._fastpath")
    assert native.ntp64_from_ns(t) == ntp64_from_ns(t)
    assert native.ntp64_from_ns(-(2**63)) == ntp64_from_ns(-(2**63))
    assert native.ntp64_from_ns(2**63 - 1) == ntp64_from_ns(2**63 - 1)


# -- differential: random tables, states and traffic --------------------------------------------

ADDRESSES = [
    "192.0.2.1",
    "192.0.2.77",
    "198.51.100.9",
    "10.1.2.3",
    "127.0.0.1",
    "224.0.0.1",  # multicast: always ignored
    "2001:db8::1",
    "2001:db8:0:1::5",
    "fe80::1",
    "::1",
    "ff02::1",
]
FLAGS = sorted(FLAG_BITS)


@st.composite
def restrict_rules(draw: st.DrawFn) -> list[RestrictRule]:
    rules = []
    if draw(st.booleans()):  # the tutorials' pool line, so that limiting and KoD come up often
        rules.append(RestrictRule(None, None, frozenset({"kod", "limited", "nomodify", "noquery"}), HERE))
    for _ in range(draw(st.integers(0, 6))):
        flags = frozenset(draw(st.lists(st.sampled_from(FLAGS), max_size=4)))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            rules.append(RestrictRule(None, draw(st.sampled_from([None, 4, 6])), flags, HERE))
            continue
        base = draw(st.sampled_from(ADDRESSES))
        width = 32 if ":" not in base else 128
        plen = draw(st.integers(0 if kind == 1 else width // 2, width))
        network = ipaddress.ip_network(f"{base}/{plen}", strict=False)
        rules.append(RestrictRule(network, network.version, flags, HERE))
    return rules


def states() -> st.SearchStrategy[SystemState]:
    synced = st.builds(
        SystemState,
        leap=st.integers(0, 2),
        stratum=st.integers(1, 15),
        precision=st.integers(-30, -5),
        root_delay_ns=st.integers(0, 10**9),
        root_dispersion_ns=st.integers(0, 10**9),
        refid=st.binary(min_size=4, max_size=4),
        reference_ns=st.integers(NOW - 10**12, NOW),
        public_unsync=st.booleans(),
    )
    return st.one_of(st.just(SystemState()), synced)


def _authenticated_and_long(total: int) -> bytes:
    """A v4 request whose first 1024 octets are a valid request with an extension field and an MD5 MAC.

    Cut to 1024 octets it would be served (a crypto-NAK); whole, it is ``total`` octets: oversize.
    """
    data, _ = client_request(NOW - 5000)
    ef_len = MAX_DATAGRAM - len(data) - 20
    head = data + struct.pack("!HH", 0x0104, ef_len) + bytes(ef_len - 4) + struct.pack("!I", 1) + bytes(16)
    assert len(head) == MAX_DATAGRAM
    return head + bytes(total - MAX_DATAGRAM)


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind <= 2:  # a plain request, of any version
        data, _ = client_request(NOW - 5000, version=draw(st.integers(1, 4)), poll=draw(st.integers(0, 17)))
        return bytes([data[0] & 0xC0 | draw(st.integers(0, 7)) << 3 | 3]) + data[1:] if kind == 2 else data
    if kind == 3:  # anything of 48 octets
        return draw(st.binary(min_size=48, max_size=48))
    if kind == 4:  # oversize: a plain request with anything after it, or a request valid in its first 1024
        total = draw(st.integers(MAX_DATAGRAM + 1, 1600))
        if draw(st.booleans()):
            return _authenticated_and_long(total)
        data, _ = client_request(NOW - 5000)
        return data + draw(st.binary(min_size=total - 48, max_size=total - 48))
    if kind == 5:  # either side of the limit
        return draw(st.binary(min_size=MAX_DATAGRAM - 1, max_size=MAX_DATAGRAM + 1))
    return draw(st.binary(max_size=120))


def _plain(data: bytes) -> bool:
    """A request the compiled plane answers: 48 octets, mode 3, and not one that may be interleaved."""
    interleaved = may_interleave(int.from_bytes(data[24:32], "big"), data[32:40], data[40:48])
    return len(data) == 48 and data[0] & 7 == 3 and 1 <= (data[0] >> 3) & 7 <= 4 and not interleaved


@needs_build
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=restrict_rules(),
    state=states(),
    discard=st.sampled_from([Discard(), Discard(average_log2=0, minimum_s=0, burst=2), Discard(minimum_s=1)]),
    events=st.lists(
        st.tuples(
            datagrams(),
            st.sampled_from(ADDRESSES),
            st.sampled_from([123, 40000]),
            st.one_of(st.integers(0, 10_000_000), st.integers(-2 * NS_PER_S, 3 * NS_PER_S)),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_same_answers_as_the_python_server(
    rules: list[RestrictRule], state: SystemState, discard: Discard, events: list[tuple[bytes, str, int, int]]
) -> None:
    table = AccessTable.from_rules(rules)
    reference = NtpServer(table, RateLimiter(discard, kod_per_second=2.0, kod_burst=2), state=state)
    subject = NtpServer(table, FastRateLimiter(discard, kod_per_second=2.0, kod_burst=2), state=state, mru=FastMru(4))
    fast = FastServer(-1, subject)
    reference.mru = MruTable(4)
    t = NOW
    for data, ip, port, step in events:
        t += step
        tx = t + 12_345
        expected = reference.handle(data, ip, port, t)
        want = None if expected is None else finish_reply(*expected, tx)
        action, reply = fast.handle(data, ip, port, t, tx)
        if action == PUNT:
            assert not _plain(data), "a plain request was left to Python"
            got = subject.handle(data, ip, port, t)  # the socket hands it to the Python path
            reply = None if got is None else finish_reply(*got, tx)
        else:
            assert action in (DROP, REPLY, KOD)
            assert (action == DROP) == (want is None)
            if action == KOD:
                assert reply is not None and reply[1] == 0 and reply[12:16] == b"RATE"
        assert reply == want, (data.hex(), ip, port)
    fast.take_counters(lambda *_: None)
    assert subject.counters == reference.counters
    for name in ("passed", "limited", "kod_sent", "kod_suppressed"):
        assert getattr(subject.limiter, name) == getattr(reference.limiter, name), name
    assert subject.mru.entries() == reference.mru.entries()  # the same clients seen, on either path


@needs_build
def test_state_change_takes_effect_within_the_second() -> None:
    server = NtpServer(AccessTable.from_rules([]), FastRateLimiter(Discard()), state=local_clock_state(10, -20, NOW))
    fast = FastServer(-1, server)
    data, _ = client_request(NOW - 5000)
    _, before = fast.handle(data, "192.0.2.1", 40000, NOW, NOW + 1)
    server.set_state(local_clock_state(7, -20, NOW))
    _, after = fast.handle(data, "192.0.2.1", 40000, NOW + 1000, NOW + 1001)
    assert before is not None and after is not None
    assert (before[1], after[1]) == (10, 7)


@needs_build
def test_limited_clients_go_to_python_without_a_compiled_limiter() -> None:
    rules = [RestrictRule(None, None, frozenset({"limited", "kod"}), HERE)]
    server = NtpServer(AccessTable.from_rules(rules), RateLimiter(Discard()), state=local_clock_state(10, -20, NOW))
    fast = FastServer(-1, server)
    data, _ = client_request(NOW - 5000)
    assert fast.handle(data, "192.0.2.1", 40000, NOW, NOW + 1) == (PUNT, None)


def test_bad_limiter_parameters_are_refused_as_in_python() -> None:
    if not fastpath.available():
        pytest.skip("the compiled data plane is not built here")
    with pytest.raises(ValueError, match="ways"):
        FastRateLimiter(Discard(), ways=3)
    with pytest.raises(ValueError, match="not an IP address"):
        FastRateLimiter(Discard()).check("not-an-address", NOW)


# -- over a real socket ---------------------------------------------------------------------------

RULES = [
    RestrictRule(None, None, frozenset({"kod", "limited", "nomodify", "notrap", "nopeer", "noquery"}), HERE),
    RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), HERE),
    RestrictRule(ipaddress.ip_network("127.0.0.2/32"), 4, frozenset({"ignore"}), HERE),
]


def _exchange(server_sock: UdpServerSocket, client: socket.socket, payloads: list[bytes]) -> list[bytes]:
    for p in payloads:
        client.sendto(p, server_sock.address)
    select.select([server_sock.sock], [], [], 2.0)
    server_sock.on_readable()
    # the replies were sent before on_readable returned: an end marker sent now by the same socket comes after them
    return replies_before_marker(server_sock.sock, client)


@contextlib.contextmanager
def _serving(
    rules: list[RestrictRule],
    client_address: str,
    limiter: FastRateLimiter | RateLimiter | None = None,
    plane: str = "compiled",
) -> Iterator[tuple[NtpServer, UdpServerSocket, socket.socket]]:
    """A server on a 127.0.0.1 socket and a client socket bound to ``client_address``.

    ``plane``: "compiled" (the C data plane) or "plain" (the Python reference, recvmsg).
    """
    server = NtpServer(
        AccessTable.from_rules(rules), limiter or FastRateLimiter(Discard()), state=local_clock_state(10, -20, NOW)
    )
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind((client_address, 0))
        yield server, sock, client
    finally:
        client.close()
        sock.close()


@needs_build
def test_socket_serves_plain_requests_in_c_and_the_rest_in_python() -> None:
    with _serving(RULES, "127.0.0.1") as (server, sock, client):
        assert sock.data_plane == "compiled"
        plain, xmt = client_request(NOW)
        mac = plain + struct.pack("!I", 1) + bytes(16)  # key 1, MD5-sized digest: a crypto-NAK from Python
        control = bytes([0x16, 0x01]) + bytes(10)  # mode 6 READSTAT: 127.0.0.1 may query
        private = bytes([0x17]) + bytes(47)  # mode 7: never answered
        replies = _exchange(sock, client, [plain, mac, control, private])
        by_len = sorted(replies, key=len)
        assert len(replies) == 3, [r.hex() for r in replies]
        time_reply = next(r for r in by_len if len(r) == 48)
        assert time_reply[0] & 7 == 4 and time_reply[1] == 10
        assert struct.unpack("!Q", time_reply[24:32])[0] == xmt
        rx, tx = struct.unpack("!QQ", time_reply[32:48])
        assert rx <= tx
        assert any(len(r) == 52 for r in replies)  # the crypto-NAK came from the Python path
        assert any(r[0] & 7 == 6 for r in replies)  # so did the mode 6 answer
        c = server.counters
        assert c.received == 4
        assert c.served == 2 and c.control == 1 and c.dropped == {"mode7": 1}


@needs_build
def test_socket_drops_ignored_sources_and_counts_them() -> None:
    with _serving(RULES, "127.0.0.2") as (server, sock, client):
        plain, _ = client_request(NOW)
        assert _exchange(sock, client, [plain, plain]) == []
        assert server.counters.dropped == {"ignore": 2} and server.counters.received == 2


@needs_build
def test_socket_limits_a_flood_with_the_shared_table() -> None:
    rules = [RestrictRule(None, None, frozenset({"kod", "limited"}), HERE)]
    limiter = FastRateLimiter(Discard())
    with _serving(rules, "127.0.0.1", limiter) as (server, sock, client):
        plain, _ = client_request(NOW)
        replies = _exchange(sock, client, [plain] * 20)
        served = [r for r in replies if r[1] != 0]
        kods = [r for r in replies if r[1] == 0 and r[12:16] == b"RATE"]
        assert len(served) == 3  # the short-term bucket: three, then one per 2 s
        assert len(kods) == 1  # one KoD per 8 s for this client
        assert "127.0.0.1" in limiter and limiter.limited == 17
        assert server.counters.dropped == {"rate": 16} and server.counters.kod_sent == 1


def test_fast_socket_refuses_a_mapped_clock_without_its_map() -> None:
    server = NtpServer(AccessTable.from_rules([]), RateLimiter(Discard()))
    with pytest.raises(ValueError, match="CLOCK_REALTIME"):
        UdpServerSocket("127.0.0.1", 0, server, fast=True, from_kernel_ns=lambda t: t)
    with pytest.raises(ValueError, match="CLOCK_REALTIME"):
        UdpServerSocket("127.0.0.1", 0, server, fast=True, clock_map=SoftClock(time.time_ns).clock_map())


# -- a soft clock served from C ---------------------------------------------------------------------

_clock_ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 10**11)),
        st.tuples(st.just("frequency"), st.floats(-600_000, 600_000, allow_nan=False)),
        st.tuples(st.just("offset"), st.integers(-(10**10), 10**10)),
        st.tuples(st.just("step"), st.integers(-(10**13), 10**13)),
        st.tuples(st.just("leap"), st.integers(0, 2)),
    ),
    max_size=12,
)


@needs_build
@settings(max_examples=300, deadline=None)
@given(ops=_clock_ops, queries=st.lists(st.integers(-(10**11), 10**12), min_size=1, max_size=8))
def test_the_c_map_reads_the_soft_clock_to_the_nanosecond(ops: list[tuple[str, Any]], queries: list[int]) -> None:
    """After any run of frequency changes, slews, steps and leap seconds, C maps each base time as Python does."""
    base = [NOW - 3 * 3600 * NS_PER_S + 7]  # three hours before a midnight UTC: a leap armed here can happen
    clock = SoftClock(lambda: base[0])
    fast = FastServer(-1, NtpServer(AccessTable.from_rules([]), RateLimiter(Discard())))
    clock.watch(fast.set_clock_map)
    for op, value in ops:
        if op == "advance":
            base[0] += value
        elif op == "frequency":
            clock.set_frequency_ppb(value)
        elif op == "offset":
            clock.accrue_offset_ns(value)
        elif op == "step":
            clock.step_ns(value)
        else:
            clock.set_leap(value)
    for q in queries:
        assert fast.served_ns(base[0] + q) == clock.at_base_ns(base[0] + q)
    # the real clock's readings too, with the leap second that lies ahead
    midnight = (clock.now_ns() // 86_400 // NS_PER_S + 1) * 86_400 * NS_PER_S
    for t in (midnight - NS_PER_S - 1, midnight - 1, midnight, midnight + 1):
        b = base[0] + (t - clock.now_ns())
        if b > 0:
            assert fast.served_ns(b) == clock.at_base_ns(b)


@needs_build
def test_a_clock_map_out_of_range_is_refused_and_extremes_stay_defined() -> None:
    fast = FastServer(-1, NtpServer(AccessTable.from_rules([]), RateLimiter(Discard())))
    good = SoftClock(lambda: NOW).clock_map()
    assert good is not None
    for bad, error in [
        (good._replace(frequency_ppb=float("nan")), ValueError),
        (good._replace(slew_rate_ppm=0.0), ValueError),
        (good._replace(local_frac=1.5), ValueError),
        (good._replace(base_anchor=2**62), OverflowError),
        (good._replace(leap_at=-(2**62)), OverflowError),
        (good._replace(leap_step=2**62), OverflowError),
        ((1, 2, 3), TypeError),
    ]:
        with pytest.raises(error):
            fast.set_clock_map(bad)  # type: ignore[arg-type]
    assert fast.served_ns(NOW) == NOW  # the last good map stays: none yet, CLOCK_REALTIME itself
    # anchors and times at opposite ends, the largest leap step: saturated, never undefined (the sanitizer run)
    far = good._replace(base_anchor=-(2**62) + 1, local_anchor=2**62 - 1, frequency_ppb=1e8, pending_ns=1e18)
    fast.set_clock_map(far._replace(leap_at=0, leap_step=2**61))
    assert fast.served_ns(2**62 - 1) == 2**63 - 1
    fast.set_clock_map(far._replace(base_anchor=2**62 - 1, local_anchor=-(2**62) + 1))
    assert fast.served_ns(0) == -(2**63) + 1


@needs_build
def test_a_soft_clock_is_served_from_c_with_its_own_time() -> None:
    """A soft clock 5 s ahead and 100 ppm fast, slewing 2 ms: the compiled plane's T2 and T3 are its readings."""
    clock = SoftClock(time.time_ns)
    clock.step_ns(5 * NS_PER_S)
    clock.set_frequency_ppb(100_000)
    clock.accrue_offset_ns(2_000_000)
    server = NtpServer(
        AccessTable.from_rules(RULES), FastRateLimiter(Discard()), state=local_clock_state(10, -20, clock.now_ns())
    )
    sock = UdpServerSocket(
        "127.0.0.1",
        0,
        server,
        read_ns=clock.now_ns,
        from_kernel_ns=clock.at_base_ns,
        fast=True,
        clock_map=clock.clock_map(),
    )
    clock.watch(sock.set_clock_map)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind(("127.0.0.1", 0))
        assert sock.data_plane == "compiled"
        for _ in range(3):
            clock.set_frequency_ppb(clock.frequency_ppb() - 20_000)  # each change reaches the compiled plane
            before = clock.now_ns()
            (reply,) = _exchange(sock, client, [client_request(NOW)[0]])
            after = clock.now_ns()
            rx, tx = (ns_from_ntp64(v, before) for v in struct.unpack("!QQ", reply[32:48]))
            assert before - 1 <= rx <= tx <= after + 1  # within the conversion's rounding to 2**-32 s
        assert server.counters.served == 3
    finally:
        clock.unwatch(sock.set_clock_map)
        client.close()
        sock.close()


@needs_build
@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 here")
def test_socket_serves_ipv6_in_c() -> None:
    server = NtpServer(AccessTable.from_rules([]), FastRateLimiter(Discard()), state=local_clock_state(10, -20, NOW))
    try:
        sock = UdpServerSocket("::1", 0, server, fast=True)
    except OSError:
        pytest.skip("::1 is not configured here")
    client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        client.bind(("::1", 0))
        plain, xmt = client_request(NOW)
        (reply,) = _exchange(sock, client, [plain])
        assert reply[1] == 10 and struct.unpack("!Q", reply[24:32])[0] == xmt
        assert server.counters.served == 1 and server.counters.received == 1
    finally:
        client.close()
        sock.close()


@pytest.mark.parametrize("plane", ["compiled", "plain"])
def test_oversize_datagrams_are_dropped_and_counted_on_every_path(plane: str) -> None:
    """Over 1024 octets: no reply and one "oversize" drop, even when the first 1024 would be served."""
    if plane == "compiled" and not fastpath.available():
        pytest.skip("the compiled data plane is not built here")
    limiter = FastRateLimiter(Discard()) if fastpath.available() else RateLimiter(Discard())
    with _serving(RULES, "127.0.0.1", limiter, plane) as (server, sock, client):
        assert sock.data_plane == ("compiled" if plane == "compiled" else "python")
        plain, _ = client_request(NOW)
        cut = _authenticated_and_long(MAX_DATAGRAM)
        replies = _exchange(sock, client, [_authenticated_and_long(1500), plain + bytes(2000), cut, plain])
        assert sorted(len(r) for r in replies) == [48, 52]  # the request of 1024 and the plain one
        assert server.counters.dropped == {"oversize": 2}
        assert server.counters.received == 4 and server.counters.served == 2


# -- which data plane the daemon picks --------------------------------------------------------------


def _appliance(config_text: str, **settings: object) -> Appliance:
    config = parse_config(config_text, "fast.conf")
    return Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0, **settings))  # type: ignore[arg-type]


@needs_build
def test_daemon_serves_the_machine_clock_from_the_compiled_path() -> None:
    app = _appliance("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n")
    try:
        assert [s.data_plane for s in app.sockets] == ["compiled"]
        assert isinstance(app.server.limiter, FastRateLimiter)
    finally:
        app.close()


def test_daemon_python_path_when_asked_or_when_the_clock_is_not_realtime() -> None:
    app = _appliance("server 127.127.1.0\n", fastpath=False)
    try:
        assert [s.data_plane for s in app.sockets] == ["python"]
        assert isinstance(app.server.limiter, RateLimiter)
    finally:
        app.close()
    config = parse_config("server 127.0.0.1 iburst\n", "fast.conf")  # an upstream (loopback): a soft clock...
    settings = ServeSettings(listen=("127.0.0.1",), port=0, clock="soft")
    other = Appliance(config, settings, read_ns=lambda: time.time_ns() + 1)  # ...over a clock not CLOCK_REALTIME
    try:
        assert [s.data_plane for s in other.sockets] == ["python"]
    finally:
        other.close()


@needs_build
def test_daemon_serves_a_soft_clock_over_the_machine_clock_from_the_compiled_path() -> None:
    soft = _appliance("server 127.0.0.1 iburst\n", clock="soft")
    try:
        assert [s.data_plane for s in soft.sockets] == ["compiled"]
        assert isinstance(soft.clock, SoftClock)
        soft.clock.step_ns(3 * NS_PER_S)  # the served time follows the soft clock's step
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            client.bind(("127.0.0.1", 0))
            before = soft.clock.now_ns()
            (reply,) = _exchange(soft.sockets[0], client, [client_request(NOW)[0]])
            rx = ns_from_ntp64(struct.unpack("!Q", reply[32:40])[0], before)
            assert before - 1 <= rx <= soft.clock.now_ns() + 1
        finally:
            client.close()
    finally:
        soft.close()


# -- misuse from Python ---------------------------------------------------------------------------

# Each line must raise TypeError; before, the first one crashed the interpreter (a table never set up).
_UNINITIALISED = [
    'fp.Limiter.__new__(fp.Limiter).check("192.0.2.1", 10**18)',
    '"192.0.2.1" in fp.Limiter.__new__(fp.Limiter)',
    "fp.Limiter.__new__(fp.Limiter).clients()",
    'fp.Server.__new__(fp.Server).handle(bytes([0x23]) + bytes(47), "192.0.2.1", 123, 10**18, 10**18)',
    "fp.Server.__new__(fp.Server).serve(1)",
    "object.__new__(FastRateLimiter)",
    "FastRateLimiter.__new__(FastRateLimiter)",
    "type('Sub', (fp.Server,), {})",
    "type('Sub', (fp.Limiter,), {'__new__': lambda cls: object.__new__(cls)})()",
    "copy.copy(FastRateLimiter(Discard()))",
]


@needs_build
def test_no_object_can_be_used_before_it_is_set_up() -> None:
    """In a child process, since the failure this guards against is a crash."""
    code = textwrap.dedent(
        f"""
        import copy
        from appliance.config.model import Discard
        from appliance.io import _fastpath as fp
        from appliance.io.fastpath import FastRateLimiter
        for line in {_UNINITIALISED!r}:
            try:
                eval(line)
            except TypeError:
                print("refused")
            else:
                print("ran:", line)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["refused"] * len(_UNINITIALISED), done.stdout


def _local_server(rules: list[RestrictRule] | None = None) -> NtpServer:
    """A server of the local clock at stratum 10 with the compiled limiter."""
    return NtpServer(
        AccessTable.from_rules(rules or []), FastRateLimiter(Discard()), state=local_clock_state(10, -20, NOW)
    )


@needs_build
def test_init_again_changes_nothing_and_leaks_nothing() -> None:
    limiter = FastRateLimiter(Discard(), slots=64, ways=4)
    for n in range(10):
        limiter.check("192.0.2.1", NOW + n)
    counts = (limiter.slots, limiter.passed, limiter.limited, limiter.clients())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            limiter.__init__(Discard(), slots=65536)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert (limiter.slots, limiter.passed, limiter.limited, limiter.clients()) == counts
    assert "192.0.2.1" in limiter
    assert grown < 64 * 1024, grown  # 200 tables of 65536 entries would be 600 MB


def _native_server(
    prefix: Callable[..., bytes], *, fd: int = -1, rules: list[RestrictRule] | None = None, limiter: object = None
) -> Any:
    v4, v6 = fastpath._rules(AccessTable.from_rules(rules or []))
    native = pytest.importorskip("appliance.io._fastpath")
    return native.Server(fd, v4, v6, prefix, limiter, FLAG_BITS)


@needs_build
def test_an_unclosed_pair_is_collected() -> None:
    """NtpServer and its data plane hold each other; dropped without close(), the collector frees both."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        refs = []
        for _ in range(20):
            server = _local_server()
            fast = FastServer(-1, server)
            fast.handle(client_request(NOW)[0], "192.0.2.1", 40000, NOW, NOW)
            refs.append(weakref.ref(server))
            del server, fast
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert [r() for r in refs] == [None] * 20
    assert grown < 1024 * 1024, grown  # each pair holds about 3.4 MB (the limiter's table, the prefixes)


@needs_build
def test_the_collector_can_clear_the_server_mid_cycle() -> None:
    """A cycle through the callback alone (no NtpServer): cleared, the object refuses to serve."""

    class Holder:
        native: Any = None

        def prefix(self, *args: object) -> bytes:
            return bytes(24)

    holder = Holder()
    holder.native = _native_server(holder.prefix)
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    assert ref() is None


BAD_CALLS: list[tuple[str, type[Exception]]] = [
    ("fast.handle(REQ, '192.0.2.1', 123, 2**62, NOW)", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', 123, -1, NOW)", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', 123, 2**63 - 1, NOW)", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', 123, 2**64, NOW)", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', 123, NOW, 2**62)", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', 123, NOW, -(2**63))", OverflowError),
    ("fast.handle(REQ, '192.0.2.1', -1, NOW, NOW)", ValueError),
    ("fast.handle(REQ, '192.0.2.1', 65536, NOW, NOW)", ValueError),
    ("fast.handle(REQ, '192.0.2.1', 2**40, NOW, NOW)", OverflowError),
    ("fast.handle(REQ, '192.0.2.300', 123, NOW, NOW)", ValueError),
    ("fast.handle(REQ, '1:' * 40, 123, NOW, NOW)", ValueError),
    ("fast.serve(-1)", ValueError),
    ("fast.serve(2**31)", OverflowError),
    ("limiter.check('192.0.2.1', 2**62)", OverflowError),
    ("limiter.check('192.0.2.1', -1)", OverflowError),
    ("limiter.check('192.0.2.1', 2**63)", OverflowError),
    ("fp.Limiter(-1, 0, 0, 0, 1, 0, 8, 8, 0, 0)", ValueError),
    ("fp.Limiter(2**60, 1, 0, 0, 1, 0, 8, 8, 0, 0)", ValueError),
    ("fp.Limiter(1, 0, 0, -5, 1, 0, 8, 8, 0, 0)", ValueError),
    ("fp.Limiter(1, 0, 0, 0, 2**62, 2**62, 8, 8, 0, 0)", ValueError),
    ("fp.Limiter(1, 0, 0, 0, 1, 0, 2**27, 8, 0, 0)", ValueError),
    ("fp.Limiter(1, 0, 0, 0, 1, 0, 8, 8, -1, 0)", OverflowError),
    ("fp.Limiter(1, 0, 0, 0, 1, 0, 8, 8, 0, 2**64)", OverflowError),
    ("fp.Limiter(1, 0, 0, 0, 1, 0, 8, 8, 0, 1.5)", TypeError),
    ("fp.Server(-2, [], [], prefix, None, FLAG_BITS)", ValueError),
    ("fp.Server(-1, [], [], prefix, None, {})", KeyError),
    ("fp.Server(-1, [], [], prefix, None, dict(FLAG_BITS, kod=3))", ValueError),
    ("fp.Server(-1, [], [], prefix, None, dict(FLAG_BITS, ignore=0))", ValueError),
    ("fp.Server(-1, [], [], prefix, None, dict(FLAG_BITS, kod=FLAG_BITS['limited']))", ValueError),
    ("fp.Server(-1, [(bytes(4), bytes(4), False, -1, True)], [], prefix, None, FLAG_BITS)", ValueError),
    ("fp.Server(-1, [(bytes(16), bytes(16), False, 0, True)], [], prefix, None, FLAG_BITS)", ValueError),
    ("fp.Server(-1, [[bytes(4), bytes(4), False, 0, True]], [], prefix, None, FLAG_BITS)", TypeError),
    ("fp.Server(-1, [], [], prefix, object(), FLAG_BITS)", TypeError),
    ("fp.Server(-1, [], [], 'not callable', None, FLAG_BITS)", TypeError),
]


@needs_build
@pytest.mark.parametrize(("call", "error"), BAD_CALLS, ids=[c for c, _ in BAD_CALLS])
def test_every_argument_is_range_checked(call: str, error: type[Exception]) -> None:
    native = pytest.importorskip("appliance.io._fastpath")
    server = _local_server()
    names = {
        "fast": FastServer(-1, server),
        "limiter": server.limiter,
        "fp": native,
        "prefix": server.reply_prefix,
        "REQ": client_request(NOW)[0],
        "NOW": NOW,
        "FLAG_BITS": FLAG_BITS,
    }
    with pytest.raises(error):
        eval(call, names)


@needs_build
def test_times_at_the_edges_of_the_range_are_served() -> None:
    """The limits themselves work, on a `limited` rule so that the limiter's arithmetic runs too."""
    rules = [RestrictRule(None, None, frozenset({"kod", "limited"}), HERE)]
    server = _local_server(rules)
    fast = FastServer(-1, server)
    req = client_request(NOW)[0]
    for t in (0, 2**62 - 1, 0, 2**62 - 1, 1):
        action, reply = fast.handle(req, "192.0.2.1", 40000, t, t)
        assert action in (REPLY, DROP, KOD)
        if action == REPLY:
            assert reply is not None and reply[32:40] == mark_receive(ntp64_from_ns(t)).to_bytes(8, "big")
    assert server.limiter.check("192.0.2.1", 2**62 - 1, True) in (0, 1, 2)


def _mischief(action: Callable[[Any], object], after: bool = False) -> tuple[Any, NtpServer, list[object]]:
    """A native server whose prefix callback does ``action(native)`` once, before answering (or ``after``)."""
    server = _local_server()
    seen: list[object] = []
    box: dict[str, Any] = {}

    def prefix(*args: Any) -> bytes:
        answer = server.reply_prefix(*args) if after else b""
        if not seen:
            seen.append("called")
            try:
                seen.append(action(box["native"]))
            except Exception as e:  # noqa: BLE001 - what it raised is what the test looks at
                seen.append(e)
        return answer or server.reply_prefix(*args)

    box["native"] = _native_server(prefix)
    return box["native"], server, seen


@needs_build
@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda n: n.invalidate(), id="invalidate"),
        pytest.param(lambda n: n.close(), id="close"),
        pytest.param(lambda n: n.handle(client_request(NOW)[0], "192.0.2.9", 123, NOW + 1, NOW + 1), id="handle"),
        pytest.param(lambda n: n.__init__(-1, [], [], lambda *a: bytes(24), None, FLAG_BITS), id="init-again"),
        pytest.param(lambda n: n.take_counters(), id="take-counters"),
        pytest.param(lambda n: gc.collect(), id="collect"),
    ],
)
def test_the_prefix_callback_may_do_anything(action: Callable[[Any], object]) -> None:
    """Whatever the callback does to the object, the reply in hand is right and nothing dangles."""
    native, server, seen = _mischief(action)
    req = client_request(NOW)[0]
    action_code, reply = native.handle(req, "192.0.2.1", 40000, NOW, NOW + 5)
    assert seen and seen[0] == "called"
    want = finish_reply(*server.handle(req, "192.0.2.1", 40000, NOW) or (b"", None), NOW + 5)
    assert (action_code, reply) == (REPLY, want)
    if native.closed:
        with pytest.raises(ValueError, match="closed"):
            native.handle(req, "192.0.2.1", 40000, NOW, NOW)
        with pytest.raises(ValueError, match="closed"):
            native.serve(1)
    else:
        assert native.handle(req, "192.0.2.1", 40000, NOW + 2, NOW + 2)[0] == REPLY
    # every request was served, and counted so whenever the counters were taken
    counts = native.take_counters()
    for taken in seen[1:]:
        if isinstance(taken, dict):
            for name, n in taken.items():
                counts[name] = counts.get(name, 0) + n
    assert counts["received"] == counts["served"] >= 1, counts


@needs_build
def test_a_state_change_during_the_callback_is_not_cached_over() -> None:
    """The callback answers for the old state while the state changes: the next request asks again."""
    native, server, _ = _mischief(lambda n: server.set_state(local_clock_state(7, -20, NOW)), after=True)
    server.add_state_listener(native.invalidate)
    req = client_request(NOW)[0]
    _, first = native.handle(req, "192.0.2.1", 40000, NOW, NOW)
    _, second = native.handle(req, "192.0.2.1", 40000, NOW + 1, NOW + 1)
    assert first is not None and second is not None
    assert (first[1], second[1]) == (10, 7)


@needs_build
def test_serve_is_for_one_thread_at_a_time() -> None:
    """A second serve() while one runs (from the callback, or from another thread meanwhile): RuntimeError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        client.bind(("127.0.0.1", 0))
        server = _local_server()
        errors: list[BaseException] = []
        box: dict[str, Any] = {}

        def from_another_thread() -> None:
            try:
                box["native"].serve(8)
            except RuntimeError as e:
                errors.append(e)

        def prefix(*args: Any) -> bytes:
            if not errors:  # once (the requests may straddle a second and ask twice)
                try:
                    box["native"].serve(8)
                except RuntimeError as e:
                    errors.append(e)
                other = threading.Thread(target=from_another_thread)
                other.start()
                other.join(10)
            return server.reply_prefix(*args)

        box["native"] = _native_server(prefix, fd=sock.fileno())
        plain, xmt = client_request(NOW)
        for _ in range(3):
            client.sendto(plain, sock.getsockname())
        select.select([sock], [], [], 2.0)
        assert box["native"].serve(64) is None
        replies = replies_before_marker(sock, client)
        assert len(replies) == 3 and all(struct.unpack("!Q", r[24:32])[0] == xmt for r in replies)
        assert len(errors) == 2 and all("one thread" in str(e) for e in errors)
        assert box["native"].serve(64) is None  # and it serves again afterwards
    finally:
        client.close()
        sock.close()


@needs_build
def test_counters_are_handed_over_by_name() -> None:
    server = _local_server(RULES)
    fast = FastServer(-1, server)
    req = client_request(NOW)[0]
    fast.handle(req, "127.0.0.1", 40000, NOW, NOW)
    fast.handle(req, "127.0.0.2", 40000, NOW, NOW)
    fast.handle(req + bytes(MAX_DATAGRAM), "127.0.0.1", 40000, NOW, NOW)
    assert fast._native.take_counters() == {"received": 3, "served": 1, "ignore": 1, "oversize": 1}
    assert fast._native.take_counters() == {}
