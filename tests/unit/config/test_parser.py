"""The ntp.conf parser: each directive's meaning (ntpd's), its errors and its warnings."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config import Config, ConfigError, default_config_text, load_config, parse_config
from appliance.config.model import Discard, Filegen, Listen, Location, Refclock
from appliance.config.parser import MAX_INCLUDE_DEPTH, directives

F = "t.conf"


def parse(text: str, loader: Callable[[str], str] | None = None) -> Config:
    return parse_config(text, F, include_loader=loader)


def error(text: str, loader: Callable[[str], str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse(text, loader)
    return e.value


def at(line: int) -> Location:
    return Location(F, line)


def warnings(config: Config) -> list[str]:
    return [str(w) for w in config.warnings]


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


# -- ConfigError ----------------------------------------------------------------


def test_config_error_text_and_attributes() -> None:
    e = ConfigError("bad thing", Location("a.conf", 3))
    assert str(e) == "a.conf:3: bad thing"
    assert (e.message, e.location, e.file) == ("bad thing", Location("a.conf", 3), "a.conf")
    assert str(ConfigError("cannot read", file="a.conf")) == "a.conf: cannot read"
    assert str(ConfigError("plain")) == "plain"


def test_every_bad_line_is_reported_not_only_the_first() -> None:
    loader = files({"inc.conf": "server ok.example\nrestrict default nomodfy\n"})
    text = (
        "driftfile /d\n"
        "sever a.example\n"  # 2: a typo
        "server b.example minpoll 99\n"  # 3: a bad number
        "server c.example iburst\n"  # good
        'restrict "default\n'  # 5: the lexer's error
        "includefile inc.conf\n"  # 6: an error inside the include (its own line 2)
        "server 127.127.28.0 mode x\n"  # 7
    )
    e = error(text, loader)
    where = [e.location, *(m.location for m in e.more)]
    assert where == [at(2), at(3), at(5), Location("inc.conf", 2), at(7)]
    lines = str(e).splitlines()
    assert len(lines) == 5 and lines[0].startswith("t.conf:2: unknown directive 'sever'")
    assert lines[3].startswith("inc.conf:2:") and "nomodfy" in lines[3]
    assert all(m.more == () for m in e.more)


def test_a_file_of_many_bad_lines_prints_twenty_and_counts_the_rest() -> None:
    e = error("".join(f"sever {i}.example\n" for i in range(25)))
    lines = str(e).splitlines()
    assert len(e.more) == 24 and len(lines) == 21
    assert lines[19].startswith("t.conf:20:") and lines[20] == "... and 5 more errors"


def test_one_bad_line_is_one_line_and_cross_line_checks_wait_for_clean_lines() -> None:
    e = error("server a.example key 4\nsever b\n")  # key 4 without a key file: checked only once lines parse
    assert e.more == () and str(e) == "t.conf:2: unknown directive 'sever' (did you mean 'server'?)"
    e = error("server a.example key 4\nserver b.example\nserver c.example key 5\n")
    assert [e.location, *(m.location for m in e.more)] == [at(1), at(3)]
    assert "key 4, but no 'keys' file" in str(e) and "key 5, but no 'keys' file" in str(e).splitlines()[1]


# -- server, pool, peer ---------------------------------------------------------


def test_server_with_every_option() -> None:
    c = parse(
        "server 192.0.2.1 iburst burst prefer noselect true minpoll 4 maxpoll 6 version 3 key 7 port 1123\n"
        "keys /etc/ntp.keys\ntrustedkey 7\n",
        lambda path: "7 SHA1 00112233445566778899aabbccddeeff00112233\n",
    )
    (s,) = c.servers
    assert (s.kind, s.host, s.location) == ("server", "192.0.2.1", at(1))
    assert s.iburst and s.burst and s.prefer and s.noselect and s.true
    assert (s.minpoll, s.maxpoll, s.version, s.key, s.port, s.mode) == (4, 6, 3, 7, 1123, None)
    assert s.refclock is None and s.family is None
    # 'true' parses and says it does nothing (tests/unit/config/test_config_consumers.py)
    assert [w.message.split(" is ")[0] for w in c.warnings] == ["server option 'true'"]


def test_server_defaults_and_kinds() -> None:
    c = parse("server a.example\npool pool.ntp.org iburst\npeer 2001:db8::1\n")
    assert [(s.kind, s.host) for s in c.servers] == [
        ("server", "a.example"),
        ("pool", "pool.ntp.org"),
        ("peer", "2001:db8::1"),
    ]
    s = c.servers[0]
    assert not (s.iburst or s.burst or s.prefer or s.noselect or s.true)
    assert (s.minpoll, s.maxpoll, s.version, s.key, s.port) == (None,) * 5


def test_server_family_flags() -> None:
    c = parse("server -4 a.example\nserver -6 b.example iburst\n")
    assert [s.family for s in c.servers] == [4, 6]
    assert "-4 given with the IPv6 address" in str(error("server -4 2001:db8::1\n"))


def test_refclock_pseudo_address() -> None:
    (s,) = parse("server 127.127.20.0 mode 17 minpoll 4 maxpoll 4 prefer\n").servers
    assert s.refclock == (20, 0) and s.mode == 17 and s.prefer and s.minpoll == 4


def test_mode_on_a_network_server_is_a_warning() -> None:
    c = parse("server a.example mode 5\n")
    assert c.servers[0].mode is None
    assert warnings(c) == [
        "t.conf:1: warning: server option 'mode' applies only to reference clocks (127.127.t.u), ignored"
    ]


@pytest.mark.parametrize(
    ("line", "warning"),
    [
        ("peer 192.0.2.9 xleave", "peer option 'xleave'"),
        ("pool p.example preempt", "pool option 'preempt'"),
        ("server a.example autokey", "server option 'autokey'"),
        ("server a.example ttl 3", "server option 'ttl'"),
        ("server a.example bias -0.5", "server option 'bias'"),
        ("server a.example nts", "server option 'nts' is not supported: this server is used without NTS"),
        ("server a.example nts ask b.example noval", "server option 'ask'"),
    ],
)
def test_accepted_but_unsupported_server_options_warn(line: str, warning: str) -> None:
    c = parse("\n" + line + "\n")
    assert len(c.servers) == 1
    assert any(w.startswith("t.conf:2: warning: " + warning) for w in warnings(c)), warnings(c)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("server", "server needs a host name or address"),
        ("pool -4", "pool needs a host name or address"),
        ("server iburst", "server needs a host name or address before its options ('iburst' is an option)"),
        ("server a.example ibrust", "unknown server option 'ibrust' (did you mean 'iburst'?)"),
        ("server a.example minpoll", "server option 'minpoll' needs a value"),
        ("server a.example minpoll x", "minpoll needs a whole number, not 'x'"),
        ("server a.example minpoll 2", "minpoll 2 is out of range (3..17)"),
        ("server a.example maxpoll 18", "maxpoll 18 is out of range (3..17)"),
        ("server a.example minpoll 10 maxpoll 6", "minpoll 10 is greater than maxpoll 6"),
        ("server a.example version 5", "version 5 is out of range (1..4)"),
        ("server a.example key 0", "key 0 is out of range (1..65535)"),
        ("server a.example port 70000", "port 70000 is out of range (1..65535)"),
        ("server a.example minpoll 1.5", "minpoll needs a whole number, not '1.5'"),
        ("server a.example ttl 300", "ttl 300 is out of range (0..255)"),
        ("server a.example bias fast", "bias needs a time in seconds, not 'fast'"),
        ("peer 127.127.1.0", "a reference clock (127.127.1.0) needs 'server', not 'peer'"),
        ("pool 127.127.20.0", "a reference clock (127.127.20.0) needs 'server', not 'pool'"),
        ("server 127.127.29.0", "reference clock type 29 (127.127.29.0) is not supported"),
        ("server 127.127.300.0", "'127.127.300.0' is not a valid reference clock address"),
        ("server 192.168.0.300", "'192.168.0.300' is not a valid IP address"),
        ("server 2001:db8::zz", "'2001:db8::zz' is not a valid IP address"),
        ("server a/b", "'a/b' is not a host name or address"),
        ("server -5", "'-5' is not a host name or address"),
    ],
)
def test_server_errors(line: str, message: str) -> None:
    assert str(error("# first\n" + line + "\n")).startswith(f"t.conf:2: {message}")


def test_duplicate_server_line_warns_and_keeps_the_first() -> None:
    c = parse("server a.example iburst\nserver a.example\n")
    assert len(c.servers) == 1 and c.servers[0].iburst
    assert warnings(c) == ["t.conf:2: warning: duplicate server line for 'a.example' (first at t.conf:1), ignored"]


def test_same_reference_clock_twice_is_an_error() -> None:
    e = error("server 127.127.1.0\nrefclock local unit 0\n")
    assert str(e) == "t.conf:2: reference clock local unit 0 is already configured at t.conf:1"


# -- fudge ----------------------------------------------------------------------


def test_fudge_local_clock_stratum() -> None:
    c = parse("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n")
    f = c.fudge_for("127.127.1.0")
    assert f is not None and f.stratum == 10 and f.location == at(2)
    assert c.warnings == ()


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0.0042", 4_200_000),
        ("0.350", 350_000_000),
        ("-0.000000001", -1),
        ("1e-3", 1_000_000),
        ("1", 1_000_000_000),
        (".5", 500_000_000),
        ("0.1234567895", 123_456_790),  # half-even at 1 ns, from the exact decimal (no float)
        ("0.1234567885", 123_456_788),
        ("-1.0", -1_000_000_000),
    ],
)
def test_fudge_times_are_exact_ns(text: str, ns: int) -> None:
    c = parse(f"server 127.127.20.0\nfudge 127.127.20.0 time1 {text} time2 {text}\n")
    f = c.fudges[0]
    assert (f.time1_ns, f.time2_ns) == (ns, ns)


def test_fudge_everything_and_merging() -> None:
    c = parse(
        "fudge 127.127.22.0 flag3 1 refid PPS\n"
        "server 127.127.22.0 minpoll 4 maxpoll 4\n"
        "fudge 127.127.22.0 time1 0.5 stratum 1 flag1 0 flag3 0 flag4 1\n"
    )
    (f,) = c.fudges
    assert f.host == "127.127.22.0" and f.location == at(1)
    assert (f.refid, f.time1_ns, f.stratum) == ("PPS", 500_000_000, 1)
    assert f.flags == ((1, False), (3, False), (4, True))
    assert c.warnings == ()


def test_fudge_without_a_server_warns() -> None:
    c = parse("\nfudge 127.127.1.0 stratum 10\n")
    assert warnings(c) == [
        "t.conf:2: warning: fudge for 127.127.1.0, but no 'server 127.127.1.0' line: it has no effect"
    ]


def test_fudge_applies_to_a_refclock_line_of_the_same_driver_and_unit() -> None:
    c = parse(
        "refclock nmea unit 1 stratum 2 refid GPS time2 0.1 flag1 1\n"
        "fudge 127.127.20.1 stratum 1 time1 0.2 flag1 0\n"
        "refclock local\n"
    )
    assert c.warnings == ()
    nmea, local = c.refclocks
    assert (nmea.stratum, nmea.refid, nmea.time1_ns, nmea.time2_ns) == (1, "GPS", 200_000_000, 100_000_000)
    assert nmea.options[-1] == ("flag1", "0")
    assert local == Refclock("local", 0, at(3))


def test_fudge_minjitter_warns() -> None:
    c = parse("server 127.127.20.0\nfudge 127.127.20.0 minjitter 0.001\n")
    assert warnings(c) == ["t.conf:2: warning: fudge option 'minjitter' is not supported, ignored"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fudge", "fudge needs a reference clock address (127.127.TYPE.UNIT)"),
        ("fudge 192.168.1.1 stratum 1", "fudge needs a reference clock address (127.127.TYPE.UNIT); '192.168.1.1'"),
        ("fudge 127.127.1.0", "fudge 127.127.1.0 needs at least one option"),
        ("fudge 127.127.1.0 stratum 16", "stratum 16 is out of range (1..15)"),
        ("fudge 127.127.1.0 time1 1.5", "time1 1.5 s is out of range (at most 1 s either way)"),
        ("fudge 127.127.1.0 stratum ten", "stratum needs a whole number, not 'ten'"),
        ("fudge 127.127.1.0 time1 abc", "time1 needs a time in seconds, not 'abc'"),
        ("fudge 127.127.1.0 time1 1_000", "time1 needs a time in seconds, not '1_000'"),
        ("fudge 127.127.1.0 time1 nan", "time1 needs a time in seconds, not 'nan'"),
        ("fudge 127.127.1.0 time2 1e9", "time2 1e9 s is out of range"),
        ("fudge 127.127.1.0 refid TOOLONG", "refid needs 1 to 4 printable ASCII characters, not 'TOOLONG'"),
        ("fudge 127.127.1.0 flag1 2", "flag1 needs 0 or 1, not '2'"),
        ("fudge 127.127.1.0 flag5 1", "unknown fudge option 'flag5'"),
        ("fudge 127.127.1.0 time1", "fudge option 'time1' needs a value"),
    ],
)
def test_fudge_errors(line: str, message: str) -> None:
    assert str(error("\n" + line + "\n")).startswith(f"t.conf:2: {message}")


_KOD_STRATUM = "0 marks a Kiss-o'-Death and 16 unsynchronised, so clients would discard every reply"


@pytest.mark.parametrize(
    ("line", "what", "value"),
    [
        ("fudge 127.127.1.0 stratum 0", "stratum", 0),
        ("fudge 127.127.1.0 stratum 16", "stratum", 16),
        ("refclock local stratum 0", "stratum", 0),
    ],
)
def test_a_local_clock_stratum_of_0_or_above_15_is_an_error(line: str, what: str, value: int) -> None:
    """``fudge 127.127.1.0 stratum 0`` would make every reply read as a Kiss-o'-Death: the local clock is
    served at its own stratum."""
    assert str(error("\n" + line + "\n")) == f"t.conf:2: {what} {value} is out of range (1..15): {_KOD_STRATUM}"


@pytest.mark.parametrize(
    "line", ["fudge 127.127.20.0 stratum 16", "refclock nmea stratum 16", "refclock pps stratum 99"]
)
def test_a_reference_clock_stratum_above_15_is_an_error(line: str) -> None:
    assert str(error("\n" + line + "\n")).startswith("t.conf:2: stratum ")
    assert "is out of range (0..15): a reference clock's own stratum, served one higher" in str(error(line + "\n"))


@pytest.mark.parametrize(
    "text",
    [
        "server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.4 stratum 0\n",
        "refclock pps stratum 0\n",
        "refclock shm unit 0 stratum 0\n",
    ],
)
def test_a_reference_clocks_own_stratum_may_be_0(text: str) -> None:
    """NTPsec's driver pages: "stratum: from 0 to 15, with default 0" (the appliance serves it one higher)."""
    c = parse(text)
    assert (c.fudges[0].stratum if c.fudges else c.refclocks[0].stratum) == 0


