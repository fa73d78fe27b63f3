"""Requests the kernel drops before the server reads them (a full receive queue) are counted from /proc/net/udp."""

from __future__ import annotations

import socket
import time

from appliance.config.model import Discard
from appliance.io.udp import kernel_drops, receive_queue_drops
from appliance.ntp.access import AccessTable
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer

PROC = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1234: 0100007F:007B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
 1235: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5
"""


def test_the_drops_column_of_our_sockets_only() -> None:
    assert receive_queue_drops(PROC, {4242}) == 17
    assert receive_queue_drops(PROC, {4242, 999}) == 22
    assert receive_queue_drops(PROC, {1}) == 0
    assert receive_queue_drops("garbage\n1 2 3\n", {4242}) == 0


def test_a_flood_that_fills_the_queue_is_counted() -> None:
    """A real socket with a tiny receive buffer, never read: the kernel's count of what it dropped."""
    from appliance.io.udp import UdpServerSocket

    server = NtpServer(AccessTable.from_rules(()), RateLimiter(Discard()))
    sock = UdpServerSocket("127.0.0.1", 0, server, rcvbuf=4096)
    try:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(500):
            sender.sendto(b"\x23" + b"\0" * 47, sock.address)
        sender.close()
        time.sleep(0.05)
        assert kernel_drops([sock]) > 0
    finally:
        sock.close()
