"""Who gets time, a Kiss-o'-Death, or nothing, for each seed config: real packets between private namespaces.

A server namespace and a client namespace are joined by a veth link; the
client sends from LAN (192.168.0.0/24), outside (198.51.100.0/24, IPv6
2001:db8::/64) and, from the server's own namespace, loopback addresses. The
appliance runs the seed config as it stands. Nothing leaves the namespaces.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest
from harness import serving

from appliance.ntp.exchange import client_request
from appliance.ntp.packet import LEAP_UNSYNC, NtpPacket

pytestmark = pytest.mark.netns

SERVER = {4: "192.168.0.1", 6: "2001:db8::1", "out": "198.51.100.1"}
LAN, LAN_HOST, OUTSIDE, OUTSIDE6 = "192.168.0.77", "192.168.0.140", "198.51.100.7", "2001:db8::7"

# outcome of: one request ("time" with stratum, "unsync", "none"); a burst of 30 ("all", "kod", "limited");
# a mode 6 READSTAT ("reply", "none"). Mode 7 never gets an answer from anyone.
POOL = {
    LAN: ("unsync", "kod", "none"),
    OUTSIDE: ("unsync", "kod", "none"),
    OUTSIDE6: ("unsync", "kod", "none"),
    "127.0.0.1": ("unsync", "all", "reply"),
    "::1": ("unsync", "all", "reply"),
}
EXPECTED: dict[str, dict[str, tuple[str, str, str]]] = {
    "centos-pool-server.conf": POOL,
    "ubuntu-pool-server.conf": POOL,
    "ubuntu-default.conf": POOL,
    "lan-server-local-fallback.conf": {
        LAN: ("time 10", "all", "reply"),  # restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap
        # only the implicit default matches (noquery), and the local clock is not for the public:
        # 'localclock public unsync' (the default) tells them "unsynchronised"
        OUTSIDE: ("unsync", "all", "none"),
        OUTSIDE6: ("unsync", "all", "none"),
        "127.0.0.1": ("unsync", "all", "none"),
    },
    "lan-client.conf": {
        LAN_HOST: ("unsync", "all", "none"),  # restrict 192.168.0.140 nomodify notrap noquery
        LAN: ("unsync", "all", "none"),
        "::1": ("unsync", "all", "none"),
    },
}


@pytest.fixture
def lab(netns: Callable[[str], nsutil.NetNs]) -> Iterator[tuple[nsutil.NetNs, nsutil.NetNs]]:
    srv, cli = netns("srv"), netns("cli")
    nsutil.link(
        srv,
        cli,
        ["192.168.0.1/24", "198.51.100.1/24", "2001:db8::1/64"],
        [f"{LAN}/24", f"{LAN_HOST}/24", f"{OUTSIDE}/24", f"{OUTSIDE6}/64"],
    )
    yield srv, cli


def client_socket(srv: nsutil.NetNs, cli: nsutil.NetNs, source: str) -> tuple[socket.socket, tuple[str, int]]:
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    loopback = source in ("127.0.0.1", "::1")
    ns = srv if loopback else cli
    sock = ns.call(lambda: socket.socket(family, socket.SOCK_DGRAM))
    sock.bind((source, 0))
    sock.settimeout(0.3)
    if loopback:
        target = source
    elif family == socket.AF_INET6:
        target = SERVER[6]
    else:
        target = SERVER[4] if source.startswith("192.168.") else SERVER["out"]
    return sock, (target, 123)


def collect(sock: socket.socket, wait: float) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(2048))
        except TimeoutError:
            break
    return out


def one_request(sock: socket.socket, to: tuple[str, int]) -> str:
    sock.sendto(client_request(time.time_ns())[0], to)
    replies = collect(sock, 1.0)
    if not replies:
        return "none"
    p = NtpPacket.decode(replies[0])
    return "unsync" if p.leap == LEAP_UNSYNC else f"time {p.stratum}"


def burst(sock: socket.socket, to: tuple[str, int], n: int = 30) -> str:
    for _ in range(n):
        sock.sendto(client_request(time.time_ns())[0], to)
    replies = [NtpPacket.decode(r) for r in collect(sock, 1.0)]
    if any(p.kiss_code == "RATE" for p in replies):
        return "kod"
    return "all" if len(replies) == n else "limited"


def readstat(sock: socket.socket, to: tuple[str, int]) -> str:
    sock.sendto(struct.pack("!BBHHHHH", (2 << 3) | 6, 1, 1, 0, 0, 0, 0), to)
    return "reply" if collect(sock, 0.5) else "none"


def mode7(sock: socket.socket, to: tuple[str, int]) -> bool:
    sock.sendto(bytes([0x17, 0x00, 0x03, 0x2A]) + b"\0" * 188, to)  # ntpdc's monlist
    return bool(collect(sock, 0.3))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_config_access_table(name: str, lab: tuple[nsutil.NetNs, nsutil.NetNs], shared_data: Path) -> None:
    srv, cli = lab
    text = (shared_data / "seed-configs" / name).read_text()
    got: dict[str, tuple[str, str, str]] = {}
    answered_mode7 = []
    with serving(text, listen=("0.0.0.0", "::"), port=123, ns=srv, name=name):
        for source in EXPECTED[name]:
            sock, to = client_socket(srv, cli, source)
            with sock:
                got[source] = (one_request(sock, to), burst(sock, to), readstat(sock, to))
                if mode7(sock, to):
                    answered_mode7.append(source)
    assert got == EXPECTED[name]
    assert answered_mode7 == []
