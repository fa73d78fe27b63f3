"""Fuzzing the request handler: any datagram, source, port and restrict table; no exception, no amplification.

Each example builds a server from a random ``restrict`` table, rate limit and
system state and sends it a run of datagrams (random octets, mutated client,
symmetric, control and private-mode requests, authenticated and extension-field
trailers, requests signed with a trusted key, an untrusted one, or with one
octet flipped) from a few random addresses in any textual form, from any port, at
receive times that go forwards, stand still or step back. For every datagram:
no exception, a reply never longer than the request (no amplification; a
signed one as long, with a trusted key's MAC of a request a trusted key signed) but
for a mode 6 answer to an address the table lets query (``noquery`` off: the
operator's choice, as in ntpd; a nonce or the system variables are longer
than the 12-octet request), which is never more than ntpq's 8 fragments and
never goes to an address with ``noquery``; never a mode 7 answer, never an
answer to a response, and a KoD that carries no time. At the end every datagram is accounted for exactly once:
served, answered as control, sent a KoD, or dropped with a reason.

Where the compiled data plane is built, the same run goes through it, the
Python path taking what it hands back, as the socket does, with the same
checks. (``tests/unit/io/test_fastpath.py`` holds the two to the same octets;
this holds both to the rules above for inputs well away from plain requests.)
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from appliance.config.model import Discard, Location, RestrictRule
from appliance.io import fastpath
from appliance.ntp import mode6
from appliance.ntp.access import FLAG_BITS, NOQUERY, AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.keys import KeyRing, parse_keys
from appliance.ntp.mode6 import HEADER as MODE6_HEADER
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, ServerCounters, finish_reply
from appliance.state import SystemState
from appliance.timebase import NS_PER_S

HERE = Location("fuzz.conf", 1)
START = 1_795_000_000 * NS_PER_S
FLAGS = sorted(FLAG_BITS)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- what is drawn -----------------------------------------------------------------------------


ADDRESS = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.sampled_from(["127.0.0.1", "192.0.2.1", "224.0.0.1", "255.255.255.255", "::", "::1", "ff02::1"]).map(
        ipaddress.ip_address
    ),
)
FLAG_SET = st.frozensets(st.sampled_from(FLAGS), max_size=5)
NETWORK = st.tuples(ADDRESS, st.integers(0, 128)).map(
    lambda t: ipaddress.ip_network(f"{t[0]}/{min(t[1], t[0].max_prefixlen)}", strict=False)
)
RULE = st.one_of(
    st.builds(RestrictRule, st.none(), st.sampled_from([None, 4, 6]), FLAG_SET, st.just(HERE)),
    st.builds(RestrictRule, st.none(), st.none(), FLAG_SET, st.just(HERE), st.just(True)),  # restrict source
    NETWORK.flatmap(lambda n: st.builds(RestrictRule, st.just(n), st.just(n.version), FLAG_SET, st.just(HERE))),
)
TUTORIAL = [
    RestrictRule(None, None, frozenset({"kod", "limited", "nomodify", "noquery"}), HERE),
    RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), HERE),
]
#: A restrict table: defaults per family, networks of any prefix, ``source``, any flags; mostly with the
#: tutorials' two lines first, so that limiting, KoD and answered control messages come up.
RULES = st.tuples(st.sampled_from([0, 1, 1, 1]), st.lists(RULE, max_size=6)).map(lambda t: TUTORIAL * t[0] + t[1])

STATE = st.builds(
    SystemState,
    leap=st.integers(0, 3),
    stratum=st.integers(0, 16),
    precision=st.integers(-128, 127),
    root_delay_ns=st.integers(0, 2**40),
    root_dispersion_ns=st.integers(0, 2**40),
    refid=st.binary(min_size=4, max_size=4),
    reference_ns=st.none() | st.integers(0, START),
    public_unsync=st.booleans(),
)
DISCARD = st.sampled_from(
    [Discard(), Discard(burst=1), Discard(average_log2=0, minimum_s=0, burst=2), Discard(minimum_s=1, burst=2)]
)


def blob(max_size: int) -> st.SearchStrategy[bytes]:
    """Octets up to ``max_size``: short ones drawn freely, long ones as a repeated pattern (cheap to draw)."""
    repeated = st.tuples(st.binary(min_size=1, max_size=16), st.integers(1, max_size // 16))
    return st.binary(max_size=64) | repeated.map(lambda t: t[0] * t[1])


def _ntp(b0: int, poll: int, changes: list[tuple[int, int]], trailer: bytes, cut: int | None) -> bytes:
    data = bytearray(client_request(START)[0])
    data[0], data[2] = b0, poll
    for i, v in changes:
        data[i] = v
    data += trailer
    return bytes(data if cut is None else data[:cut])


def _mode6(b0: int, b1: int, numbers: tuple[int, int, int, int], body: bytes, extra: int) -> bytes:
    count = min(max(len(body) + extra, 0), 0xFFFF)  # the body's length, give or take
    return MODE6_HEADER.pack(b0 & 0xF8 | 6, b1, *numbers, count) + body


OCTET = st.integers(0, 255)
#: Any datagram, but often close to what each mode's code reads, so the deep paths are reached.
PLAIN = st.builds(lambda v, p: client_request(START, version=v, poll=p)[0], st.integers(1, 4), st.integers(-10, 17))
#: The keys the servers hold: 1 (SHA1) and 2 (MD5) trusted, 9 in the file but not trusted.
KEYS = KeyRing(
    MappingProxyType(parse_keys("1 SHA1 8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2\n2 MD5 fuzz\n9 SHA1 HEX:0011\n", "k")),
    frozenset({1, 2}),
)


def _signed(request: bytes, keyid: int, flip: int | None) -> bytes:
    """``request`` with key ``keyid``'s MAC, one octet of the whole flipped when ``flip`` is given."""
    data = bytearray(request + KEYS.keys[keyid].mac(request))
    if flip is not None:
        data[flip % len(data)] ^= 0x01
    return bytes(data)


