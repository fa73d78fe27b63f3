"""Servers and pools: what to resolve, when to resolve again, and which associations to drop."""

from __future__ import annotations

import random

from appliance.config import parse_config
from appliance.ntp.packet import MODE_SERVER, NtpPacket, refid_from_text
from appliance.sources.client import (
    POOL_SIZE,
    RESOLVE_REFRESH_NS,
    RESOLVE_RETRY_NS,
    RETIRE_HOLD_NS,
    UNREACH_POLLS,
    Association,
    Resolution,
    Upstreams,
)
from appliance.timebase import NS_PER_S

M0 = 1_000 * NS_PER_S
T0 = 1_795_000_000 * NS_PER_S


def upstreams(text: str) -> Upstreams:
    return Upstreams(parse_config(text, "test.conf").servers, M0, rng=random.Random(1))


def silence(a: Association, polls: int = UNREACH_POLLS) -> None:
    for _ in range(polls):
        a.request(M0)
        a.timed_out()


def deny(a: Association) -> None:
    q = NtpPacket.decode(a.request(M0))
    a.sent(T0)
    kod = NtpPacket(mode=MODE_SERVER, stratum=0, refid=refid_from_text("DENY"), origin=q.transmit).encode()
    assert a.receive(kod, T0).outcome == "kod"


def test_numeric_servers_need_no_resolution_and_refclocks_are_skipped() -> None:
    u = upstreams("server 192.0.2.1 iburst\nserver 2001:db8::1 port 1123 prefer\nserver 127.127.1.0\n")
    assert [(a.address, a.port) for a in u.associations] == [("192.0.2.1", 123), ("2001:db8::1", 1123)]
    assert u.resolutions_due(M0) == [] and u.next_wakeup_ns() == M0
    assert [a.name for a in u.due(M0)] == ["192.0.2.1", "[2001:db8::1]:1123"]
    assert u.associations[0].settings.iburst and u.associations[1].settings.prefer
    assert len(u.estimates(T0)) == 2


def test_the_same_address_twice_gives_one_association() -> None:
    u = upstreams("server 192.0.2.1\npeer 192.0.2.1\n")
    assert len(u.associations) == 1


def test_a_server_name_is_resolved_to_one_address() -> None:
    u = upstreams("server ntp.example.org iburst minpoll 4 maxpoll 8\n")
    assert u.associations == []
    assert u.resolutions_due(M0) == [Resolution(0, "ntp.example.org", 123, None, 1)]
    assert u.resolutions_due(M0) == []  # asked once; the answer is awaited
    new = u.resolved(0, ["192.0.2.5", "192.0.2.6"], M0)
    assert [a.address for a in new] == ["192.0.2.5"] and new[0].host == "ntp.example.org"
    assert new[0].settings.minpoll == 4 and new[0].settings.maxpoll == 8
    assert u.resolutions_due(M0 + 10 * RESOLVE_REFRESH_NS) == []  # it works: no need to look again


def test_a_failed_lookup_is_retried_with_back_off() -> None:
    u = upstreams("server -6 ntp.example.org\n")
    (r,) = u.resolutions_due(M0)
    assert r.family == 6
    u.resolution_failed(0, M0)
    assert u.next_wakeup_ns() == M0 + RESOLVE_RETRY_NS
    assert u.resolutions_due(M0 + RESOLVE_RETRY_NS - 1) == []
    assert len(u.resolutions_due(M0 + RESOLVE_RETRY_NS)) == 1
    u.resolution_failed(0, M0 + RESOLVE_RETRY_NS)
    assert u.next_wakeup_ns() == M0 + 3 * RESOLVE_RETRY_NS  # doubled


def test_a_pool_takes_up_to_four_servers() -> None:
    u = upstreams("pool pool.example.org iburst\nserver 192.0.2.2\n")
    (r,) = u.resolutions_due(M0)
    assert r.count == POOL_SIZE and r.host == "pool.example.org"
    addresses = [f"192.0.2.{i}" for i in range(1, 8)]
    new = u.resolved(r.key, addresses, M0)
    # 192.0.2.2 is a server of its own already
    assert [a.address for a in new] == ["192.0.2.1", "192.0.2.3", "192.0.2.4", "192.0.2.5"]
    assert all(a.settings.iburst for a in new)
    assert u.resolutions_due(M0 + RESOLVE_REFRESH_NS) == []


def test_a_short_pool_asks_again_after_the_refresh_interval() -> None:
    u = upstreams("pool pool.example.org\n")
    u.resolutions_due(M0)
    u.resolved(0, ["192.0.2.1", "192.0.2.2"], M0)
    assert u.resolutions_due(M0 + RESOLVE_REFRESH_NS - 1) == []
    (r,) = u.resolutions_due(M0 + RESOLVE_REFRESH_NS)
    assert r.count == 2


