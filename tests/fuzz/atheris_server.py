"""Long fuzzing of the request handler with atheris (coverage-guided), outside CI.

    pip install atheris
    PYTHONPATH=. python tests/fuzz/atheris_server.py -max_total_time=600 -rss_limit_mb=2048

Each input is one datagram, its first octet choosing the source address. The
handler must never raise, never answer mode 7, never send a reply longer
than the request, and must count each datagram once: served, sent a KoD,
answered as control, or dropped with a reason. Where the compiled data plane
is built, every input also goes to it, and its answer must be the Python
server's, octet for octet. CI runs the same properties with hypothesis
(tests/unit/ntp/test_server_fuzz.py, tests/unit/io/test_fastpath.py); this
finds deeper paths given time.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import ipaddress

    from appliance.config.model import Discard, Location, RestrictRule
    from appliance.io import fastpath
    from appliance.ntp.access import AccessTable
    from appliance.ntp.ratelimit import RateLimiter
    from appliance.ntp.server import NtpServer, finish_reply
    from appliance.state import local_clock_state

NOW = 1_795_000_000_000_000_000
HERE = Location("fuzz", 1)
RULES = [
    RestrictRule(None, None, frozenset({"kod", "limited", "nomodify", "notrap", "nopeer", "noquery"}), HERE),
    RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), HERE),
    RestrictRule(ipaddress.ip_network("192.168.0.0/24"), 4, frozenset({"nomodify", "notrap"}), HERE),
]
SOURCES = ["127.0.0.1", "203.0.113.5", "192.168.0.9", "::1", "2001:db8::7"]
SERVER = NtpServer(
    AccessTable.from_rules(RULES),
    RateLimiter(Discard()),
    peers=frozenset({"192.168.0.9"}),
    state=local_clock_state(1, -20, NOW),
)
FAST = None
if fastpath.available():
    _subject = NtpServer(
        AccessTable.from_rules(RULES),
        fastpath.FastRateLimiter(Discard()),
        peers=frozenset({"192.168.0.9"}),
        state=local_clock_state(1, -20, NOW),
    )
    FAST = (_subject, fastpath.FastServer(-1, _subject))
_tick = [0]


def compiled(packet: bytes, ip: str, port: int, rx: int) -> bytes | None:
    """What the compiled data plane (or, for what it hands back, the Python path) answers."""
    assert FAST is not None
    subject, fast = FAST
    action, reply = fast.handle(packet, ip, port, rx, NOW)
    if action != fastpath.PUNT:
        return reply
    out = subject.handle(packet, ip, port, rx)
    return None if out is None else finish_reply(*out, NOW)


def outcomes() -> int:
    """Datagrams the server has accounted for: served, KoD, control answered, dropped."""
    c = SERVER.counters
    return c.served + c.kod_sent + c.control - c.dropped.get("control", 0) + c.dropped_total


def one_input(data: bytes) -> None:
    if not data:
        return
    ip = SOURCES[data[0] % len(SOURCES)]
    packet = data[1:]
    _tick[0] += 1
    port, rx = 40000 + data[0], NOW + _tick[0] * 1000
    before = (SERVER.counters.received, outcomes())
    out = SERVER.handle(packet, ip, port, rx)
    reply = None if out is None else finish_reply(*out, NOW)
    if (SERVER.counters.received, outcomes()) != (before[0] + 1, before[1] + 1):
        raise AssertionError(f"{packet.hex()} from {ip} was not counted exactly once")
    if FAST is not None and compiled(packet, ip, port, rx) != reply:
        raise AssertionError(f"the compiled data plane answers {packet.hex()} from {ip} differently")
    if reply is None:
        return
    if len(reply) > len(packet):
        raise AssertionError(f"amplification: {len(packet)} -> {len(reply)} octets from {ip}")
    if packet[0] & 7 == 7:
        raise AssertionError("mode 7 answered")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