DATAGRAM = st.one_of(
    PLAIN,  # twice: the requests that get served, rate-limited and kissed
    PLAIN,
    st.builds(_signed, PLAIN, st.sampled_from([1, 2, 9]), st.none() | st.integers(0, 80)),  # signed, or not quite
    blob(1100),
    st.builds(  # an NTP header of any version and mode, with or without a trailer, whole or cut short
        _ntp,
        st.tuples(st.integers(0, 63), st.sampled_from([0, 1, 3, 3, 7])).map(lambda t: t[0] << 2 & 0xF8 | t[1]),
        OCTET,
        st.lists(st.tuples(st.integers(0, 47), OCTET), max_size=4),
        st.sampled_from([b"", b"", b"\0" * 20, b"\0" * 24, b"\0" * 4, b"\0\1\0\x10" + b"\0" * 12]) | blob(120),
        st.none() | st.integers(0, 200),
    ),
    st.builds(  # mode 6: any opcode, flags, association, offset and count (often the body's, give or take one)
        _mode6,
        OCTET,
        OCTET,
        st.tuples(*[st.integers(0, 0xFFFF)] * 4),
        blob(480),
        st.integers(-1, 1) | st.integers(-0xFFFF, 0xFFFF),
    ),
    st.tuples(OCTET, blob(500)).map(lambda t: bytes([t[0] & 0xF8 | 7]) + t[1]),  # mode 7
)
PORT = st.sampled_from([123, 123, 40000]) | st.integers(0, 65535)
STEP = st.integers(0, 10_000_000) | st.integers(-3 * NS_PER_S, 3 * NS_PER_S)


@st.composite
def sources(draw: st.DrawFn, rules: list[RestrictRule]) -> str:
    """A source address as the socket layer writes it: plain, IPv4-mapped, or IPv6 with a scope."""
    nets = [r.network for r in rules if r.network is not None]
    if nets and draw(st.booleans()):
        net = draw(st.sampled_from(nets))
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = net.network_address + draw(
            st.integers(0, net.num_addresses - 1)
        )
    else:
        addr = draw(ADDRESS)
    form = draw(st.sampled_from(["plain", "plain", "mapped", "scoped"]))
    if addr.version == 4 and form == "mapped":
        return f"::ffff:{addr}"
    if addr.version == 6 and form == "scoped":
        return f"{addr}%eth0"
    return str(addr)


@st.composite
def traffic(draw: st.DrawFn, rules: list[RestrictRule]) -> list[tuple[bytes, str, int, int]]:
    """Datagrams from a handful of sources (so the rate limiter gets to refuse), with receive times."""
    senders = draw(st.lists(sources(rules), min_size=1, max_size=3))
    t = draw(st.integers(0, 2**61))
    out = []
    for data, who, port, step in draw(
        st.lists(st.tuples(DATAGRAM, st.integers(0, 3), PORT, STEP), min_size=1, max_size=30)
    ):
        t = max(0, t + step)  # receive times are POSIX ns: the kernel never stamps before 1970
        out.append((data, senders[who % len(senders)], port, t))
    return out


# -- what must hold ----------------------------------------------------------------------------


def check_reply(data: bytes, reply: bytes | None, may_query: bool) -> bool:
    """The rules for one answer (``may_query``: the sender's restrict flags lack noquery); return whether it
    was a RATE KoD."""
    if reply is None:
        return False
    mode = data[0] & 7
    assert mode in (0, 1, 3, 6), f"mode {mode} answered"
    if mode == 6:
        assert may_query, "a mode 6 answer to an address with noquery"
        assert data[1] & 0x80 == 0, "a mode 6 response was answered"
        parts = mode6.datagrams(reply)
        assert b"".join(parts) == reply and 1 <= len(parts) <= mode6.MAX_FRAGMENTS, f"{len(parts)} fragments"
        assert all(p[0] & 7 == 6 and p[1] & 0x80 for p in parts), "a mode 6 answer is a response"
        return False
    assert len(reply) <= len(data), f"amplification: {len(data)} -> {len(reply)} octets"
    if len(reply) not in (48, 52):  # signed: as long as the request, with a trusted key's MAC of the reply
        assert len(reply) == len(data) and KEYS.check(reply[:48], reply[48:]) is not None, "a bad signature"
        mac = len(reply) - 48
        assert KEYS.check(data[:-mac], data[-mac:]) is not None, "signed a request no trusted key made"
    if reply[1] == 0:  # stratum 0: a Kiss-o'-Death
        assert reply[12:16] == b"RATE"
        assert reply[16:24] == reply[24:32] == reply[32:40] == reply[40:48] == data[40:48], "a KoD carries time"
        return True
    return False


