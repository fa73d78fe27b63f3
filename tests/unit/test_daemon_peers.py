"""``peer`` lines: a host name's addresses may peer, and ``restrict default ... nopeer`` does not cut off a
configured peer (ntpd and NTPsec: nopeer denies symmetric packets only "when a configured association does not
exist"). The tester's 'peer localhost' and the tutorials' nopeer default line both got no reply."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.ntp.exchange import client_request
from appliance.ntp.packet import MODE_PASSIVE, NtpPacket


@pytest.fixture
def client() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def symmetric_active(app: Appliance, client: socket.socket) -> bytes | None:
    """Send a mode 1 packet from 127.0.0.1, let the appliance take it in, return its reply (None: none)."""
    data = bytearray(client_request(time.time_ns())[0])
    data[0] = (4 << 3) | 1
    before = app.server.counters.received
    client.sendto(bytes(data), app.addresses[0])
    pump = app.loop.call_every(0.01, lambda: None)
    try:
        app.loop.run(until=lambda: app.server.counters.received > before)
    finally:
        pump.cancel()
    client.settimeout(5.0 if app.server.counters.dropped_total == 0 else 0.05)
    try:
        return client.recv(1024)
    except TimeoutError:
        return None


def serve(text: str) -> Appliance:
    return Appliance(parse_config(text, "t.conf"), ServeSettings(listen=("127.0.0.1",), port=0, clock="soft"))


def test_a_peer_named_by_host_name_is_answered_once_resolved(client: socket.socket) -> None:
    app = serve("restrict 127.0.0.1\npeer localhost\n")
    try:
        stop = app.loop.call_later(10.0, app.loop.stop)  # (a resolver that never answers fails the test)
        app.loop.run(until=lambda: bool(app.server.peers))
        stop.cancel()
        assert "127.0.0.1" in app.server.peers
        reply = symmetric_active(app, client)
        assert reply is not None and NtpPacket.decode(reply).mode == MODE_PASSIVE
    finally:
        app.close()


def test_nopeer_on_the_default_line_leaves_a_configured_peer_alone(client: socket.socket) -> None:
    app = serve("restrict default kod notrap nomodify nopeer noquery limited\npeer 127.0.0.1\n")
    try:
        reply = symmetric_active(app, client)
        assert reply is not None and NtpPacket.decode(reply).mode == MODE_PASSIVE
    finally:
        app.close()


def test_an_unconfigured_machine_still_cannot_peer(client: socket.socket) -> None:
    app = serve("restrict 127.0.0.1\npeer 127.0.0.2\n")
    try:
        assert symmetric_active(app, client) is None
        assert app.server.counters.dropped == {"peer": 1}
    finally:
        app.close()
