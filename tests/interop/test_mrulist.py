"""The real NTPsec ``ntpq -c mrulist`` lists the appliance's recent clients, with their counts, on both paths.

A private network namespace holds one appliance on 0.0.0.0:123 (the local clock only), served by the compiled
data plane or by the Python path alone (``--no-fastpath``). Clients on 127.0.0.2 .. 127.0.0.4 send plain
client requests, a known number each; ntpq on 127.0.0.1 then lists them. 127.0.0.9 is under ``noquery`` and
127.0.0.8 under ``nomrulist``: neither gets the list. Nothing leaves the namespace.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import nsutil
import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.ntp import mode6
from appliance.ntp.mode6 import HEADER

pytestmark = pytest.mark.netns

CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict 127.0.0.8 nomrulist
restrict ::1
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""
#: Client address -> plain requests it sends.
CLIENTS = {"127.0.0.2": 1, "127.0.0.3": 2, "127.0.0.4": 3}


@pytest.fixture(scope="module", params=[True, False], ids=["compiled", "python"])
def lab(request: pytest.FixtureRequest) -> Iterator[tuple[nsutil.NetNs, Appliance]]:
    if not nsutil.available():
        pytest.skip("network namespaces need root and iproute2")
    ns = nsutil.NetNs("st-mru")
    app: Appliance | None = None
    try:
        config = parse_config(CONF, "mru.conf")
        settings = ServeSettings(listen=("0.0.0.0",), port=123, fastpath=request.param)
        app = ns.call(lambda: Appliance(config, settings))
        app.start_thread()
        for ip, n in CLIENTS.items():
            for _ in range(n):
                assert ask(ns, ip, b"\x23" + bytes(47), 48) is not None  # v4 mode 3, within the rate limit
        yield ns, app
    finally:
        if app is not None:
            app.stop()
            app.close()
        ns.delete()


def ask(ns: nsutil.NetNs, ip: str, data: bytes, size: int = 4096, timeout: float = 1.0) -> bytes | None:
    """Send ``data`` from ``ip`` to the appliance; its first answer, or None."""
    sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        sock.bind((ip, 0))
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", 123))
        try:
            return sock.recv(size)
        except TimeoutError:
            return None


def ask_whole(ns: nsutil.NetNs, ip: str, data: bytes) -> bytes:
    """Send a mode 6 request from ``ip``; the data of its answer's fragments, put together."""
    sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    parts: dict[int, bytes] = {}
    with sock:
        sock.bind((ip, 0))
        sock.settimeout(1.0)
        sock.sendto(data, ("127.0.0.1", 123))
        while True:
            reply = sock.recv(4096)
            _, b1, _, _, _, offset, count = HEADER.unpack_from(reply)
            parts[offset] = reply[12 : 12 + count]
            if not b1 & 0x20:
                return b"".join(parts[k] for k in sorted(parts))