@pytest.mark.parametrize("line", ["tos orphan 16", "tos ceiling 16", "tos floor 0", "tos basedate 2020-01-01"])
def test_ntpds_tos_values_are_accepted_then_ignored(line: str) -> None:
    """ntpd's miscopt page: ceiling and orphan default to 16, and basedate is a tos option."""
    assert [str(w) for w in parse(line + "\n").warnings] == ["t.conf:1: warning: 'tos' is not supported, ignored"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tos orphan 17", "tos orphan 17 is out of range (0..16)"),
        ("tos ceiling 99", "tos ceiling 99 is out of range (0..16)"),
        ("tos basedate soon", "tos basedate needs a date (YYYY-MM-DD) or a day number, not 'soon'"),
    ],
)
def test_tos_values_out_of_ntpds_range_are_errors(line: str, message: str) -> None:
    assert str(error(line + "\n")) == f"t.conf:1: {message}"


def test_tos_is_checked_then_ignored() -> None:
    c = parse("tos orphan 10 minsane 1\n")
    assert [str(w) for w in c.warnings] == ["t.conf:1: warning: 'tos' is not supported, ignored"]
    assert str(error("tos orphan ten\n")) == "t.conf:1: tos orphan needs a whole number, not 'ten'"
    assert str(error("tos minsane x\n")) == "t.conf:1: tos minsane needs a number, not 'x'"
    assert str(error("tos\n")).startswith("t.conf:1: tos needs an option")
    assert str(error("tos orphn 5\n")).startswith("t.conf:1: unknown tos option 'orphn' (did you mean 'orphan'?)")


