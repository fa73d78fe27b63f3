"""The pure request handler: what each kind of datagram gets (random ones: test_server_fuzz.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

import pytest

from appliance.config.model import Discard, Location, RestrictRule
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request, evaluate
from appliance.ntp.interleave import mark_receive, mark_transmit
from appliance.ntp.mode6 import HEADER as MODE6_HEADER
from appliance.ntp.packet import LEAP_UNSYNC, MAX_DATAGRAM, MODE_PASSIVE, MODE_SERVER, NtpPacket
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, finish_reply
from appliance.state import SystemState, local_clock_state
from appliance.timebase import NS_PER_S, ntp64_from_ns

NOW = 1_795_000_000 * NS_PER_S
HERE = Location("test.conf", 1)
STATE = local_clock_state(10, -20, NOW - 30 * NS_PER_S)


def rule(net: str | None, *flags: str, family: int | None = None) -> RestrictRule:
    network = ipaddress.ip_network(net) if net else None
    return RestrictRule(network, family if net is None else network.version, frozenset(flags), HERE)  # type: ignore[union-attr]


POOL_RULES = [
    rule(None, "kod", "limited", "nomodify", "notrap", "nopeer", "noquery"),
    rule("127.0.0.1/32"),
    rule("::1/128"),
    rule("192.168.0.0/24", "nomodify", "notrap"),
]


def make_server(rules: list[RestrictRule] = POOL_RULES, state: SystemState = STATE, **kw: object) -> NtpServer:
    return NtpServer(AccessTable.from_rules(rules), RateLimiter(Discard()), state=state, **kw)  # type: ignore[arg-type]


def request(version: int = 4, poll: int = 6, t1: int = NOW - 1000) -> tuple[bytes, int]:
    return client_request(t1, version=version, poll=poll)


def serve(server: NtpServer, data: bytes, ip: str = "203.0.113.5", port: int = 40000, rx: int = NOW) -> bytes | None:
    out = server.handle(data, ip, port, rx)
    if out is None:
        return None
    head, tail = out
    return finish_reply(head, tail, rx + 20_000)


def test_client_request_gets_mode_4_with_system_state() -> None:
    s = make_server()
    data, xmt = request(version=4, poll=7)
    reply = serve(s, data)
    assert reply is not None and len(reply) == 48
    p = NtpPacket.decode(reply)
    assert (p.mode, p.version, p.poll) == (MODE_SERVER, 4, 7)
    assert p.origin == xmt
    assert p.receive == mark_receive(ntp64_from_ns(NOW))  # lowest bit set: interleaved mode's mark
    assert p.transmit == mark_transmit(ntp64_from_ns(NOW + 20_000))
    assert (p.leap, p.stratum, p.refid, p.precision) == (0, 10, b"LOCL", -20)
    assert p.reference == ntp64_from_ns(STATE.reference_ns or 0)
    m = evaluate(reply, xmt, NOW + 21_000)
    assert m.offset_ns == ((NOW - (NOW - 1000)) + (NOW + 20_000 - NOW - 21_000)) // 2


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_every_version_is_echoed(version: int) -> None:
    reply = serve(make_server(), request(version=version)[0])
    assert reply is not None and NtpPacket.decode(reply).version == version


def test_ntpv1_mode_0_from_client_port_is_a_client_request() -> None:
    data = bytearray(request(version=1)[0])
    data[0] = 1 << 3  # version 1, mode 0
    assert serve(make_server(), bytes(data), port=40000) is not None
    assert serve(make_server(), bytes(data), port=123) is None


def test_unsynchronised_server_says_leap_3_stratum_16() -> None:
    reply = serve(make_server(state=SystemState()), request()[0])
    assert reply is not None
    p = NtpPacket.decode(reply)
    assert (p.leap, p.stratum) == (LEAP_UNSYNC, 16)


def test_public_unsync_hides_local_clock_from_default_clients_only() -> None:
    s = make_server(state=dataclasses.replace(STATE, public_unsync=True))
    public = NtpPacket.decode(serve(s, request()[0], ip="203.0.113.5") or b"")
    lan = NtpPacket.decode(serve(s, request()[0], ip="192.168.0.9") or b"")
    assert (public.leap, public.stratum) == (LEAP_UNSYNC, 16)
    assert (lan.leap, lan.stratum) == (0, 10)


def test_root_dispersion_grows_with_age() -> None:
    s = make_server()
    early = NtpPacket.decode(serve(s, request()[0], rx=NOW) or b"").root_dispersion
    late = NtpPacket.decode(serve(s, request()[0], ip="127.0.0.1", rx=NOW + 1000 * NS_PER_S) or b"").root_dispersion
    assert late > early


def test_mode_7_is_never_answered() -> None:
    s = make_server([rule(None)])
    for ip in ("127.0.0.1", "203.0.113.5"):
        assert serve(s, bytes([0x17, 0x00, 0x03, 0x2A]) + b"\0" * 44, ip=ip) is None
    assert s.counters.dropped["mode7"] == 2


def test_a_datagram_over_1024_octets_is_dropped_as_oversize() -> None:
    """Even a valid request with a MAC after 1024 octets of extension field: the sockets read one octet more."""
    s = make_server([rule(None)])
    data, _ = request()
    for total, answered in ((MAX_DATAGRAM, True), (MAX_DATAGRAM + 1, False), (9000, False)):
        ef_len = total - len(data) - 20
        datagram = data + struct.pack("!HH", 0x0104, ef_len) + bytes(ef_len - 4) + struct.pack("!I", 1) + bytes(16)
        assert len(datagram) == total
        assert (serve(s, datagram) is not None) == answered, total
    assert s.counters.dropped == {"oversize": 2} and s.counters.served == 1


def readstat() -> bytes:
    return MODE6_HEADER.pack((2 << 3) | 6, 1, 7, 0, 0, 0, 0)


def test_mode_6_dropped_for_noquery_and_answered_for_localhost() -> None:
    s = make_server()
    assert serve(s, readstat(), ip="203.0.113.5") is None
    reply = serve(s, readstat(), ip="127.0.0.1")
    assert reply is not None and len(reply) <= len(readstat())
    b0, b1, seq, status, *_ = MODE6_HEADER.unpack(reply)
    assert b1 & 0x80 and not b1 & 0x40 and seq == 7
    assert status >> 14 == 0  # leap bits: none


def test_mode_6_writes_refused_under_nomodify() -> None:
    s = make_server()
    write = MODE6_HEADER.pack((2 << 3) | 6, 3, 1, 0, 0, 0, 0)
    reply = serve(s, write, ip="192.168.0.9")
    assert reply is not None
    assert MODE6_HEADER.unpack(reply)[1] & 0x40  # error bit


def test_symmetric_active_needs_a_peer_line() -> None:
    data = bytearray(request()[0])
    data[0] = (4 << 3) | 1
    peer = "192.168.0.50"
    assert serve(make_server(), bytes(data), ip=peer) is None
    s = make_server(peers=frozenset({peer}))
    reply = serve(s, bytes(data), ip=peer)
    assert reply is not None and NtpPacket.decode(reply).mode == MODE_PASSIVE


def test_nopeer_applies_only_to_machines_without_a_peer_line() -> None:
    """The tutorials' 'restrict default ... nopeer' with a 'peer' line: ntpd and NTPsec keep the peering
    (nopeer denies symmetric packets "when a configured association does not exist"); stratum1 dropped it."""
    data = bytearray(request()[0])
    data[0] = (4 << 3) | 1
    peer = "198.51.100.50"  # under the default line, nopeer and all
    s = make_server(POOL_RULES, peers=frozenset({peer}))
    reply = serve(s, bytes(data), ip=peer)
    assert reply is not None and NtpPacket.decode(reply).mode == MODE_PASSIVE
    assert serve(s, bytes(data), ip="198.51.100.51") is None
    assert s.counters.dropped == {"peer": 1}


@pytest.mark.parametrize("mode", [2, 4, 5])
def test_replies_and_broadcasts_are_not_requests(mode: int) -> None:
    data = bytearray(request()[0])
    data[0] = (4 << 3) | mode
    assert serve(make_server(), bytes(data)) is None


@pytest.mark.parametrize(
    ("flags", "version", "answered"),
    [
        (("ignore",), 4, False),
        (("noserve",), 4, False),
        (("version",), 3, False),
        (("version",), 4, True),
        (("notrust",), 4, False),
        (("noquery", "nomodify", "notrap", "nopeer"), 4, True),
    ],
)
def test_restrict_flags(flags: tuple[str, ...], version: int, answered: bool) -> None:
    s = make_server([rule(None, *flags)])
    assert (serve(s, request(version=version)[0]) is not None) is answered


def test_flood_is_limited_with_rate_kod_and_kod_carries_no_time() -> None:
    s = make_server()
    replies = []
    for i in range(50):
        data, xmt = request(t1=NOW + i * NS_PER_S // 10)
        replies.append((serve(s, data, rx=NOW + i * NS_PER_S // 10), xmt))
    served = [r for r, _ in replies if r is not None and NtpPacket.decode(r).stratum != 0]
    kods = [(r, x) for r, x in replies if r is not None and NtpPacket.decode(r).stratum == 0]
    assert 1 <= len(served) <= 10
    assert 1 <= len(kods) <= 3
    kod, xmt = kods[0]
    p = NtpPacket.decode(kod)
    assert p.kiss_code == "RATE" and p.origin == xmt and p.receive == xmt and p.transmit == xmt
    assert s.counters.dropped["rate"] >= 30


@pytest.mark.parametrize(("average", "poll", "told"), [(3, 0, 3), (3, 6, 6), (5, 4, 5), (3, -2, 3), (0, 17, 17)])
def test_a_kods_poll_is_the_clients_or_the_discard_average_if_longer(average: int, poll: int, told: int) -> None:
    """As ntpd: the KoD tells a client polling faster than ``discard average`` allows to poll at that."""
    s = NtpServer(AccessTable.from_rules(POOL_RULES), RateLimiter(Discard(average_log2=average)), state=STATE)
    polls = []
    for i in range(40):
        data, _ = client_request(NOW + i * NS_PER_S // 10, poll=poll)
        reply = serve(s, data, rx=NOW + i * NS_PER_S // 10)
        if reply is not None and NtpPacket.decode(reply).stratum == 0:
            polls.append(reply[2])
    assert polls and set(polls) == {told}


def test_localhost_is_not_limited() -> None:
    s = make_server()
    for i in range(100):
        assert serve(s, request()[0], ip="127.0.0.1", rx=NOW + i * 1000) is not None


def test_authenticated_request_gets_crypto_nak_no_larger_than_request() -> None:
    data = request()[0] + struct.pack("!I", 5) + b"\x11" * 16
    reply = serve(make_server(), data)
    assert reply is not None and len(reply) == 52 and reply[48:] == b"\0\0\0\0"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x23", b"\x23" * 47, b"\x23" + b"\0" * 47 + b"\0" * 7, bytes([0x03]) + b"\0" * 47, b"\x2b" + b"\0" * 47],
)
def test_malformed_requests_are_dropped_and_counted(data: bytes) -> None:
    s = make_server()
    assert serve(s, data) is None
    assert s.counters.dropped_total == 1


# Random datagrams, sources, ports and restrict tables: test_server_fuzz.py.


def test_every_datagram_not_ignored_is_in_the_mru_list_whatever_it_gets() -> None:
    rules = [rule(None, "kod", "limited", "noquery"), rule("192.0.2.9", "ignore"), rule("192.0.2.8", "noserve")]
    server = make_server(rules)
    data, _ = request()
    for _ in range(3):
        serve(server, data, ip="203.0.113.5", port=40000)
    serve(server, data, ip="192.0.2.9")  # ignored: not even seen
    serve(server, data, ip="192.0.2.8", port=123)  # refused, but seen
    mode6 = MODE6_HEADER.pack((2 << 3) | 6, 1, 1, 0, 0, 0, 0)
    server.handle(mode6, "203.0.113.5", 40001, NOW + 1)  # noquery: dropped, but seen
    got = {e.addr: (e.port, e.count, e.mv, e.first_ns, e.last_ns) for e in server.mru.entries()}
    assert got == {"203.0.113.5": (40001, 4, 0x16, NOW, NOW + 1), "192.0.2.8": (123, 1, 0x23, NOW, NOW)}


def test_mode_6_drops_are_counted_by_reason() -> None:
    """An asker over its mode 6 budget, a malformed mode 6 request and a noquery one: each its own reason,
    as stratum1_dropped_requests_total{reason} and status --json's counters.drops show them."""
    from appliance.status.collect import counters_from

    s = make_server([rule(None, "nomodify", "notrap", "nopeer"), rule("203.0.113.9/32", "noquery")])
    readstat = bytes([0x16, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # ntpq's READSTAT, association 0
    answered = sum(serve(s, readstat, ip="203.0.113.5", rx=NOW) is not None for _ in range(100))
    assert 0 < answered < 100
    assert s.counters.dropped["control-rate"] == 100 - answered
    assert serve(s, readstat[:11], ip="203.0.113.6") is None  # cut short: malformed
    assert serve(s, readstat, ip="203.0.113.9") is None
    assert s.counters.dropped["noquery"] == 1
    drops = dict(counters_from(s.counters).drops)
    assert drops["control-rate"] == 100 - answered and drops["noquery"] == 1
    assert sum(drops.values()) == s.counters.dropped_total