def test_ntpq_mrulist_lists_the_clients_with_their_counts(
    lab: tuple[nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    ns, _ = lab
    out = subprocess.run(
        ns.cmd(ntpsec_tools["ntpq"], "-n", "-c", "mrulist", "127.0.0.1"), capture_output=True, text=True, timeout=30
    )
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+\S+\s+([0-9a-f]+)\s+(\S)\s+(\d)\s+(\d)\s+(\d+)\s+\S+\s+\S+\s+(\d+)\s+(\S+)$", line)
        if m:
            rows[m[8]] = (int(m[2], 16), m[3], int(m[4]), int(m[5]), int(m[6]))
    assert "lstint avgint rstr" in out.stdout, out.stdout + out.stderr
    for ip, n in CLIENTS.items():
        # rs 0x4e0: kod limited nomodify noquery (ntpd's bits), 'K' as ntpd prints it; mode 3, version 4
        assert rows[ip] == (0x4E0 | 0x10 | 0x100, "K", 3, 4, n), out.stdout
    assert "127.0.0.1" in rows  # ntpq itself (mode 6)
    assert rows["127.0.0.1"][2] == 6


def test_ntpq_mrulist_filters_as_with_ntpd(lab: tuple[nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]) -> None:
    """``mincount=002`` (ntpq sends 2.0: it hung ntpq), ``mindrop=1`` (was "No response"), ``recent=2`` (listed
    every client): each ends, and lists what ntpd would."""
    ns, _ = lab

    def listed(command: str) -> list[str]:
        out = subprocess.run(
            ns.cmd(ntpsec_tools["ntpq"], "-n", "-c", command, "127.0.0.1"), capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0 and "Collected" in out.stdout, command + out.stdout + out.stderr
        return re.findall(r" (\d+\.\d+\.\d+\.\d+)$", out.stdout, re.M)

    assert set(listed("mrulist mincount=002")) == {"127.0.0.1", "127.0.0.3", "127.0.0.4"}
    assert listed("mrulist mindrop=1") == []
    assert listed("mrulist recent=2") == ["127.0.0.1", "127.0.0.4"]  # newest first: ntpq itself, then .4


def test_noquery_and_nomrulist_get_no_list(lab: tuple[nsutil.NetNs, Appliance]) -> None:
    ns, _ = lab
    nonce = HEADER.pack((2 << 3) | 6, mode6.OP_REQ_NONCE, 1, 0, 0, 0, 0)
    assert ask(ns, "127.0.0.9", nonce, timeout=0.5) is None  # noquery: nothing at all
    reply = ask(ns, "127.0.0.8", nonce)
    assert reply is not None
    b1, status = reply[1], struct.unpack_from("!H", reply, 4)[0]
    assert b1 & 0x40 and status >> 8 == mode6.ERR_PERMISSION and len(reply) == 12
    # and the loopback asker gets a nonce, which is good only from its own address
    reply = ask(ns, "127.0.0.1", nonce)
    assert reply is not None and reply[12:18] == b"nonce="
    text = reply[12 : 12 + struct.unpack_from("!H", reply, 10)[0]].strip()
    read = text + b", frags=8"
    req = HEADER.pack((2 << 3) | 6, mode6.OP_READ_MRU, 2, 0, 0, 0, len(read)) + read + b"\0" * (-len(read) % 4)
    assert ask(ns, "127.0.0.3", req, timeout=0.5) is None  # restrict 127.0.0.3 is noquery (default)
    answer = ask_whole(ns, "127.0.0.1", req)
    assert b"addr.0=" in answer and b"now=0x" in answer


def test_a_list_longer_than_one_answer_comes_whole(
    lab: tuple[nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    """60 more clients: several READ_MRU answers of 8 fragments, ntpq going on after the newest it holds."""
    ns, app = lab
    extra = [f"127.0.1.{i}" for i in range(1, 61)]
    for ip in extra:
        assert ask(ns, ip, b"\x23" + bytes(47), 48) is not None
    time.sleep(2.5)  # the mode 6 rate limit's burst back (20 datagrams a second)
    out = subprocess.run(
        ns.cmd(ntpsec_tools["ntpq"], "-n", "-c", "mrulist", "127.0.0.1"), capture_output=True, text=True, timeout=60
    )
    listed = set(re.findall(r" (\d+\.\d+\.\d+\.\d+)$", out.stdout, re.M))
    assert set(extra) | set(CLIENTS) <= listed, out.stdout + out.stderr
    assert len(listed) == len({e.addr for e in app.server.mru.entries()})
    assert "Collected" in out.stdout


def test_the_list_follows_new_clients(lab: tuple[nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]) -> None:
    ns, app = lab
    before = {e.addr: e.count for e in app.server.mru.entries()}
    assert ask(ns, "127.0.0.6", b"\x23" + bytes(47), 48) is not None
    time.sleep(0.1)
    after = {e.addr: e.count for e in app.server.mru.entries()}
    assert "127.0.0.6" not in before and after["127.0.0.6"] == 1
