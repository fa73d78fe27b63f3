"""The upstream NTP client against our own server on loopback: samples, RATE Kiss-o'-Death, silence.

Three appliances serve on 127.0.0.1 (one answers, one rate-limits with
``kod limited`` and a tiny ``discard``, one has ``restrict default ignore``)
and one on ::1 stands for a ``pool`` whose name a fake resolver turns into
that address. A bare socket in the test plays a fifth server that records
the client's source ports and has an accomplice send a forged reply from
another port first. One client polls all five with ``iburst`` for about
five seconds; the tests then read what it made of them. Nothing leaves
loopback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from harness import LOCAL_CLOCK_CONF, serving

from appliance.config.model import Location, ServerLine
from appliance.io.loop import EventLoop
from appliance.io.ntpclient import NtpClientIO
from appliance.ntp.packet import MODE_SERVER, NtpPacket
from appliance.sources.client import Association, Reply, Upstreams
from appliance.timebase import NS_PER_S, ntp64_from_ns, short_from_ns

MS = 1_000_000
RUN_S = 5.0

KOD_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
discard average 6 minimum 1 burst 1
server 127.127.1.0
fudge 127.127.1.0 stratum 10
localclock public serve
"""
IGNORE_CONF = """
restrict default ignore
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclass
class Run:
    good: Association
    kod: Association
    deaf: Association
    pool: list[Association]
    fake: Association
    fake_ports: list[int]
    io: NtpClientIO
    replies: list[tuple[str, Reply]]
    resolved: list[tuple[str, int, int | None]]
    pool_address: str


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    here = Location("test_upstream", 1)
    v6 = ipv6_loopback()
    pool_address = "::1" if v6 else "127.0.0.1"
    with ExitStack() as stack:
        good = stack.enter_context(serving(LOCAL_CLOCK_CONF))
        kod = stack.enter_context(serving(KOD_CONF))
        deaf = stack.enter_context(serving(IGNORE_CONF))
        pooled = stack.enter_context(serving(LOCAL_CLOCK_CONF, listen=(pool_address,)))
        fake_server = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        fake_server.bind(("127.0.0.1", 0))
        accomplice = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        accomplice.bind(("127.0.0.1", 0))
        fake_ports: list[int] = []

        def answer() -> None:
            data, addr = fake_server.recvfrom(1024)
            fake_ports.append(addr[1])
            q = NtpPacket.decode(data)
            now = time.time_ns()

            def reply(t: int) -> bytes:
                return NtpPacket(
                    mode=MODE_SERVER,
                    stratum=2,
                    poll=q.poll,
                    precision=-20,
                    root_delay=short_from_ns(MS),
                    refid=b"\x0a\0\0\1",
                    reference=ntp64_from_ns(t - NS_PER_S),
                    origin=q.transmit,
                    receive=ntp64_from_ns(t),
                    transmit=ntp64_from_ns(t),
                ).encode()

            accomplice.sendto(reply(now + 10 * NS_PER_S), addr)  # right origin, wrong port: must not get in
            fake_server.sendto(reply(now), addr)

        lines = [
            ServerLine("server", "127.0.0.1", here, iburst=True, port=good.addresses[0][1]),
            ServerLine("server", "127.0.0.1", here, iburst=True, port=kod.addresses[0][1]),
            ServerLine("server", "127.0.0.1", here, iburst=True, port=deaf.addresses[0][1]),
            ServerLine("pool", "pool.test", here, iburst=True, port=pooled.addresses[0][1]),
            ServerLine("server", "127.0.0.1", here, iburst=True, port=fake_server.getsockname()[1]),
        ]
        upstreams = Upstreams(lines, time.monotonic_ns())
        resolved: list[tuple[str, int, int | None]] = []

        def resolve(host: str, port: int, family: int | None) -> list[str]:
            resolved.append((host, port, family))
            return [pool_address]

        replies: list[tuple[str, Reply]] = []
        loop = EventLoop()
        stack.callback(loop.close)
        loop.add_reader(fake_server, answer)
        io = NtpClientIO(loop, upstreams, resolve=resolve, on_reply=lambda a, r: replies.append((a.name, r)))
        stack.callback(io.close)
        io.start()
        deadline = time.monotonic() + RUN_S
        loop.run(until=lambda: time.monotonic() > deadline)
        g, k, d, *p, f = upstreams.associations
        yield Run(g, k, d, p, f, fake_ports, io, replies, resolved, pool_address)


def test_client_gets_samples_with_small_offsets(run: Run) -> None:
    a = run.good
    samples = [r.sample for name, r in run.replies if name == a.name and r.sample is not None]
    assert len(samples) >= 2, a.counters
    for s in samples:
        assert abs(s.offset_ns) < 10 * MS and 0 <= s.delay_ns < 50 * MS
        assert s.stratum == 10 and s.refid == b"LOCL"
    assert a.reach & 1 and a.counters.dropped == {} and a.counters.kod == {}
    e = a.estimate(time.time_ns())
    assert e.stratum == 10 and abs(e.offset_ns) < 10 * MS
    assert run.io.counters.no_timestamp == 0  # T4 came from the kernel


def test_rate_kod_makes_the_client_back_off(run: Run) -> None:
    a = run.kod
    assert a.counters.kod.get("RATE", 0) >= 1, a.counters
    assert a.counters.samples == 1  # the first request passed the bucket of one
    assert a.poll >= 7 and a.minpoll >= 7
    assert a.due_ns is not None and a.due_ns - time.monotonic_ns() > 60 * NS_PER_S  # no more 2 s burst packets
    assert a.counters.requests == 2


def test_ignored_client_stays_unreachable(run: Run) -> None:
    a = run.deaf
    assert a.reach == 0 and a.counters.received == 0 and a.counters.samples == 0
    assert a.counters.requests >= 2 and a.counters.timeouts >= 2
    assert not a.estimate(time.time_ns()).usable


def test_pool_is_resolved_and_its_server_polled(run: Run) -> None:
    assert run.resolved and run.resolved[0][0] == "pool.test"
    (member,) = run.pool
    assert member.address == run.pool_address and member.host == "pool.test"
    assert member.counters.samples >= 2 and member.reach & 1


def test_sockets_are_closed_after_each_exchange(run: Run) -> None:
    assert run.io.in_flight <= 1  # at most the deaf server's request of the last 1.5 s


def test_each_request_comes_from_a_fresh_port_and_only_the_server_gets_through(run: Run) -> None:
    a = run.fake
    assert len(run.fake_ports) >= 2 and len(set(run.fake_ports)) == len(run.fake_ports)
    assert a.counters.samples == len(run.fake_ports)
    assert a.counters.dropped == {}  # the forged replies never reached the client
    samples = [r.sample for name, r in run.replies if name == a.name and r.sample is not None]
    assert all(abs(s.offset_ns) < 10 * MS for s in samples)
