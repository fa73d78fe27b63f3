"""The local clock goes only to clients that a specific ``restrict`` line admits (``localclock public``).

Configs are parsed from text, the local clock's state comes from
:class:`~appliance.refclock.local.LocalClock` as the daemon builds it, and
replies are decoded: what each client address is told.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import DATA

from appliance.config import Config, parse_config
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.mode6 import HEADER as MODE6_HEADER
from appliance.ntp.packet import LEAP_NONE, LEAP_UNSYNC, NtpPacket, refid_from_text
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, finish_reply
from appliance.refclock.local import LocalClock
from appliance.state import SystemState
from appliance.timebase import NS_PER_S

NOW = 1_795_000_000 * NS_PER_S
SEED = DATA / "seed-configs" / "lan-server-local-fallback.conf"
LOCAL = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"
UBUNTU = """\
restrict -4 default kod notrap nomodify nopeer noquery limited
restrict -6 default kod notrap nomodify nopeer noquery limited
restrict 127.0.0.1
restrict ::1
restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap
"""


def server_for(config: Config, now: int = NOW) -> NtpServer:
    local = LocalClock.from_config(config)
    assert local is not None
    return NtpServer(AccessTable.from_rules(config.restricts), RateLimiter(config.discard), state=local.state(now, -20))


def told(server: NtpServer, ip: str, rx: int = NOW) -> tuple[int, int, bytes]:
    """(leap, stratum, refid) of the reply to one client request from ``ip``."""
    out = server.handle(client_request(rx - 1000)[0], ip, 40123, rx)
    assert out is not None, ip
    p = NtpPacket.decode(finish_reply(*out, rx + 1000))
    return p.leap, p.stratum, p.refid


LOCL = (LEAP_NONE, 10, refid_from_text("LOCL"))
UNSYNC = (LEAP_UNSYNC, 16, b"INIT")


def seed_text() -> str:
    if not SEED.exists():
        pytest.skip(f"seed config not found: {SEED}")
    return SEED.read_text()


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("192.168.0.77", LOCL),  # restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap
        ("192.168.0.1", LOCL),
        ("::ffff:192.168.0.77", LOCL),  # a dual-stack socket's view of the same client
        ("192.168.1.77", UNSYNC),  # next door: only the implicit default matches
        ("198.51.100.7", UNSYNC),
        ("2001:db8::7", UNSYNC),
        ("127.0.0.1", UNSYNC),  # the seed has no restrict line for loopback
    ],
)
def test_seed_lan_server_serves_the_lan_only(ip: str, expected: tuple[int, int, bytes]) -> None:
    assert told(server_for(parse_config(seed_text(), SEED.name)), ip) == expected


def test_seed_lan_server_with_public_serve_serves_everybody() -> None:
    s = server_for(parse_config(seed_text() + "localclock public serve\n", SEED.name))
    for ip in ("192.168.0.77", "198.51.100.7", "2001:db8::7", "127.0.0.1"):
        assert told(s, ip) == LOCL, ip


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.5", UNSYNC),  # restrict -4 default
        ("2001:db8::5", UNSYNC),  # restrict -6 default
        ("127.0.0.1", LOCL),
        ("::1", LOCL),
        ("192.168.0.9", LOCL),
    ],
)
def test_family_defaults_count_as_default(ip: str, expected: tuple[int, int, bytes]) -> None:
    assert told(server_for(parse_config(UBUNTU + LOCAL, "t.conf")), ip) == expected


@pytest.mark.parametrize(
    ("rules", "ip", "expected"),
    [
        ("restrict 0.0.0.0 mask 0.0.0.0 nomodify", "203.0.113.5", UNSYNC),  # ntpd's long form of default
        ("restrict ::/0 nomodify", "2001:db8::5", UNSYNC),
        ("restrict 127.0.0.0/8", "127.0.0.53", LOCL),
        ("restrict 10.0.0.0 mask 255.0.0.0 kod limited nomodify notrap nopeer noquery", "10.1.2.3", LOCL),
        ("restrict 2001:db8::/32 nomodify", "2001:db8:1::5", LOCL),
        ("restrict 198.51.100.7", "198.51.100.7", LOCL),
        ("restrict 198.51.100.7", "198.51.100.8", UNSYNC),
    ],
)
def test_a_specific_line_admits_whatever_its_flags(rules: str, ip: str, expected: tuple[int, int, bytes]) -> None:
    text = f"restrict default kod limited nomodify notrap nopeer noquery\n{rules}\n{LOCAL}"
    assert told(server_for(parse_config(text, "t.conf")), ip) == expected


def test_refclock_local_form_hides_from_the_public_too() -> None:
    s = server_for(parse_config("refclock local stratum 12 refid LCL\nrestrict 192.168.0.0/24\n", "t.conf"))
    assert told(s, "192.168.0.9") == (LEAP_NONE, 12, refid_from_text("LCL"))
    assert told(s, "198.51.100.7") == UNSYNC


def test_public_and_lan_alternating_in_one_second_each_get_their_answer() -> None:
    s = server_for(parse_config(seed_text(), SEED.name))
    answers = [told(s, ip, NOW + i) for i, ip in enumerate(["198.51.100.7", "192.168.0.7"] * 3)]
    assert answers == [UNSYNC, LOCL] * 3


def test_public_unsync_reply_carries_no_time_of_the_local_clock() -> None:
    s = server_for(parse_config(seed_text(), SEED.name))
    out = s.handle(client_request(NOW - 1000)[0], "198.51.100.7", 40123, NOW)
    assert out is not None
    p = NtpPacket.decode(finish_reply(*out, NOW + 1000))
    assert (p.reference, p.root_delay, p.root_dispersion) == (0, 0, 0)
    assert p.receive != 0  # still a well-formed reply: the client learns "unsynchronised", not silence


def test_only_the_local_clock_state_is_hidden() -> None:
    """A GPS (stratum 1) state, as the timekeeper builds it, goes to everybody."""
    config = parse_config(seed_text(), SEED.name)
    gps = SystemState(leap=LEAP_NONE, stratum=1, refid=refid_from_text("PPS"), reference_ns=NOW - NS_PER_S)
    s = NtpServer(AccessTable.from_rules(config.restricts), RateLimiter(config.discard), state=gps)
    assert told(s, "198.51.100.7") == (LEAP_NONE, 1, refid_from_text("PPS"))
    s.set_state(LocalClock.from_config(config).state(NOW, -20))  # type: ignore[union-attr]
    assert told(s, "198.51.100.7") == UNSYNC
    assert told(s, "192.168.0.7") == LOCL


def readstat_leap(server: NtpServer, ip: str) -> int | None:
    out = server.handle(MODE6_HEADER.pack((2 << 3) | 6, 1, 7, 0, 0, 0, 0), ip, 40123, NOW)
    if out is None:
        return None
    status = MODE6_HEADER.unpack(out[0][: MODE6_HEADER.size])[3]
    return int(status >> 14)


def test_mode_6_status_word_tells_the_public_unsynchronised() -> None:
    s = server_for(parse_config(f"restrict default nomodify\nrestrict 192.168.0.0/24\n{LOCAL}", "t.conf"))
    assert readstat_leap(s, "198.51.100.7") == LEAP_UNSYNC
    assert readstat_leap(s, "192.168.0.7") == LEAP_NONE


def test_local_clock_from_config_carries_the_option(tmp_path: Path) -> None:
    assert LocalClock.from_config(parse_config(LOCAL, "t.conf")) == LocalClock(10, "LOCL", True)
    serve = parse_config(LOCAL + "localclock public serve\n", "t.conf")
    assert LocalClock.from_config(serve) == LocalClock(10, "LOCL", False)
    assert not LocalClock.from_config(serve).state(NOW, -20).public_unsync  # type: ignore[union-attr]
    assert LocalClock.from_config(parse_config(LOCAL, "t.conf")).state(NOW, -20).public_unsync  # type: ignore[union-attr]
