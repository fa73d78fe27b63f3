"""The system state from a selection: stratum, refid, root delay and dispersion, reference time."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import replace

import pytest

from appliance.ntp.packet import LEAP_INSERT, LEAP_NONE, LEAP_UNSYNC, refid_from_text
from appliance.sources.selection import select
from appliance.sources.source import MAXDIST_NS, Source, SourceConfig, SourceKind, SourceSample
from appliance.sources.system import refid_for_address, system_state
from appliance.state import PHI_PPB, STRATUM_UNSYNC, SystemState, local_clock_state
from appliance.timebase import NS_PER_S

MS = 1_000_000
US = 1_000
T0 = 1_795_000_000 * NS_PER_S


def fed(config: SourceConfig, samples: list[SourceSample]) -> Source:
    src = Source(config)
    for s in samples:
        src.polled()
        src.add(s)
    return src


def server(address: str, stratum: int = 2, offset: int = 0, **kw: int) -> Source:
    return fed(
        SourceConfig(address, SourceKind.SERVER, address=address),
        [
            SourceSample(
                time_ns=T0 + i * 64 * NS_PER_S,
                offset_ns=offset + (i % 3) * 10 * US,
                delay_ns=4 * MS + i * US,
                dispersion_ns=2 * US,
                root_delay_ns=kw.get("root_delay", 12 * MS),
                root_dispersion_ns=kw.get("root_dispersion", 3 * MS),
                stratum=stratum,
                leap=kw.get("leap", LEAP_NONE),
                refid=b"GPS\0" if stratum == 1 else b"\x0a\x00\x00\x01",
            )
            for i in range(8)
        ],
    )


def pps(offset: int = 0) -> Source:
    return fed(
        SourceConfig("PPS(0)", SourceKind.REFCLOCK, refid=refid_from_text("PPS"), stratum=0),
        [SourceSample(time_ns=T0 + i * NS_PER_S, offset_ns=offset, dispersion_ns=US) for i in range(8)],
    )


def test_refclock_peer_makes_us_stratum_1_with_its_refid() -> None:
    now = T0 + 10 * NS_PER_S
    e = pps(-2 * US).estimate(now)
    sel = select([e], now)
    st = system_state(sel, now, -20, discipline_error_ns=500)
    assert (st.stratum, st.refid, st.leap, st.precision) == (1, b"PPS\0", LEAP_NONE, -20)
    assert st.root_delay_ns == 0
    assert st.reference_ns == T0 + 7 * NS_PER_S
    # served at `now`: the peer's dispersion (as of now) + jitter + |offset| + the discipline's error
    assert st.root_dispersion_at(now) == e.dispersion_ns + sel.jitter_ns + 2 * US + 500
    assert st.synchronised


def test_ipv4_server_peer() -> None:
    now = T0 + 8 * 64 * NS_PER_S
    e = server("192.0.2.7", stratum=2, offset=3 * MS).estimate(now)
    sel = select([e], now)
    st = system_state(sel, now, -22)
    assert st.stratum == 3
    assert st.refid == bytes([192, 0, 2, 7])
    assert st.root_delay_ns == 12 * MS + e.delay_ns
    assert st.root_dispersion_at(now) == 3 * MS + e.dispersion_ns + sel.jitter_ns + abs(sel.offset_ns)
    # and it keeps growing at PHI from the reference time
    later = now + 1000 * NS_PER_S
    assert st.root_dispersion_at(later) - st.root_dispersion_at(now) == 1000 * PHI_PPB


def test_ipv6_refid_is_the_md5_of_the_address() -> None:
    addr = "2001:db8::123"
    want = hashlib.md5(ipaddress.IPv6Address(addr).packed).digest()[:4]
    assert refid_for_address(addr) == want
    assert refid_for_address("fe80::1%eth0") == hashlib.md5(ipaddress.IPv6Address("fe80::1").packed).digest()[:4]
    assert refid_for_address("::ffff:192.0.2.1") == bytes([192, 0, 2, 1])
    now = T0 + 8 * 64 * NS_PER_S
    assert system_state(select([server(addr).estimate(now)], now), now, -20).refid == want


def test_local_clock_serves_its_fudged_stratum() -> None:
    now = T0 + 100 * NS_PER_S
    e = Source(SourceConfig("LOCAL(0)", SourceKind.LOCAL, refid=refid_from_text("LOCL"), stratum=10)).estimate(now)
    st = system_state(select([e], now), now, -20)
    assert st == local_clock_state(10, -20, now)  # its first poll, now
    assert st.stratum == 10 and st.refid == b"LOCL"


def test_stratum_15_peer_leaves_us_unsynchronised() -> None:
    now = T0 + 8 * 64 * NS_PER_S
    st = system_state(select([server("192.0.2.7", stratum=15).estimate(now)], now), now, -20)
    assert st.stratum == STRATUM_UNSYNC and not st.synchronised


def test_leap_comes_from_the_selection() -> None:
    now = T0 + 8 * 64 * NS_PER_S
    e = server("192.0.2.7", leap=LEAP_INSERT).estimate(now)
    assert system_state(select([e], now), now, -20).leap == LEAP_INSERT


def test_no_peer_is_unsynchronised() -> None:
    st = system_state(select([], T0), T0, -18)
    assert st == SystemState(precision=-18) and not st.synchronised and st.leap == LEAP_UNSYNC


def test_holdover_keeps_the_previous_state_while_its_distance_allows() -> None:
    prev = SystemState(
        leap=LEAP_NONE,
        stratum=1,
        precision=-20,
        root_delay_ns=0,
        root_dispersion_ns=MS,
        refid=b"PPS\0",
        reference_ns=T0,
    )
    empty = select([], T0)
    assert system_state(empty, T0 + 3600 * NS_PER_S, -21, previous=prev) == replace(prev, precision=-21)
    # 1.5 s at 15 ppm is 100 000 s: a little over a day
    days = T0 + 2 * 86400 * NS_PER_S
    assert system_state(empty, days, -21, previous=prev) == SystemState(precision=-21)
    assert MAXDIST_NS // PHI_PPB * NS_PER_S == 100_000 * NS_PER_S


@pytest.mark.parametrize("stratum", [1, 2, 5])
def test_stratum_is_one_more_than_a_server_peer(stratum: int) -> None:
    now = T0 + 8 * 64 * NS_PER_S
    assert system_state(select([server("192.0.2.1", stratum).estimate(now)], now), now, -20).stratum == stratum + 1