# -- refclock (NTPsec) ----------------------------------------------------------


def test_refclock_line_with_every_option() -> None:
    c = parse(
        "refclock nmea unit 1 prefer noselect minpoll 4 maxpoll 5 subtype 2 mode 17 path /dev/ttyAMA0 "
        'ppspath /dev/pps0 baud 9600 time1 0.0 time2 "0.350" stratum 1 refid GPS flag1 1 flag4 0\n'
    )
    (r,) = c.refclocks
    assert (r.driver, r.unit, r.location, r.prefer, r.noselect) == ("nmea", 1, at(1), True, True)
    assert (r.minpoll, r.maxpoll, r.stratum, r.refid, r.time1_ns, r.time2_ns) == (4, 5, 1, "GPS", 0, 350_000_000)
    assert dict(r.options) == {
        "minpoll": "4",
        "maxpoll": "5",
        "subtype": "2",
        "mode": "17",
        "path": "/dev/ttyAMA0",
        "ppspath": "/dev/pps0",
        "baud": "9600",
        "time1": "0.0",
        "time2": "0.350",
        "stratum": "1",
        "refid": "GPS",
        "flag1": "1",
        "flag4": "0",
    }


@pytest.mark.parametrize("driver", ["nmea", "pps", "local", "shm", "gpsd"])
def test_refclock_drivers(driver: str) -> None:
    assert parse(f"refclock {driver}\n").refclocks == (Refclock(driver, 0, at(1)),)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("refclock", "refclock needs a driver name"),
        ("refclock nmae", "unknown refclock driver 'nmae' (did you mean 'nmea'?)"),
        ("refclock palisade", "unknown refclock driver 'palisade'"),
        ("refclock generic", "unknown refclock driver 'generic'; stratum1 knows gpsd, local, nmea, pps, shm"),
        ("server 127.127.8.0", "type 8 (127.127.8.0) is not supported; stratum1 knows types 1 (local), 20 (nmea)"),
        ("refclock nmea unit x", "unit needs a whole number, not 'x'"),
        ("refclock nmea unit 256", "unit 256 is out of range (0..255)"),
        ("refclock nmea baud 1234", "baud 1234 is not a serial port speed"),
        ("refclock nmea path", "refclock option 'path' needs a value"),
        ('refclock nmea path ""', "path needs a non-empty path"),
        ("refclock nmea minpoll 18", "minpoll 18 is out of range (0..17)"),
        ("refclock nmea minpoll 6 maxpoll 4", "minpoll 6 is greater than maxpoll 4"),
        ("refclock nmea flag2 yes", "flag2 needs 0 or 1, not 'yes'"),
        ("refclock nmea holdover 5", "unknown refclock option 'holdover'"),
        ("refclock nmea\nrefclock nmea unit 0", "reference clock nmea unit 0 is already configured at t.conf:2"),
    ],
)
def test_refclock_errors(line: str, message: str) -> None:
    assert message in str(error("\n" + line + "\n"))
    assert str(error("\n" + line + "\n")).startswith("t.conf:")


