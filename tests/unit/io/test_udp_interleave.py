"""Interleaved mode on a real loopback socket: the kernel stamps the reply as it leaves, the next reply carries it."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from status_sample import SNAP
from support import replies_before_marker

from appliance.config.model import Discard
from appliance.io import fastpath
from appliance.io.fastpath import FastRateLimiter
from appliance.io.udp import UdpServerSocket
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.interleave import RX_FLAG
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer
from appliance.state import local_clock_state
from appliance.status import metrics
from appliance.status.collect import counters_from
from appliance.status.text import status_text
from appliance.timebase import NS_PER_S, ntp64_diff_ns, ntp64_from_ns

PLANES = ["python", pytest.param("compiled", marks=pytest.mark.skipif(not fastpath.available(), reason="not built"))]
_TS = struct.Struct("!Q")


@pytest.fixture
def client() -> Iterator[socket.socket]:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    yield c
    c.close()


def ask(sock: UdpServerSocket, client: socket.socket, data: bytes) -> bytes:
    client.sendto(data, sock.address)
    assert select.select([sock.sock], [], [], 2.0)[0], "the request never arrived"
    sock.on_readable()
    (reply,) = replies_before_marker(sock.sock, client)
    return reply


def following(reply: bytes, t4_ns: int, t1_ns: int) -> bytes:
    """The next request of a client in interleaved mode: origin = our receive timestamp, receive = its T4."""
    head = bytes([0x23, 0, 6, 0xEC]) + bytes(20)
    return head + reply[32:40] + _TS.pack(ntp64_from_ns(t4_ns)) + _TS.pack(ntp64_from_ns(t1_ns))


@pytest.mark.parametrize("plane", PLANES)
def test_a_client_in_interleaved_mode_gets_the_kernels_transmit_time(plane: str, client: socket.socket) -> None:
    limiter = FastRateLimiter(Discard()) if fastpath.available() else RateLimiter(Discard())
    server = NtpServer(AccessTable.from_rules([]), limiter, state=local_clock_state(10, -20, time.time_ns()))
    sock = UdpServerSocket("127.0.0.1", 0, server, fast=plane == "compiled")
    try:
        if not sock.tx_stamps:
            pytest.skip("this kernel does not stamp transmitted datagrams (SO_TIMESTAMPING)")
        assert sock.data_plane == ("compiled" if plane == "compiled" else "python")
        first = ask(sock, client, client_request(time.time_ns())[0])
        assert first[32:40] != first[40:48] and first[39] & RX_FLAG and not first[47] & RX_FLAG
        second = ask(sock, client, following(first, time.time_ns(), time.time_ns()))
        # the first request named nothing: a basic reply, but the kernel stamped it on its way out
        assert server.transmits.counters.unknown_origin == 1 and server.transmits.counters.captured == 1
        t4, t1 = time.time_ns(), time.time_ns() + 1
        third = ask(sock, client, following(second, t4, t1))
        assert third[24:32] == _TS.pack(ntp64_from_ns(t4))  # interleaved: origin is the request's receive field
        read_before_send = _TS.unpack(second[40:48])[0]
        stamped = _TS.unpack(third[40:48])[0]
        # reply 2 left after its clock reading, and soon after
        assert 0 <= ntp64_diff_ns(stamped, read_before_send) < NS_PER_S // 20
        assert not stamped & RX_FLAG
        assert server.transmits.counters.interleaved == 1 and server.transmits.counters.captured == 2
        # what an operator sees: stratum1 status and the exporter count it
        counts = counters_from(server.counters)
        assert counts.interleaved == 1 and counts.served == 3
        assert "1 in interleaved mode" in status_text(replace(SNAP, counters=counts))
        families = {f.name: f for f in metrics.families(replace(SNAP, counters=counts))}
        assert families["stratum1_interleaved_replies"].samples == (((), 1.0),)
    finally:
        sock.close()
