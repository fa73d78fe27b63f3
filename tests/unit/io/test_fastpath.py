"""The compiled data plane answers exactly as the Python server does, and leaves the rest to it.

The Python modules are the specification; these tests hold the C code to it:
- differentially, for random requests, source addresses, ports, times, restrict tables and
  system states: the same reply octet for octet (transmit timestamp included, given the same
  clock reading), the same drops, the same limiter verdicts and counters;
- over a real loopback socket: plain requests are answered by C, everything else by Python,
  and the counters add up.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config.model import Discard, Location, RestrictRule
from appliance.config.parser import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.io import fastpath
from appliance.io.fastpath import DROP, KOD, PUNT, REPLY, FastRateLimiter, FastServer
from appliance.io.udp import UdpServerSocket
from appliance.ntp.access import FLAG_BITS, AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, finish_reply
from appliance.sources.state import SystemState, local_clock_state
from appliance.timebase import NS_PER_S, ntp64_from_ns

needs_build = pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
HERE = Location("fast.conf", 1)
NOW = 1_795_000_000 * NS_PER_S


def test_built_where_ci_runs() -> None:
    """CI installs with a compiler: there the data plane must exist (elsewhere it is optional)."""
    if os.environ.get("CI") == "true":
        assert fastpath.available(), "appliance.io._fastpath was not built"


@needs_build
@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_timestamp_conversion_matches_timebase(t: int) -> None:
    native = pytest.importorskip("appliance.io._fastpath")
    assert native.ntp64_from_ns(t) == ntp64_from_ns(t)


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


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind <= 2:  # a plain request, of any version
        data, _ = client_request(NOW - 5000, version=draw(st.integers(1, 4)), poll=draw(st.integers(0, 17)))
        return bytes([data[0] & 0xC0 | draw(st.integers(0, 7)) << 3 | 3]) + data[1:] if kind == 2 else data
    if kind == 3:  # anything of 48 octets
        return draw(st.binary(min_size=48, max_size=48))
    return draw(st.binary(max_size=120))


def _plain(data: bytes) -> bool:
    return len(data) == 48 and data[0] & 7 == 3 and 1 <= (data[0] >> 3) & 7 <= 4


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
    subject = NtpServer(table, FastRateLimiter(discard, kod_per_second=2.0, kod_burst=2), state=state)
    fast = FastServer(-1, subject)
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
    replies = []
    while select.select([client], [], [], 0.3)[0]:
        replies.append(client.recv(2048))
    return replies


@contextlib.contextmanager
def _serving(
    rules: list[RestrictRule], client_address: str, limiter: FastRateLimiter | None = None
) -> Iterator[tuple[NtpServer, UdpServerSocket, socket.socket]]:
    """A server on a fast 127.0.0.1 socket and a client socket bound to ``client_address``."""
    server = NtpServer(
        AccessTable.from_rules(rules), limiter or FastRateLimiter(Discard()), state=local_clock_state(10, -20, NOW)
    )
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=True)
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


def test_fast_socket_refuses_a_mapped_clock() -> None:
    server = NtpServer(AccessTable.from_rules([]), RateLimiter(Discard()))
    with pytest.raises(ValueError, match="CLOCK_REALTIME"):
        UdpServerSocket("127.0.0.1", 0, server, fast=True, from_kernel_ns=lambda t: t)


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
    soft = _appliance("server 127.0.0.1 iburst\n", clock="soft")  # an upstream (loopback): a soft clock
    try:
        assert [s.data_plane for s in soft.sockets] == ["python"]
    finally:
        soft.close()