# -- restrict -------------------------------------------------------------------


def test_restrict_default_covers_both_families() -> None:
    (r,) = parse("restrict default kod limited nomodify notrap nopeer noquery\n").restricts
    assert (r.network, r.family, r.source, r.location) == (None, None, False, at(1))
    assert r.flags == {"kod", "limited", "nomodify", "notrap", "nopeer", "noquery"}


def test_restrict_family_defaults() -> None:
    r4, r6 = parse("restrict -4 default noquery\nrestrict -6 default ignore\n").restricts
    assert (r4.network, r4.family, r4.flags) == (None, 4, frozenset({"noquery"}))
    assert (r6.network, r6.family, r6.flags) == (None, 6, frozenset({"ignore"}))


def test_restrict_source() -> None:
    (r,) = parse("restrict source nomodify notrap noquery\n").restricts
    assert r.source and r.network is None and r.family is None and r.flags == {"nomodify", "notrap", "noquery"}


def test_restrict_hosts_are_full_length_prefixes_with_no_flags() -> None:
    a, b = parse("restrict 127.0.0.1\nrestrict ::1\n").restricts
    assert (a.network, a.family, a.flags) == (net("127.0.0.1/32"), 4, frozenset())
    assert (b.network, b.family, b.flags) == (net("::1/128"), 6, frozenset())