def check_counts(c: ServerCounters, sent: int, replies: int, kods: int) -> None:
    """Every datagram in exactly one bucket; replies and KoDs as observed."""
    assert c.received == sent
    assert c.kod_sent == kods
    control_answered = c.control - c.dropped.get("control", 0)
    assert c.served + c.kod_sent + control_answered == replies
    assert replies + c.dropped_total == sent, c.dropped
    assert all(n > 0 for n in c.dropped.values())


def run(
    server: NtpServer, events: list[tuple[bytes, str, int, int]], answer: Callable[[bytes, str, int, int], bytes | None]
) -> tuple[int, int]:
    replies = kods = 0
    for data, ip, port, rx in events:
        reply = answer(data, ip, port, rx)
        kod = check_reply(data, reply, not server.access.lookup(ip, port).flags & NOQUERY)
        kods += kod
        replies += reply is not None
        event("KoD" if kod else f"mode {data[0] & 7} {'answered' if reply else 'dropped'}" if data else "empty")
    return replies, kods


@SETTINGS
@given(st.data(), STATE, DISCARD)
def test_python_server_any_datagram_source_port_and_table(
    draw: st.DataObject, state: SystemState, discard: Discard
) -> None:
    rules = draw.draw(RULES)
    events = draw.draw(traffic(rules))
    peers = frozenset(ip for _, ip, _, _ in events[:2])
    server = NtpServer(
        AccessTable.from_rules(rules),
        RateLimiter(discard, slots=256, kod_burst=3),
        peers=peers,
        state=state,
        keys=KEYS,
    )

    def answer(data: bytes, ip: str, port: int, rx: int) -> bytes | None:
        out = server.handle(data, ip, port, rx)
        return None if out is None else finish_reply(*out, rx + 20_000)

    replies, kods = run(server, events, answer)
    check_counts(server.counters, len(events), replies, kods)
    assert server.limiter.kod_sent == kods


@pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
@SETTINGS
@given(st.data(), STATE, DISCARD)
def test_compiled_data_plane_any_datagram_source_port_and_table(
    draw: st.DataObject, state: SystemState, discard: Discard
) -> None:
    rules = draw.draw(RULES)
    events = draw.draw(traffic(rules))
    server = NtpServer(
        AccessTable.from_rules(rules), fastpath.FastRateLimiter(discard, slots=256, kod_burst=3), state=state, keys=KEYS
    )
    fast = fastpath.FastServer(-1, server)

    def answer(data: bytes, ip: str, port: int, rx: int) -> bytes | None:
        action, reply = fast.handle(data, ip, port, rx, rx + 20_000)
        if action != fastpath.PUNT:
            assert (reply is None) == (action == fastpath.DROP)
            return reply
        out = server.handle(data, ip, port, rx)  # what the socket does with a punted datagram
        return None if out is None else finish_reply(*out, rx + 20_000)

    try:
        replies, kods = run(server, events, answer)
        fast.take_counters(lambda *_: None)
    finally:
        fast.close()
    check_counts(server.counters, len(events), replies, kods)
    assert server.limiter.kod_sent == kods


def test_mode6_answer_is_never_longer_than_its_request() -> None:
    """In the small: a 12-octet READSTAT with no associations gets 12 octets back."""
    rules = [RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), HERE)]
    server = NtpServer(AccessTable.from_rules(rules), RateLimiter(Discard()), state=SystemState())
    request = MODE6_HEADER.pack(2 << 3 | 6, 1, 7, 0, 0, 0, 0)
    out = server.handle(request, "127.0.0.1", 40000, START)
    assert out is not None
    reply = finish_reply(*out, START)
    assert len(reply) == len(request) == 12
    assert struct.unpack_from("!H", reply, 2)[0] == 7  # the sequence number is echoed


@pytest.mark.parametrize("leap", [0, 1, 2])
def test_a_stratum_0_state_is_served_as_unsynchronised_not_as_a_kiss_of_death(leap: int) -> None:
    """Found by the property above: a state of stratum 0 (``fudge ... stratum 0``) made every reply a KoD."""
    state = SystemState(leap=leap, stratum=0, refid=b"GPS\0", reference_ns=START)
    server = NtpServer(AccessTable.from_rules([]), RateLimiter(Discard()), state=state)
    data, _ = client_request(START - 1000)
    out = server.handle(data, "127.0.0.1", 40000, START)
    assert out is not None
    reply = finish_reply(*out, START)
    assert (reply[0] >> 6, reply[1], reply[12:16]) == (3, 16, b"INIT")
    assert not state.synchronised
