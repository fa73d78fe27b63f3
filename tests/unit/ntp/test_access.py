"""Access control (ntpd ``restrict``): seed configurations, matching rules, and a reference model."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.model import RESTRICT_FLAGS, Location, RestrictRule
from appliance.ntp import access
from appliance.ntp.access import (
    IGNORE,
    IMPLICIT_DEFAULT,
    KOD,
    LIMITED,
    NOMODIFY,
    NOPEER,
    NOQUERY,
    NOSERVE,
    NOTRAP,
    AccessTable,
    Restriction,
    flag_names,
    flags_from_names,
)

HERE = Location("test", 1)
POOL = KOD | LIMITED | NOMODIFY | NOTRAP | NOPEER | NOQUERY  # the tutorials' default line


def rule(net: str | None, flags: str = "", family: int | None = None, source: bool = False) -> RestrictRule:
    """A RestrictRule as the parser would build it: ``net`` is None for ``default``, else CIDR text."""
    network = None if net is None else ipaddress.ip_network(net, strict=False)
    if network is not None:
        family = network.version
    return RestrictRule(network, family, frozenset(flags.split()), HERE, source)


# --- the seed configurations ------------------------------------------------------------------
# Each entry: the file, its restrict lines as written (checked against the file), the same
# lines as RestrictRule values built by hand, and address -> expected (flags, is_default).

UBUNTU_LINES = (
    "restrict -4 default kod notrap nomodify nopeer noquery limited",
    "restrict -6 default kod notrap nomodify nopeer noquery limited",
    "restrict 127.0.0.1",
    "restrict ::1",
)
UBUNTU_RULES = (
    rule(None, "kod notrap nomodify nopeer noquery limited", family=4),
    rule(None, "kod notrap nomodify nopeer noquery limited", family=6),
    rule("127.0.0.1/32"),
    rule("::1/128"),
)
POOL_SERVER_TABLE = (
    ("203.0.113.5", POOL, True),
    ("139.162.170.219", POOL, True),
    ("192.168.0.5", POOL, True),
    ("127.0.0.1", 0, False),
    ("127.0.0.2", POOL, True),  # loopback is not exempt, only 127.0.0.1 is listed
    ("::ffff:127.0.0.1", 0, False),
    ("::1", 0, False),
    ("2001:db8::1", POOL, True),
    ("2a01:7e01::f03c:91ff:fe8b:e9e0", POOL, True),
    ("fe80::1%eth0", POOL, True),
    ("224.0.1.1", IGNORE, False),  # multicast sources are forged
    ("ff02::101", IGNORE, False),
)

SEEDS = {
    "ubuntu-pool-server.conf": (UBUNTU_LINES, UBUNTU_RULES, POOL_SERVER_TABLE),
    "ubuntu-default.conf": (UBUNTU_LINES, UBUNTU_RULES, POOL_SERVER_TABLE),
    "centos-pool-server.conf": (
        (
            "restrict default nomodify notrap nopeer noquery kod limited",
            "restrict 127.0.0.1",
            "restrict ::1",
        ),
        (
            rule(None, "nomodify notrap nopeer noquery kod limited"),  # bare default: both families
            rule("127.0.0.1/32"),
            rule("::1/128"),
        ),
        POOL_SERVER_TABLE,
    ),
    "lan-server-local-fallback.conf": (
        ("restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap",),
        (rule("192.168.0.0/24", "nomodify notrap"),),
        (
            ("192.168.0.77", NOMODIFY | NOTRAP, False),
            ("192.168.0.0", NOMODIFY | NOTRAP, False),
            ("192.168.0.255", NOMODIFY | NOTRAP, False),
            ("::ffff:192.168.0.77", NOMODIFY | NOTRAP, False),
            ("192.168.1.5", IMPLICIT_DEFAULT, True),  # no default line: stratum1's implicit default
            ("10.0.0.1", IMPLICIT_DEFAULT, True),
            ("127.0.0.1", IMPLICIT_DEFAULT, True),
            ("::1", IMPLICIT_DEFAULT, True),
            ("2001:db8::1", IMPLICIT_DEFAULT, True),
        ),
    ),
    "lan-client.conf": (
        ("restrict 192.168.0.140 nomodify notrap noquery",),
        (rule("192.168.0.140/32", "nomodify notrap noquery"),),
        (
            ("192.168.0.140", NOMODIFY | NOTRAP | NOQUERY, False),
            ("192.168.0.141", IMPLICIT_DEFAULT, True),
            ("192.168.0.139", IMPLICIT_DEFAULT, True),
            ("127.0.0.1", IMPLICIT_DEFAULT, True),
            ("::1", IMPLICIT_DEFAULT, True),
        ),
    ),
}

SEED_CASES = [
    pytest.param(name, ip, flags, is_default, id=f"{name}:{ip}")
    for name, (_, _, table) in SEEDS.items()
    for ip, flags, is_default in table
]


@pytest.mark.parametrize(("conf", "ip", "flags", "is_default"), SEED_CASES)
def test_seed_config(conf: str, ip: str, flags: int, is_default: bool) -> None:
    table = AccessTable.from_rules(SEEDS[conf][1])
    assert table.lookup(ip, 40123) == Restriction(flags, is_default)
    assert table.lookup(ip, 123) == Restriction(flags, is_default)


@pytest.mark.parametrize("conf", sorted(SEEDS))
def test_seed_tables_mirror_the_files(conf: str, shared_data: Path) -> None:
    lines = [
        " ".join(line.split())
        for line in (shared_data / "seed-configs" / conf).read_text().splitlines()
        if line.split()[:1] == ["restrict"]
    ]
    assert lines == list(SEEDS[conf][0])


def test_every_seed_config_has_a_table(shared_data: Path) -> None:
    assert {p.name for p in (shared_data / "seed-configs").glob("*.conf")} == set(SEEDS)


# --- matching rules ---------------------------------------------------------------------------

NESTED = (
    rule(None, "kod limited"),
    rule("10.0.0.0/8", "noquery"),
    rule("10.1.0.0/16", "nopeer"),
    rule("10.1.2.0/24", "notrap"),
    rule("10.1.2.3/32", ""),
    rule("2001:db8::/32", "nomodify"),
    rule("2001:db8:1::/48", "noquery"),
)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.9.9.9", Restriction(NOQUERY, False)),
        ("10.1.9.9", Restriction(NOPEER, False)),
        ("10.1.2.9", Restriction(NOTRAP, False)),
        ("10.1.2.3", Restriction(0, False)),
        ("11.0.0.1", Restriction(KOD | LIMITED, True)),
        ("2001:db8:2::1", Restriction(NOMODIFY, False)),
        ("2001:db8:1::1", Restriction(NOQUERY, False)),
        ("2001:DB8:1:0:0:0:0:1", Restriction(NOQUERY, False)),
        ("2001:db9::1", Restriction(KOD | LIMITED, True)),
    ],
)
def test_most_specific_entry_wins(ip: str, expected: Restriction) -> None:
    assert AccessTable.from_rules(NESTED).lookup(ip) == expected
    assert AccessTable.from_rules(reversed(NESTED)).lookup(ip) == expected  # file order is irrelevant


@pytest.mark.parametrize(
    ("rules", "ip", "expected"),
    [
        # the same address and mask is one entry: ntpd adds the flags of every line
        ((rule("10.0.0.0/8", "noquery"), rule("10.0.0.0/8", "nopeer")), "10.2.3.4", NOQUERY | NOPEER),
        ((rule("10.0.0.0/8", "noquery"), rule("10.0.0.0/8", "")), "10.2.3.4", NOQUERY),
        ((rule("10.0.0.5/8", "noquery"), rule("10.0.0.0/8", "nopeer")), "10.2.3.4", NOQUERY | NOPEER),
        # a bare default is both families' default; a family default adds to it
        ((rule(None, "kod"), rule(None, "noquery", family=6)), "2001:db8::1", KOD | NOQUERY),
        ((rule(None, "kod"), rule(None, "noquery", family=6)), "192.0.2.1", KOD),
        ((rule(None, "noquery", family=6), rule(None, "kod")), "2001:db8::1", KOD | NOQUERY),
        # a default line for one family leaves the other on the implicit default
        ((rule(None, "kod", family=4),), "2001:db8::1", IMPLICIT_DEFAULT),
        ((rule(None, "kod", family=6),), "192.0.2.1", IMPLICIT_DEFAULT),
        ((rule(None, "", family=4),), "192.0.2.1", 0),
        ((), "192.0.2.1", IMPLICIT_DEFAULT),
    ],
)
def test_entries_merge_like_ntpd(rules: tuple[RestrictRule, ...], ip: str, expected: int) -> None:
    assert AccessTable.from_rules(rules).lookup(ip).flags == expected


def test_zero_mask_line_is_the_default_entry() -> None:
    table = AccessTable.from_rules([rule("0.0.0.0/0", "kod"), rule(None, "noquery", family=4)])
    assert table.lookup("192.0.2.1") == Restriction(KOD | NOQUERY, True)
    assert table.lookup("2001:db8::1") == Restriction(IMPLICIT_DEFAULT, True)


def test_implicit_default_is_configurable() -> None:
    table = AccessTable.from_rules([rule("192.0.2.0/24", "noquery")], implicit_default=0)  # ntpd's
    assert table.lookup("198.51.100.1") == Restriction(0, True)
    assert table.lookup("2001:db8::1") == Restriction(0, True)


NTPPORT_RULES = (
    rule(None, "noquery"),
    rule("10.0.0.0/8", "nopeer"),
    rule("10.0.0.0/8", "ntpport ignore"),
    rule("10.1.0.0/16", "notrap"),
    rule("2001:db8::/32", "ntpport noserve"),
)


@pytest.mark.parametrize(
    ("ip", "port", "expected"),
    [
        ("10.2.3.4", 123, Restriction(IGNORE, False)),
        ("10.2.3.4", 40000, Restriction(NOPEER, False)),
        ("10.2.3.4", 0, Restriction(NOPEER, False)),
        ("10.1.3.4", 123, Restriction(NOTRAP, False)),  # a longer mask beats ntpport
        ("2001:db8::5", 123, Restriction(access.NOSERVE, False)),
        ("2001:db8::5", 1234, Restriction(NOQUERY, True)),
        ("192.0.2.1", 123, Restriction(NOQUERY, True)),
    ],
)
def test_ntpport_matches_only_port_123(ip: str, port: int, expected: Restriction) -> None:
    table = AccessTable.from_rules(NTPPORT_RULES)
    assert table.lookup(ip, port) == expected
    # the cache keeps the port apart: ask the other way round, then again
    other = 40000 if port == 123 else 123
    table.lookup(ip, other)
    assert table.lookup(ip, port) == expected


def test_default_ntpport_is_a_default() -> None:
    table = AccessTable.from_rules([rule(None, "ntpport nopeer"), rule("192.0.2.0/24", "")])
    assert table.lookup("198.51.100.1", 123) == Restriction(NOPEER, True)
    assert table.lookup("198.51.100.1", 5000) == Restriction(IMPLICIT_DEFAULT, True)
    assert table.lookup("192.0.2.1", 123) == Restriction(0, False)


def test_source_rules_are_not_matched_but_exposed() -> None:
    rules = [rule(None, "kod"), rule(None, "noquery nopeer", source=True), rule(None, "ntpport notrap", source=True)]
    table = AccessTable.from_rules(rules)
    assert table.lookup("192.0.2.1") == Restriction(KOD, True)
    assert table.source_flags == NOTRAP  # the last line, ntpport is not a restriction
    assert AccessTable.from_rules([rule(None, "kod")]).source_flags is None


def test_restrict_source_gives_each_association_its_flags_as_ntpd() -> None:
    """ntp_acc(5): "a template restriction automatically added at runtime for each association". It was
    kept and read nowhere: a server's address got the default's noquery whatever restrict source said."""
    rules = [rule(None, "kod limited nomodify notrap nopeer noquery"), rule(None, "nomodify notrap", source=True)]
    rules.append(rule("192.0.2.9/32", "noserve"))  # a host line of its own: left alone, as ntpd does
    table = AccessTable.from_rules(rules, sources=["192.0.2.1", "2001:db8::1", "192.0.2.9", "::ffff:192.0.2.7"])
    for ip in ("192.0.2.1", "2001:db8::1", "192.0.2.7"):
        assert table.lookup(ip) == Restriction(NOMODIFY | NOTRAP, False)
    assert table.lookup("192.0.2.9") == Restriction(NOSERVE, False)
    assert table.lookup("192.0.2.2").flags & NOQUERY  # not an association: the default
    assert table.sources == {"192.0.2.1", "2001:db8::1", "192.0.2.9", "::ffff:192.0.2.7"}
    # the associations change (a pool server replaced): the old address is back to the default
    moved = table.with_sources(["192.0.2.3"])
    assert moved.lookup("192.0.2.1").flags & NOQUERY and moved.lookup("192.0.2.3") == Restriction(
        NOMODIFY | NOTRAP, False
    )
    # without a restrict source line the associations get what the other lines say
    plain = AccessTable.from_rules(rules[:1], sources=["192.0.2.1"])
    assert plain.lookup("192.0.2.1").flags & NOQUERY and plain.lookup("192.0.2.1").is_default


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("::ffff:10.1.2.3", Restriction(NOPEER, False)),
        ("::ffff:a01:203", Restriction(NOPEER, False)),
        ("10.1.2.3", Restriction(NOPEER, False)),
        ("fe80::1%eth0", Restriction(NOTRAP, False)),
        ("fe80::1%2", Restriction(NOTRAP, False)),
        ("fe80::1", Restriction(NOTRAP, False)),
        ("fe81::1", Restriction(IMPLICIT_DEFAULT, True)),
        ("::", Restriction(IMPLICIT_DEFAULT, True)),
        ("0.0.0.0", Restriction(IMPLICIT_DEFAULT, True)),
        ("239.255.255.255", Restriction(IGNORE, False)),
        ("::ffff:224.0.0.1", Restriction(IGNORE, False)),
    ],
)
def test_address_forms(ip: str, expected: Restriction) -> None:
    # a rule written as an IPv4-mapped network is an IPv4 rule
    table = AccessTable.from_rules([rule("::ffff:10.0.0.0/104", "nopeer"), rule("fe80::/16", "notrap")])
    assert table.lookup(ip) == expected


@pytest.mark.parametrize("ip", ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "example.org", "1.2.3.4%eth0", ":::", "é"])
def test_bad_addresses_raise_value_error(ip: str) -> None:
    with pytest.raises(ValueError):
        AccessTable.from_rules([]).lookup(ip)


def test_unknown_flag_raises_value_error() -> None:
    with pytest.raises(ValueError, match="frobnicate"):
        AccessTable.from_rules([rule(None, "frobnicate")])


def test_flag_names_cover_the_model() -> None:
    assert set(access.FLAG_BITS) == RESTRICT_FLAGS
    bits = list(access.FLAG_BITS.values())
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
    everything = flags_from_names(RESTRICT_FLAGS)
    assert set(flag_names(everything)) == RESTRICT_FLAGS
    assert flag_names(POOL) == ("noquery", "nomodify", "notrap", "nopeer", "kod", "limited")
    assert flags_from_names([]) == 0


def test_cache_stays_bounded() -> None:
    table = AccessTable.from_rules(NTPPORT_RULES, cache_size=64)
    for n in range(5000):
        ip = f"10.{n >> 8 & 255}.{n & 255}.1" if n % 2 else f"2001:db8::{n:x}"
        expected = table._match(ip, False)  # the uncached answer
        assert table.lookup(ip, 40000) == expected
        assert table.lookup(ip, 123).flags in (expected.flags, IGNORE, access.NOSERVE)
        assert len(table._cache) <= 64 and len(table._cache_ntp) <= 64


# --- a slow reference model with the ipaddress module --------------------------------------------


def reference(rules: list[RestrictRule], implicit: int, ip: str, port: int) -> Restriction:
    """What ntpd (with stratum1's implicit default) would answer, written the obvious way."""
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_multicast:
        return Restriction(IGNORE, False)
    everything = ipaddress.ip_network("0.0.0.0/0" if addr.version == 4 else "::/0")
    # candidates: (prefix length, ntpport, network, flags) of every line that matches
    found: list[tuple[int, bool, object, int]] = []
    has_default = False
    for r in rules:
        if r.source:
            continue
        ntponly = "ntpport" in r.flags
        bits = flags_from_names(r.flags - {"ntpport"})
        if r.network is None:
            if r.family not in (None, addr.version):
                continue
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = everything
        else:
            net = r.network
            if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
                net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
            if net.version != addr.version:
                continue
        # "restrict 0.0.0.0 mask 0.0.0.0" is the default entry too, as in ntpd
        has_default = has_default or (net.prefixlen == 0 and not ntponly)
        if addr in net and (port == 123 or not ntponly):
            found.append((net.prefixlen, ntponly, net, bits))
    if not has_default:
        found.append((0, False, everything, implicit))
    best = max((plen, ntponly) for plen, ntponly, _, _ in found)
    flags = 0
    for plen, ntponly, _, bits in found:
        if (plen, ntponly) == best:
            flags |= bits
    return Restriction(flags, best[0] == 0)


FLAG_SETS = st.frozensets(st.sampled_from(sorted(RESTRICT_FLAGS)), max_size=4)


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    kind = draw(st.sampled_from(["v4", "v6", "mapped"]))
    if kind == "v4":
        # a small address space so that rules nest and collide
        value = draw(st.integers(0, 15)) << 28 | draw(st.integers(0, 3)) << 22 | draw(st.integers(0, 255))
        return ipaddress.ip_network((value, draw(st.integers(0, 32))), strict=False)
    if kind == "mapped":
        value = 0xFFFF << 32 | draw(st.integers(0, 15)) << 28 | draw(st.integers(0, 255))
        return ipaddress.ip_network((value, draw(st.integers(96, 128))), strict=False)
    value = 0x2001_0DB8 << 96 | draw(st.integers(0, 3)) << 80 | draw(st.integers(0, 255))
    return ipaddress.ip_network((value, draw(st.integers(0, 128))), strict=False)


@st.composite
def rules_(draw: st.DrawFn) -> RestrictRule:
    flags = draw(FLAG_SETS)
    kind = draw(st.sampled_from(["net", "net", "net", "default", "source"]))
    if kind == "net":
        network = draw(networks())
        return RestrictRule(network, network.version, flags, HERE)
    return RestrictRule(None, draw(st.sampled_from([None, 4, 6])), flags, HERE, kind == "source")


@st.composite
def addresses(draw: st.DrawFn, rules: list[RestrictRule]) -> str:
    """An address inside one of the rules' networks (or anywhere), in some textual form."""
    nets = [r.network for r in rules if r.network is not None]
    if nets and draw(st.booleans()):
        net = draw(st.sampled_from(nets))
        offset = draw(st.integers(0, net.num_addresses - 1))
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = net.network_address + offset
    elif draw(st.booleans()):
        addr = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
    else:
        addr = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    form = draw(st.sampled_from(["plain", "mapped", "scoped", "exploded"]))
    if addr.version == 4 and form == "mapped":
        return f"::ffff:{addr}"
    if addr.version == 6 and form == "scoped":
        return f"{addr}%eth0"
    if addr.version == 6 and form == "exploded":
        return addr.exploded
    return str(addr)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_lookup_equals_reference(data: st.DataObject) -> None:
    rules = data.draw(st.lists(rules_(), max_size=12))
    implicit = flags_from_names(data.draw(FLAG_SETS)) & ~access.NTPPORT
    table = AccessTable.from_rules(rules, implicit, cache_size=4)
    for _ in range(8):
        ip = data.draw(addresses(rules))
        port = data.draw(st.sampled_from([123, 0, 124, 40000]))
        assert table.lookup(ip, port) == reference(rules, implicit, ip, port), (ip, port)