@pytest.mark.parametrize(
    ("spec", "network"),
    [
        ("192.168.0.0 mask 255.255.255.0", "192.168.0.0/24"),
        ("192.168.0.77 mask 255.255.255.0", "192.168.0.0/24"),  # host bits masked off, as ntpd does
        ("10.1.2.3 mask 255.0.0.0", "10.0.0.0/8"),
        ("192.168.0.0/24", "192.168.0.0/24"),
        ("192.168.0.9/24", "192.168.0.0/24"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1 mask ffff:ffff::", "2001:db8::/32"),
        ("0.0.0.0 mask 0.0.0.0", "0.0.0.0/0"),
        ("-4 10.0.0.0 mask 255.255.255.255", "10.0.0.0/32"),
        ("-6 fe80::/10", "fe80::/10"),
    ],
)
def test_restrict_networks(spec: str, network: str) -> None:
    (r,) = parse(f"restrict {spec} nomodify notrap\n").restricts
    assert r.network == net(network) and r.family == r.network.version
    assert r.flags == {"nomodify", "notrap"}


def test_every_restrict_flag() -> None:
    flags = "ignore noserve noquery nomodify notrap nopeer kod limited nomrulist version noepeer ntpport lowpriotrap"
    (r,) = parse(f"restrict 192.0.2.0/24 {flags}\n").restricts
    assert r.flags == set(flags.split())


def test_notrust_is_kept_with_a_warning() -> None:
    c = parse("restrict 192.0.2.1 notrust\n")
    assert c.restricts[0].flags == {"notrust"}
    assert "notrust" in warnings(c)[0] and warnings(c)[0].startswith("t.conf:1: warning:")


@pytest.mark.parametrize(
    ("flags", "warning"),
    [
        ("ippeerlimit 3", "restrict flag 'ippeerlimit' is not supported, ignored"),
        ("mssntp", "restrict flag 'mssntp' is not supported, ignored"),
        ("serverresponse fuzz", "restrict flag 'serverresponse fuzz' is not supported, ignored"),
        ("epeer", "restrict flag 'epeer' is not supported, ignored"),
        ("flake", "restrict flag 'flake' is not supported, ignored"),
    ],
)
def test_unsupported_restrict_flags_warn(flags: str, warning: str) -> None:
    c = parse(f"\nrestrict default noquery {flags} limited\n")
    assert c.restricts[0].flags == {"noquery", "limited"}
    assert warnings(c) == [f"t.conf:2: warning: {warning}"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("restrict", "restrict needs an address, 'default' or 'source'"),
        ("restrict default nomodfy", "unknown restrict flag 'nomodfy' (did you mean 'nomodify'?)"),
        ("restrict default frobnicate", "unknown restrict flag 'frobnicate'"),
        ("restrict foo.example nomodify", "restrict needs a numeric address; 'foo.example' is a host name"),
        ("restrict time-server noquery", "restrict needs a numeric address; 'time-server' is a host name"),
        ("restrict 192.168.0.300", "restrict needs a numeric address; '192.168.0.300' is not an IPv4 or IPv6"),
        ("restrict 192.168.0.0 mask 255.0.255.0", "mask '255.0.255.0' is not a valid netmask"),
        ("restrict 192.168.0.0 mask 0.0.0.255", "mask '0.0.0.255' is not a valid netmask"),
        ("restrict 192.168.0.0 mask 255.255.255", "mask '255.255.255' is not a netmask"),
        ("restrict 192.168.0.0 mask ffff::", "mask 'ffff::' is IPv6 but the address is IPv4"),
        ("restrict 192.168.0.0 mask", "'mask' needs a netmask"),
        ("restrict 192.168.0.0/24 mask 255.255.255.0", "'mask' cannot follow '192.168.0.0/24'"),
        ("restrict default mask 0.0.0.0", "'mask' cannot follow 'default'"),
        ("restrict 192.168.0.0/33", "prefix length of '192.168.0.0/33' 33 is out of range (0..32)"),
        ("restrict 192.168.0.0/", "prefix length of '192.168.0.0/' needs a whole number"),
        ("restrict -6 192.168.0.0", "-6 given with the IPv4 address '192.168.0.0'"),
        ("restrict -4 source", "-4 cannot be used with 'restrict source'"),
        ("restrict fe80::1%eth0", "restrict cannot take a scoped address"),
        ("restrict default ippeerlimit", "restrict option 'ippeerlimit' needs a value"),
        ("restrict default serverresponse", "restrict flag 'serverresponse' needs 'fuzz'"),
        ("unrestrict 192.168.0.0", "unrestrict is not supported"),
    ],
)
def test_restrict_errors(line: str, message: str) -> None:
    assert str(error("\n" + line + "\n")).startswith(f"t.conf:2: {message}")


# -- discard --------------------------------------------------------------------


def test_discard_sets_options_line_by_line() -> None:
    assert parse("").discard == Discard()
    c = parse("discard average 4 minimum 1\ndiscard monitor 2000 burst 4\ndiscard minimum 0\n")
    assert c.discard == Discard(average_log2=4, minimum_s=0, monitor=2000, burst=4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("discard", "discard needs at least one option"),
        ("discard average 17", "average 17 is out of range (0..16)"),
        ("discard average -1", "average -1 is out of range (0..16)"),
        ("discard minimum two", "minimum needs a whole number, not 'two'"),
        ("discard burst 0", "burst 0 is out of range (1..256)"),
        ("discard average", "discard option 'average' needs a value"),
        ("discard avrage 3", "unknown discard option 'avrage' (did you mean 'average'?)"),
    ],
)
def test_discard_errors(line: str, message: str) -> None:
    assert str(error("\n" + line + "\n")).startswith(f"t.conf:2: {message}")


# -- files and interfaces -------------------------------------------------------


def test_file_directives() -> None:
    c = parse(
        "driftfile /var/lib/ntp/drift\nleapfile /usr/share/zoneinfo/leap-seconds.list\n"
        'logfile "/var/log/ntp log"\nstatsdir /var/log/ntpstats/\n'
    )
    assert c.driftfile == "/var/lib/ntp/drift"
    assert c.leapfile == "/usr/share/zoneinfo/leap-seconds.list"
    assert c.logfile == "/var/log/ntp log"
    assert c.statsdir == "/var/log/ntpstats/"
    assert parse("").driftfile is None


def test_bare_driftfile_means_none_and_the_last_line_wins() -> None:
    assert parse("driftfile /a\ndriftfile\n").driftfile is None
    assert parse("driftfile /a\ndriftfile /b\n").driftfile == "/b"


