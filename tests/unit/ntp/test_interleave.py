"""Interleaved client/server mode, the server's side (RFC 9769 section 2): which requests get which reply."""

from __future__ import annotations

import struct
from types import MappingProxyType

import pytest

from appliance.config.model import Discard, Location, RestrictRule
from appliance.io import fastpath
from appliance.io.fastpath import PUNT, FastServer
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.interleave import RX_FLAG, TransmitTable, mark_receive, mark_transmit, may_interleave
from appliance.ntp.keys import KeyRing, parse_keys
from appliance.ntp.packet import MODE_ACTIVE, MODE_SERVER, NtpPacket
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import Interleave, NtpServer, finish_reply
from appliance.state import local_clock_state
from appliance.timebase import NS_PER_S, ntp64_from_ns

NOW = 1_795_000_000 * NS_PER_S
HERE = Location("test.conf", 1)
CLIENT = "192.0.2.7"
_TS = struct.Struct("!Q")


def make_server(**kw: object) -> NtpServer:
    rules = [RestrictRule(None, None, frozenset({"nomodify", "notrap", "noquery"}), HERE)]
    return NtpServer(
        AccessTable.from_rules(rules),
        RateLimiter(Discard()),
        state=local_clock_state(10, -20, NOW - 30 * NS_PER_S),
        **kw,  # type: ignore[arg-type]
    )


def request(origin: int, receive: int, transmit: int, mode: int = 3) -> bytes:
    """A 48-octet request with these three timestamps (a chrony client with ``xleave`` sends them so)."""
    return bytes([(4 << 3) | mode, 0, 6, 0xEC]) + bytes(20) + _TS.pack(origin) + _TS.pack(receive) + _TS.pack(transmit)


def exchange(server: NtpServer, data: bytes, rx: int, tx: int) -> tuple[NtpPacket, object]:
    out = server.handle(data, CLIENT, 40000, rx)
    assert out is not None
    head, tail = out
    return NtpPacket.decode(finish_reply(head, tail, tx)), tail


def test_every_reply_marks_its_receive_timestamp_and_clears_the_transmit_mark() -> None:
    server = make_server()
    data, xmt = client_request(NOW - 1000)
    reply, tail = exchange(server, data, NOW, NOW + 20_000)
    assert reply.origin == xmt  # basic: the client's transmit timestamp
    assert reply.receive == mark_receive(ntp64_from_ns(NOW)) and reply.receive & RX_FLAG
    assert reply.transmit == mark_transmit(ntp64_from_ns(NOW + 20_000)) and not reply.transmit & RX_FLAG
    assert tail == b""  # a basic request: nothing kept, no transmit time asked of the kernel
    assert len(server.transmits) == 0


def test_a_client_in_interleaved_mode_gets_the_earlier_replys_true_transmit_time() -> None:
    """The exchange chrony's ``xleave`` makes: basic first, then origin = our receive timestamp."""
    server = make_server()
    first, _ = client_request(NOW - 1000)
    reply1, tail1 = exchange(server, first, NOW, NOW + 20_000)
    # the client's second request: origin = our receive timestamp, receive = when it got reply 1
    t4 = ntp64_from_ns(NOW + 40_000)
    second = request(reply1.receive, t4, ntp64_from_ns(NOW + 1 * NS_PER_S))
    reply2, tail2 = exchange(server, second, NOW + NS_PER_S + 10_000, NOW + NS_PER_S + 30_000)
    # reply 1's true transmit time was not known: basic, but this reply's is to be kept
    assert reply2.origin == ntp64_from_ns(NOW + 1 * NS_PER_S) and isinstance(tail2, Interleave)
    assert tail2.transmit is None and server.transmits.counters.unknown_origin == 1
    assert server.transmitted(tail2.receive, NOW + NS_PER_S + 33_000)  # the kernel's stamp of reply 2
    third = request(reply2.receive, ntp64_from_ns(NOW + NS_PER_S + 50_000), ntp64_from_ns(NOW + 2 * NS_PER_S))
    reply3, tail3 = exchange(server, third, NOW + 2 * NS_PER_S + 10_000, NOW + 2 * NS_PER_S + 30_000)
    # interleaved: origin is the request's receive field, receive is this exchange's, transmit reply 2's true time
    assert reply3.origin == ntp64_from_ns(NOW + NS_PER_S + 50_000)
    assert reply3.receive == mark_receive(ntp64_from_ns(NOW + 2 * NS_PER_S + 10_000))
    assert reply3.transmit == mark_transmit(ntp64_from_ns(NOW + NS_PER_S + 33_000))
    assert isinstance(tail3, Interleave) and server.transmits.awaiting(tail3.receive)
    assert server.transmits.counters.interleaved == 1 and tail1 == b""