def test_unreachable_pool_members_are_retired_and_replaced() -> None:
    u = upstreams("pool pool.example.org\n")
    u.resolutions_due(M0)
    members = u.resolved(0, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], M0)
    silence(members[0], UNREACH_POLLS - 1)
    assert u.retire(M0) == []
    silence(members[0], 1)
    assert u.retire(M0) == [members[0]]
    assert len(u.associations) == 3
    # re-resolution is requested soon (not at the refresh interval)
    assert u.resolutions_due(M0 + RESOLVE_RETRY_NS - 1) == []
    (r,) = u.resolutions_due(M0 + RESOLVE_RETRY_NS)
    assert r.count == 1
    # the retired address is not taken back within the hour; another is
    new = u.resolved(0, ["192.0.2.1", "192.0.2.9"], M0 + RESOLVE_RETRY_NS)
    assert [a.address for a in new] == ["192.0.2.9"]


def test_retired_addresses_may_come_back_after_an_hour() -> None:
    u = upstreams("pool pool.example.org\n")
    u.resolutions_due(M0)
    (a,) = u.resolved(0, ["192.0.2.1"], M0)
    silence(a)
    u.retire(M0)
    later = M0 + RETIRE_HOLD_NS + 1
    u.retire(later)
    assert [b.address for b in u.resolved(0, ["192.0.2.1"], later)] == ["192.0.2.1"]


def test_a_pool_member_that_says_deny_is_retired() -> None:
    u = upstreams("pool pool.example.org\n")
    u.resolutions_due(M0)
    members = u.resolved(0, ["192.0.2.1", "192.0.2.2"], M0)
    deny(members[1])
    assert u.retire(M0) == [members[1]]


def test_a_server_that_says_deny_stays_visible_but_unused() -> None:
    u = upstreams("server 192.0.2.1\n")
    deny(u.associations[0])
    assert u.retire(M0) == [] and len(u.associations) == 1
    assert u.due(M0 + 10**15) == []
    assert not u.estimates(T0)[0].usable


def test_an_unreachable_server_name_is_resolved_again_and_moves() -> None:
    u = upstreams("server ntp.example.org\n")
    u.resolutions_due(M0)
    (old,) = u.resolved(0, ["192.0.2.5"], M0)
    silence(old)
    later = M0 + RESOLVE_REFRESH_NS
    (r,) = u.resolutions_due(later)
    assert r.count == 1
    assert u.resolved(0, ["192.0.2.5"], later) == []  # same address: nothing to do
    (r,) = u.resolutions_due(later + RESOLVE_REFRESH_NS)
    (new,) = u.resolved(0, ["192.0.2.6"], later + RESOLVE_REFRESH_NS)
    assert new.address == "192.0.2.6"
    assert u.retire(later) == [old] and u.associations == [new]


# -- a configuration reload -------------------------------------------------------------------------


def test_reconfigure_keeps_unchanged_lines_and_retires_the_rest() -> None:
    u = upstreams("server 192.0.2.1 iburst\nserver 192.0.2.2\npool pool.example\n")
    kept = u.associations[0]
    (lookup,) = u.resolutions_due(M0)
    new = parse_config("# moved down\n\nserver 192.0.2.1 iburst\nserver 192.0.2.3\n", "test.conf").servers
    added, removed = u.reconfigure(new, M0 + NS_PER_S)
    assert (added, removed) == (["192.0.2.3"], ["192.0.2.2", "pool.example"])
    assert [a.address for a in u.associations] == ["192.0.2.1", "192.0.2.3"]
    assert u.associations[0] is kept
    (gone,) = u.retire(M0 + NS_PER_S)
    assert (
        gone.address == "192.0.2.2" and gone.stopped == "its line is gone from the configuration"
    )  # not "unreachable"
    assert u.resolved(lookup.key, ["198.51.100.1"], M0 + NS_PER_S) == []  # the pool's answer comes too late
    u.resolution_failed(lookup.key, M0 + NS_PER_S)  # and so does its failure: nothing to retry


def test_reconfigure_with_a_changed_option_makes_a_new_association() -> None:
    u = upstreams("server 192.0.2.1\n")
    old = u.associations[0]
    added, removed = u.reconfigure(parse_config("server 192.0.2.1 minpoll 4\n", "t").servers, M0)
    assert (added, removed) == (["192.0.2.1"], ["192.0.2.1"])
    assert u.associations[0] is not old and u.associations[0].minpoll == 4
    assert u.retire(M0) == [old]