def test_driftfile_wander_threshold_warns() -> None:
    c = parse("driftfile /a 1e-7\n")
    assert c.driftfile == "/a" and warnings(c) == [
        "t.conf:1: warning: driftfile wander threshold is not supported, ignored"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("leapfile", "leapfile needs a path"),
        ("logfile /a /b", "unexpected '/b' after logfile"),
        ("driftfile /a fast", "driftfile wander threshold needs a number, not 'fast'"),
        ("statsdir", "statsdir needs a path"),
    ],
)
def test_file_directive_errors(line: str, message: str) -> None:
    assert str(error("\n" + line + "\n")).startswith(f"t.conf:2: {message}")


def test_interface_listen_and_ignore() -> None:
    c = parse(
        "interface listen 192.168.0.10\nnic listen eth0\ninterface listen ipv6\n"
        "interface listen 10.0.0.0/8\ninterface ignore wildcard\ninterface drop all\ninterface ignore eth1\n"
    )
    assert c.listen == (
        Listen("192.168.0.10", at(1)),
        Listen("eth0", at(2)),
        Listen("ipv6", at(3)),
        Listen("10.0.0.0/8", at(4)),
        Listen("wildcard", at(5), action="ignore"),  # acted on: appliance.config.listen
    )
    assert warnings(c) == [
        "t.conf:6: warning: 'interface drop' is not supported, ignored",
        "t.conf:7: warning: 'interface ignore' is not supported, ignored",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("interface", "interface needs listen, ignore or drop"),
        ("interface open all", "interface needs listen, ignore or drop, not 'open'"),
        ("interface listen", "interface listen needs all, ipv4"),
        ("interface listen all ipv4", "unexpected 'ipv4' after interface"),
        ("interface listen a/b/c", "'a/b/c' is not all, ipv4, ipv6, wildcard, an interface name or an address"),
    ],
)
def test_interface_errors(line: str, message: str) -> None:
    assert str(error("\n" + line + "\n")).startswith(f"t.conf:2: {message}")


# -- directives ignored, unknown, refused ---------------------------------------


@pytest.mark.parametrize("name", sorted(directives().ignored))
def test_unsupported_directives_warn_with_file_and_line(name: str) -> None:
    c = parse(f"server a.example\n\n{name} some arguments 1 2\n")
    assert len(c.servers) == 1
    (w,) = c.warnings
    assert w.location == at(3)
    assert str(w) == f"t.conf:3: warning: '{name}' is not supported, ignored"


def test_the_usual_unsupported_lines() -> None:
    c = parse(
        "statistics loopstats peerstats clockstats\n"
        "filegen loopstats file loopstats type day enable\n"
        "tos minclock 4 minsane 3\n"
        "requestkey 1\n"
        "trustedkey 1 2 3\n"
        "disable monitor\n"
    )
    # trustedkey with no key file: each number warned (no such key exists)
    assert [w.location.line for w in c.warnings] == [3, 4, 6, 5, 5, 5]


def test_statistics_and_filegen_as_debian_writes_them() -> None:
    c = parse(
        "statsdir /var/log/ntpsec/\n"
        "statistics loopstats peerstats clockstats\n"
        "filegen loopstats file loopstats type day enable\n"
        "filegen peerstats file peers type none nolink enable\n"
        "filegen clockstats file clockstats type day disable\n"
        "filegen rawstats file rawstats type day enable\n"
        "filegen loopstats type week\n"
    )
    assert c.statsdir == "/var/log/ntpsec/"
    gens = {g.name: g for g in c.filegens}
    assert gens["loopstats"] == Filegen("loopstats", "loopstats", "day", True, True)
    assert gens["peerstats"] == Filegen("peerstats", "peers", "none", False, True)
    assert not gens["clockstats"].enabled
    assert [w.location.line for w in c.warnings] == [6, 7]  # rawstats is not written; weekly files are daily
    assert [g.name for g in parse("filegen loopstats file loops\n").filegens if g.enabled] == []
    assert "unknown statistics name 'loopstat'" in str(error("statistics loopstat\n"))
    assert "not a path" in str(error("filegen loopstats file /etc/passwd\n"))


def test_unknown_directive() -> None:
    e = error("server a.example\nsever b.example iburst\n")
    assert str(e) == "t.conf:2: unknown directive 'sever' (did you mean 'server'?)"
    assert e.location == at(2)
    assert str(error("frobnicate 1\n")) == "t.conf:1: unknown directive 'frobnicate'"


def test_directives_are_case_sensitive_as_in_ntpd() -> None:
    assert str(error("Server a.example\n")).startswith("t.conf:1: unknown directive 'Server'")


def test_a_quoted_word_is_never_a_keyword() -> None:
    assert "must start with a directive" in str(error('"server" a.example\n'))
    assert "unknown server option '\"iburst\"'" in str(error('server a.example "iburst"\n'))


def test_every_directive_has_one_treatment() -> None:
    d = directives()
    assert not (d.parsed & d.ignored) and not (d.parsed & d.refused) and not (d.ignored & d.refused)
    assert {"server", "pool", "peer", "restrict", "fudge", "refclock", "includefile"} <= d.parsed


# -- includefile ----------------------------------------------------------------


def files(contents: dict[str, str]) -> Callable[[str], str]:
    def load(path: str) -> str:
        if path not in contents:
            raise FileNotFoundError(2, "No such file or directory", path)
        return contents[path]

    return load