@pytest.mark.parametrize(
    ("why", "origin", "same_receive_transmit", "mode"),
    [
        ("origin zero (data minimisation)", 0, False, 3),
        ("origin our transmit timestamp (ntpd's client echoes it)", mark_transmit(0xE0000000_12345678), False, 3),
        ("receive equals transmit", None, True, 3),
        ("symmetric active: not client/server", None, False, MODE_ACTIVE),
    ],
)
def test_requests_that_cannot_be_interleaved_get_basic_replies(
    why: str, origin: int | None, same_receive_transmit: bool, mode: int
) -> None:
    server = make_server(peers=frozenset({CLIENT}))
    first, _ = client_request(NOW - 1000)
    reply1, _ = exchange(server, first, NOW, NOW + 20_000)
    kept = mark_receive(ntp64_from_ns(NOW - 5 * NS_PER_S))
    server.transmits.expect(kept)
    server.transmits.captured(kept, ntp64_from_ns(NOW - 5 * NS_PER_S + 33_000))
    xmt = ntp64_from_ns(NOW + NS_PER_S)
    rec = xmt if same_receive_transmit else ntp64_from_ns(NOW + 40_000)
    data = request(kept if origin is None else origin, rec, xmt, mode)
    reply, tail = exchange(server, data, NOW + NS_PER_S, NOW + NS_PER_S + 20_000)
    assert reply.origin == xmt, why
    assert reply.transmit == mark_transmit(ntp64_from_ns(NOW + NS_PER_S + 20_000)), why
    assert not isinstance(tail, Interleave), why
    assert server.transmits.counters.interleaved == 0


def test_a_signed_interleaved_reply_is_signed_over_the_earlier_transmit_time() -> None:
    ring = KeyRing(
        MappingProxyType(parse_keys("1 SHA1 0123456789abcdef0123456789abcdef01234567\n", "keys")), frozenset({1})
    )
    server = make_server(keys=ring)
    kept = mark_receive(ntp64_from_ns(NOW - NS_PER_S))
    server.transmits.expect(kept)
    server.transmits.captured(kept, ntp64_from_ns(NOW - NS_PER_S + 33_000))
    body = request(kept, ntp64_from_ns(NOW - NS_PER_S + 60_000), ntp64_from_ns(NOW))
    data = body + ring.keys[1].mac(body)
    out = server.handle(data, CLIENT, 40000, NOW + 10_000)
    assert out is not None
    wire = finish_reply(out[0], out[1], NOW + 30_000)
    reply = NtpPacket.decode(wire)
    assert reply.transmit == mark_transmit(ntp64_from_ns(NOW - NS_PER_S + 33_000))
    assert ring.check(wire[:48], wire[48:]) is ring.keys[1]


def test_the_table_keeps_at_most_its_size_oldest_out_first() -> None:
    table = TransmitTable(size=3)
    for k in range(5):
        table.expect(mark_receive(k << 8))
    assert len(table) == 3 and table.counters.evicted == 2
    assert not table.awaiting(mark_receive(0)) and table.awaiting(mark_receive(4 << 8))
    assert not table.captured(mark_receive(0), 77)  # forgotten: nothing kept for it
    assert table.captured(mark_receive(4 << 8), 77) and table.transmit_for(mark_receive(4 << 8)) == 76
    assert not table.captured(mark_receive(4 << 8), 99)  # only once
    with pytest.raises(ValueError):
        TransmitTable(size=0)


def test_may_interleave_needs_a_marked_origin_and_distinct_receive_and_transmit() -> None:
    assert may_interleave(mark_receive(10 << 8), b"a" * 8, b"b" * 8)
    assert not may_interleave(mark_transmit(10 << 8), b"a" * 8, b"b" * 8)
    assert not may_interleave(mark_receive(10 << 8), b"a" * 8, b"a" * 8)


@pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built")
def test_the_compiled_plane_marks_the_same_and_leaves_interleaved_requests_to_python() -> None:
    server = make_server()
    fast = FastServer(-1, server)
    try:
        plain, _ = client_request(NOW - 1000)
        action, wire = fast.handle(plain, CLIENT, 40000, NOW, NOW + 20_000)
        assert wire is not None
        reply = NtpPacket.decode(wire)
        assert reply.mode == MODE_SERVER
        assert reply.receive == mark_receive(ntp64_from_ns(NOW))
        assert reply.transmit == mark_transmit(ntp64_from_ns(NOW + 20_000))
        asks = request(reply.receive, ntp64_from_ns(NOW + 40_000), ntp64_from_ns(NOW + NS_PER_S))
        assert fast.handle(asks, CLIENT, 40000, NOW + NS_PER_S, NOW + NS_PER_S)[0] == PUNT
        # an ntpd client echoing our transmit timestamp stays on the compiled path
        echo = request(reply.transmit, ntp64_from_ns(NOW + 40_000), ntp64_from_ns(NOW + NS_PER_S))
        assert fast.handle(echo, CLIENT, 40000, NOW + NS_PER_S, NOW + NS_PER_S)[0] != PUNT
    finally:
        fast.close()
