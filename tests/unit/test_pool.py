"""appliance/pool.py: the monitors' points per check, the score recursion, and a reason for each lost point."""

from __future__ import annotations

import pytest

from appliance.pool import (
    Check,
    Sample,
    checks_to_reach,
    inside_kind,
    next_score,
    offset_points,
    report,
    score_check,
    steady_score,
)

MS = 1_000_000


def reply(offset_ms: float, delay_ms: float = 1.0, stratum: int = 1, refid: str = "PPS", leap: int = 0) -> Sample:
    return Sample("reply", round(offset_ms * MS), round(delay_ms * MS), stratum, leap, refid)


@pytest.mark.parametrize(
    ("offset_ms", "points"),
    [(0, 1.0), (-25, 1.0), (50, 1 - 0.5 * 25 / 75), (100, 0.5), (-425, -0.25), (750, -1.0), (751, -2.0), (3001, -4.0)],
)
def test_offset_points(offset_ms: float, points: float) -> None:
    assert offset_points(round(offset_ms * MS))[0] == pytest.approx(points)


def test_the_ceiling_is_twenty_and_the_recursion_gets_there() -> None:
    score = 0.0
    for _ in range(200):
        score = next_score(score, 1.0)
    assert score == pytest.approx(20.0, abs=1e-3) and steady_score(1.0) == pytest.approx(20.0)
    assert checks_to_reach(1.0) == 14  # 20 * (1 - 0.95**14) = 10.25
    assert checks_to_reach(0.4) is None  # tends to 8: never in DNS
    assert next_score(-49.0, -10.0, floor=-50.0) == -50.0


def test_healthy_check_keeps_the_lowest_delay_sample() -> None:
    v = score_check(Check("198.51.100.1", (reply(3, 9), reply(0.2, 0.5), reply(2, 4))))
    assert v.points == 1.0 and v.lost == () and v.best == reply(0.2, 0.5) and v.offset_ns == 200_000


def test_offset_against_the_reference() -> None:
    # the server reads 20 ms ahead of this host, and this host is 30 ms ahead of the trusted servers: 50 ms off
    v = score_check(Check("198.51.100.1", (reply(20),) * 3, reference_ns=30 * MS))
    assert v.offset_ns == 50 * MS and v.points == pytest.approx(0.8333, abs=1e-4)
    assert "offset +50.000 ms against the reference is over 25 ms" in v.lost[0]


def test_rate_kod_local_clock_unsync_deny_silence() -> None:
    rate = score_check(Check("a", (reply(0), Sample("kod", kiss="RATE"), Sample("kod", kiss="RATE"))))
    assert rate.points == -3.5 and "rate limit trips" in rate.lost[0] and "answered request 2" in rate.lost[0]
    local = score_check(Check("a", (reply(0, stratum=10, refid="LOCL"),) * 3))
    assert local.points == -4 and "local clock served publicly" in local.lost[0]
    unsync = score_check(Check("a", (reply(0, stratum=16, refid="INIT", leap=3),) * 3))
    assert unsync.points == -4 and "not synchronised" in unsync.lost[0]
    deny = score_check(Check("a", (Sample("kod", kiss="DENY"),) * 3))
    assert deny.points == -10 and deny.floor == -50 and "restrict" in deny.lost[0]
    silent = score_check(Check("2001:db8::1", (Sample("timeout"),) * 3))
    assert silent.points == -5 and "no answer on IPv6" in silent.lost[0] and "firewall" in silent.lost[0]
    closed = score_check(Check("192.0.2.1", (Sample("refused"),) * 3))
    assert "no answer on IPv4" in closed.lost[0] and "nothing serves NTP" in closed.lost[0]


def test_a_lost_later_request_costs_nothing_but_is_noted() -> None:
    v = score_check(Check("a", (reply(0), Sample("timeout"), Sample("timeout"))))
    assert v.points == 1.0 and v.lost == () and "rate limiting" in v.notes[0]


def test_report_names_each_address_and_its_score() -> None:
    lines, lowest = report(
        [Check("198.51.100.1", (reply(0.1),) * 3), Check("2001:db8::1", (Sample("timeout"),) * 3)], "this host's clock"
    )
    text = "\n".join(lines)
    assert "198.51.100.1 (IPv4)" in text and "2001:db8::1 (IPv6)" in text
    assert "predicted score: 20.0 of 20" in text and "predicted score: -100.0 of 20" in text
    assert lowest == pytest.approx(-100.0)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("192.168.1.50", "private (RFC 1918)"),
        ("10.1.2.3", "private (RFC 1918)"),
        ("172.31.255.1", "private (RFC 1918)"),
        ("100.64.0.1", "shared (RFC 6598, carrier-grade NAT)"),
        ("fe80::1%eth0", "link-local"),
        ("169.254.10.1", "link-local"),
        ("fd00::5", "unique local (RFC 4193)"),
        ("0.0.0.0", "unspecified"),
        ("203.0.113.5", None),
        ("172.32.0.1", None),
        ("2001:db8::1", None),
        ("not-an-address", None),
    ],
)
def test_addresses_no_monitor_can_reach(address: str, kind: str | None) -> None:
    assert inside_kind(address) == kind