def test_includefile_is_relative_to_the_including_file() -> None:
    loader = files(
        {
            "etc/extra/servers.conf": "server a.example\nincludefile more/r.conf\n",
            "etc/extra/more/r.conf": "restrict default noquery\n",
        }
    )
    c = parse_config("driftfile /d\nincludefile extra/servers.conf\n", "etc/ntp.conf", include_loader=loader)
    assert c.servers[0].location == Location("etc/extra/servers.conf", 1)
    assert c.restricts[0].location == Location("etc/extra/more/r.conf", 1)
    assert c.path == "etc/ntp.conf" and c.driftfile == "/d"


def test_absolute_include_and_errors_inside_includes_name_that_file() -> None:
    loader = files({"/x/inc.conf": "\n\nsever a\n"})
    e = error("includefile /x/inc.conf\n", loader)
    assert str(e).startswith("/x/inc.conf:3: unknown directive 'sever'")


def test_include_loop() -> None:
    loader = files({"a.conf": "includefile b.conf\n", "b.conf": "\nincludefile ./a.conf\n"})
    e = error("includefile a.conf\n", loader)
    assert str(e) == "b.conf:2: include loop: './a.conf' is already being read"
    assert e.location == Location("b.conf", 2)


def test_include_self() -> None:
    e = pytest.raises(ConfigError, parse_config, "\nincludefile t.conf\n", F, include_loader=files({})).value
    assert str(e) == "t.conf:2: include loop: 't.conf' is already being read"


def test_include_depth_limit() -> None:
    chain = {f"{i}.conf": f"includefile {i + 1}.conf\n" for i in range(MAX_INCLUDE_DEPTH + 1)}
    chain[f"{MAX_INCLUDE_DEPTH + 1}.conf"] = "server deep.example\n"
    loader = files(chain)
    e = pytest.raises(ConfigError, parse_config, chain["0.conf"], "0.conf", include_loader=loader).value
    assert str(e).startswith(f"{MAX_INCLUDE_DEPTH}.conf:1: includefile '{MAX_INCLUDE_DEPTH + 1}.conf': includes nest")
    chain["0.conf"] = "server top.example\n"
    ok = parse_config(chain["1.conf"], "1.conf", include_loader=loader)
    assert [s.host for s in ok.servers] == ["deep.example"]


def test_missing_include() -> None:
    e = error("\nincludefile nothere.conf\n", files({}))
    assert str(e) == "t.conf:2: cannot read include file 'nothere.conf': No such file or directory"


def test_include_without_a_loader() -> None:
    assert str(error("includefile x.conf\n")).startswith("t.conf:1: includefile 'x.conf': cannot include files")


def test_include_needs_one_path() -> None:
    assert str(error("includefile\n")).startswith("t.conf:1: includefile needs a file name")
    assert str(error("includefile a b\n", files({}))).startswith("t.conf:1: unexpected 'b' after includefile")


def test_load_config_reads_files_and_includes(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "servers.conf").write_text("server a.example iburst\n")
    main = tmp_path / "ntp.conf"
    main.write_text("includefile conf.d/servers.conf\r\nrestrict default noquery\r\n")
    c = load_config(main)
    assert c.path == str(main)
    assert c.servers[0].location == Location(str(tmp_path / "conf.d" / "servers.conf"), 1)
    assert c.restricts[0].flags == {"noquery"}


def test_load_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.conf"
    e = pytest.raises(ConfigError, load_config, missing).value
    assert str(e) == f"{missing}: cannot read: No such file or directory" and e.location is None
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"server a\n\xff\xfe\n")
    assert str(pytest.raises(ConfigError, load_config, binary).value) == (
        f"{binary}:2: byte 0xFF is not UTF-8 (outside a comment)"
    )
    loop = tmp_path / "loop.conf"
    loop.write_text("# me again\nincludefile loop.conf\n")
    assert str(pytest.raises(ConfigError, load_config, loop).value).startswith(f"{loop}:2: include loop")
    inc_dir = tmp_path / "dir.conf"
    inc_dir.write_text(f"includefile {tmp_path}\n")
    assert str(pytest.raises(ConfigError, load_config, inc_dir).value).startswith(
        f"{inc_dir}:1: cannot read include file"
    )


# -- the default configuration ----------------------------------------------------


def test_default_config_parses_with_no_warnings() -> None:
    c = parse_config(default_config_text(), "default.conf")
    assert c.warnings == ()
    (default,) = [r for r in c.restricts if r.network is None and not r.source]
    assert default.family is None
    assert default.flags == {"kod", "limited", "nomodify", "notrap", "nopeer", "noquery"}
    hosts = {r.network: r.flags for r in c.restricts if r.network is not None}
    assert hosts == {net("127.0.0.1/32"): frozenset(), net("::1/128"): frozenset()}
    assert c.driftfile == "/var/lib/stratum1/drift"
    assert c.leapfile == "/usr/share/zoneinfo/leap-seconds.list"
    assert [s.host for s in c.servers] == ["127.127.1.0"]
    local = c.fudge_for("127.127.1.0")
    assert local is not None and local.stratum == 10


def test_the_examples_in_the_default_config_comments_parse() -> None:
    examples = [ln[4:] for ln in default_config_text().splitlines() if ln.startswith("#   ") and ln[4:5].strip()]
    assert any(ln.startswith("refclock nmea") for ln in examples)
    c = parse("\n".join(examples))
    assert {r.driver for r in c.refclocks} == {"nmea", "pps"}
    assert c.warnings == ()


