"""The MRU list of recent clients: counts, times, bounds and eviction, in Python and in C (the same answers)."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.io import fastpath
from appliance.ntp.mru import MruEntry, MruTable
from appliance.timebase import ntp64_from_ns

TABLES = [MruTable]
if fastpath.available():
    TABLES.append(fastpath.FastMru)


@pytest.mark.parametrize("make", TABLES)
def test_counts_first_and_last_seen_and_latest_port(make: type) -> None:
    t = make(4)
    t.record("192.0.2.1", 1000, 10, 0x23, 5)
    t.record("2001:db8::1", 123, 20, 0x24, 0)
    t.record("192.0.2.1", 1001, 30, 0x16, 7)
    assert t.entries() == [
        MruEntry("2001:db8::1", 123, 20, 20, 1, 0x24, 0),
        MruEntry("192.0.2.1", 1001, 10, 30, 2, 0x16, 7),
    ]
    assert len(t) == 2


@pytest.mark.parametrize("make", TABLES)
def test_full_table_drops_the_least_recently_seen(make: type) -> None:
    t = make(3)
    for i, ip in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.3"]):
        t.record(ip, 1, i, 0x23, 0)
    t.record("10.0.0.1", 1, 10, 0x23, 0)  # now the newest: 10.0.0.2 is the oldest
    t.record("10.0.0.4", 1, 11, 0x23, 0)
    assert [e.addr for e in t.entries()] == ["10.0.0.3", "10.0.0.1", "10.0.0.4"]
    assert len(t) == 3 and t.evicted == 1


@pytest.mark.parametrize("make", TABLES)
def test_a_dual_stack_sockets_ipv4_client_and_a_scope_id_are_one_client(make: type) -> None:
    t = make(4)
    t.record("::ffff:192.0.2.1", 1000, 10, 0x23, 0)
    t.record("192.0.2.1", 1001, 20, 0x16, 0)
    t.record("fe80::1%eth0", 123, 30, 0x23, 0)
    t.record("fe80::1", 123, 40, 0x23, 0)
    assert [(e.addr, e.count) for e in t.entries()] == [("192.0.2.1", 2), ("fe80::1", 2)]


@pytest.mark.parametrize("make", TABLES)
def test_after_reads_a_piece_newer_than_an_entry_as_it_was_seen(make: type) -> None:
    t = make(8)
    for i in range(5):
        t.record(f"10.0.0.{i}", 1, i * 1000, 0x23, 0)
    assert [e.addr for e in t.after(None, 0, 2)] == ["10.0.0.0", "10.0.0.1"]
    assert [e.addr for e in t.after("10.0.0.1", ntp64_from_ns(1000), 10)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert t.after("10.0.0.4", ntp64_from_ns(4000), 10) == []
    assert t.after("10.0.0.9", 0, 10) is None  # not in the table
    t.record("10.0.0.1", 1, 9000, 0x23, 0)
    assert t.after("10.0.0.1", ntp64_from_ns(1000), 10) is None  # seen again since
    assert t.newest() == MruEntry("10.0.0.1", 1, 1000, 9000, 2, 0x23, 0)
    assert make(1).newest() is None


def test_a_table_has_room_for_one_at_least() -> None:
    with pytest.raises(ValueError):
        MruTable(0)
    if fastpath.available():
        with pytest.raises(ValueError):
            fastpath.FastMru(0)


@pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 65535), st.integers(0, 63), st.integers(0, 1 << 13))),
)
def test_compiled_table_gives_the_python_tables_answers(depth: int, datagrams: list[tuple[int, int, int, int]]) -> None:
    py, c = MruTable(depth), fastpath.FastMru(depth)
    for t, (host, port, mv, flags) in enumerate(datagrams):
        ip = f"198.51.100.{host}" if host % 2 else f"2001:db8::{host + 1:x}"  # as the socket writes them
        py.record(ip, port, t, mv, flags)
        c.record(ip, port, t, mv, flags)
    assert c.entries() == py.entries()
    assert c.evicted == py.evicted
    assert c.newest() == py.newest()
    for e in py.entries():
        for stamp in (ntp64_from_ns(e.last_ns), ntp64_from_ns(e.last_ns) + 1):
            assert c.after(e.addr, stamp, 3) == py.after(e.addr, stamp, 3)
    assert c.after(None, 0, 5) == py.after(None, 0, 5) == py.entries()[:5]


@pytest.mark.skipif(not fastpath.available(), reason="the compiled data plane is not built here")
def test_compiled_table_memory_is_fixed_and_bounded() -> None:
    t = fastpath.FastMru(8192)
    assert t.nbytes <= 8192 * 64 + 16384 * 4  # 64 octets an entry, two hash heads an entry
    for i in range(50_000):
        t.record(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 123, i, 0x23, 0)
    assert len(t) == 8192 and t.evicted == 50_000 - 8192
    assert t.entries()[-1].addr == "10.0.195.79"  # the last one recorded (49999)


def test_python_table_stays_within_its_depth_in_entries_and_memory() -> None:
    t = MruTable(1000)
    tracemalloc.start()
    try:
        for i in range(1000):
            t.record(f"10.0.{i >> 8}.{i & 255}", 123, i, 0x23, 0)
        full, _ = tracemalloc.get_traced_memory()
        for i in range(1000, 20_000):
            t.record(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 123, i, 0x23, 0)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(t) == 1000 and t.evicted == 19_000
    # nothing grows with the clients past the bound (the dict's own slack aside): under 400 octets an entry
    assert after < full * 1.5 and after < 1000 * 400
