"""``restrict source`` acts on the configured servers' addresses, as ntpd's template does (ntp_acc(5)).

It was accepted without a word and read nowhere: a mode 6 query from the server's own address got the
default's ``noquery`` (nothing at all). Loopback only: the server is 127.0.0.5 (it never answers), the
queries come from 127.0.0.5 and 127.0.0.6.
"""

from __future__ import annotations

import socket
import time

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.ntp import mode6
from appliance.ntp.access import NOMODIFY, NOQUERY, NOTRAP
from appliance.ntp.mode6 import HEADER

CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict source nomodify notrap
server 127.0.0.5 port 9 iburst
"""


def ask(source: str, port: int) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(0.5)
        s.sendto(HEADER.pack((2 << 3) | 6, mode6.OP_READVAR, 1, 0, 0, 0, 0), ("127.0.0.1", port))
        try:
            return s.recv(2048)
        except TimeoutError:
            return None


def test_restrict_source_gives_the_servers_address_its_flags() -> None:
    app = Appliance(parse_config(CONF, "t.conf"), ServeSettings(listen=("127.0.0.1",), port=0, clock="soft"))
    app.start_thread()
    try:
        end = time.monotonic() + 10
        while app.server.access.lookup("127.0.0.5").flags != NOMODIFY | NOTRAP and time.monotonic() < end:
            time.sleep(0.05)
        assert app.server.access.lookup("127.0.0.5").flags == NOMODIFY | NOTRAP
        assert app.server.access.lookup("127.0.0.6").flags & NOQUERY
        port = app.addresses[0][1]
        reply = ask("127.0.0.5", port)
        assert reply is not None and reply[1] == 0x80 | mode6.OP_READVAR and b"stratum=" in reply
        assert ask("127.0.0.6", port) is None  # not a server: the default's noquery
    finally:
        app.stop()
        app.close()