def test_refclock_nmea_baud_auto_turns_on_rate_detection() -> None:
    from appliance.refclock.setup import gps_setup

    cfg = parse_config("refclock nmea unit 0 path /dev/ttyACM0 baud auto\n", "t.conf")
    setup = gps_setup(cfg)
    assert setup is not None and setup.autobaud
    with pytest.raises(ConfigError, match="t.conf:1"):
        parse_config("refclock nmea unit 0 path /dev/ttyACM0 baud fast\n", "t.conf")


def test_holdover_bound() -> None:
    assert parse("holdover 0.005\n").holdover_ns == 5_000_000
    assert parse("holdover 0.005\nholdover 0.0001\n").holdover_ns == 100_000  # a later line wins
    assert parse("").holdover_ns is None
    assert "t.conf:1" in str(error("holdover\n"))
    assert "above 0 s" in str(error("holdover 0\n"))
    assert str(error("holdover 5\n")) == "t.conf:1: holdover 5 s is out of range (at most 1 s either way)"
    assert "t.conf:2" in str(error("\nholdover soon\n"))
    assert "t.conf:1" in str(error("holdover 0.001 0.002\n"))


# -- octets that are not UTF-8 ----------------------------------------------------------------


def test_latin1_in_a_comment_is_harmless(tmp_path: Path) -> None:
    """ntpd reads bytes: a German or French admin's Latin-1 comment loaded there, and refused the file here."""
    conf = tmp_path / "ntp.conf"
    conf.write_bytes(b"# Zeitserver f\xfcr das B\xfcro\nserver 127.0.0.1 # f\xfcr alle\nincludefile more.conf\n")
    (tmp_path / "more.conf").write_bytes(b"# \xe9t\xe9\nrestrict 127.0.0.1\n")
    c = load_config(conf)
    assert [s.host for s in c.servers] == ["127.0.0.1"] and len(c.restricts) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"server 127.0.0.1\nserver b\xfcro\n", "t.conf:2: byte 0xFC is not UTF-8 (outside a comment)"),
        (b'\n\nlogfile "/var/log/\xe9"\n', "t.conf:3: byte 0xE9 is not UTF-8 (outside a comment)"),
    ],
)
def test_bytes_that_are_not_utf8_outside_a_comment_name_the_line(tmp_path: Path, raw: bytes, message: str) -> None:
    conf = tmp_path / "t.conf"
    conf.write_bytes(raw)
    assert str(pytest.raises(ConfigError, load_config, conf).value) == f"{tmp_path}/{message}"


def test_an_include_with_such_bytes_names_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text("# main\nincludefile inc.conf\n")
    (tmp_path / "inc.conf").write_bytes(b"# ok \xff\nserver \xff\n")
    e = pytest.raises(ConfigError, load_config, tmp_path / "main.conf").value
    assert str(e) == f"{tmp_path}/inc.conf:2: byte 0xFF is not UTF-8 (outside a comment)"


def test_a_key_file_with_such_bytes_is_refused_at_the_keys_line(tmp_path: Path) -> None:
    keys = tmp_path / "ntp.keys"
    keys.write_bytes(b"# \xfc\n1 MD5 secret\n")
    keys.chmod(0o600)
    (tmp_path / "main.conf").write_text(f"# main\nkeys {keys}\n")
    e = pytest.raises(ConfigError, load_config, tmp_path / "main.conf").value
    assert str(e).startswith(f"{tmp_path}/main.conf:2: key file '{keys}' line 1: byte 0xFC is not UTF-8")


def test_a_no_break_space_is_named() -> None:
    e = pytest.raises(ConfigError, parse_config, "server\u00a0127.0.0.1\n", "t.conf").value
    assert str(e) == "t.conf:1: a no-break space (U+00A0) in a word: use an ordinary space"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("refclock nmea ppspath gpio:abc time2 0.4", "t.conf:1: ppspath gpio:abc: the GPIO line needs a whole number"),
        ("refclock nmea ppspath gpio:99999999999999999999", "t.conf:1: ppspath gpio:99999999999999999999: the GPIO"),
        ("refclock pps path gpio:", "t.conf:1: path gpio:: the GPIO line needs a whole number, not ''"),
    ],
)
def test_a_gpio_pps_line_is_checked_when_the_file_is_read(line: str, message: str) -> None:
    """It passed check-config and failed only at start ('invalid literal for int()'), with no line."""
    assert str(pytest.raises(ConfigError, parse_config, line + "\n", "t.conf").value).startswith(message)


def test_a_gpio_pps_line_number_is_taken() -> None:
    assert parse_config("refclock nmea ppspath gpio:18 time2 0.4\n", "t.conf").refclocks[0].options[0] == (
        "ppspath",
        "gpio:18",
    )


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("server 127.127.1.0 iburst burst key 3 version 3 port 999\n", ["burst", "iburst", "key", "port", "version"]),
        ("server -4 127.127.1.0\n", ["-4"]),
        ("server 127.127.28.0 iburst\n", ["iburst"]),
    ],
)
def test_network_only_options_on_a_reference_clock_are_warned_about(text: str, options: list[str]) -> None:
    """They were accepted in silence ('key 3' with no keys file too, an error on a network server)."""
    c = parse(text)
    host = c.servers[0].host
    assert warnings(c) == [
        f"t.conf:1: warning: server {host} option '{o}' applies only to network servers, not a reference clock, ignored"
        for o in options
    ]
    s = c.servers[0]
    assert (s.iburst, s.burst, s.key, s.version, s.port, s.family) == (False, False, None, None, None, None)


def test_reference_clock_options_that_act_are_not_warned_about() -> None:
    c = parse("server 127.127.20.0 mode 16 prefer noselect minpoll 4 maxpoll 4\n")
    assert warnings(c) == []
