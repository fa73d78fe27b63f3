"""The tutorial ntp.conf files in tests/data/seed-configs load as they stand and mean what ntpd reads.

Each file's expectation is written out in full: servers and pools with their
options, restrict lines (family, network, flags), fudges, driftfile. A file
added to the directory without an expectation here fails
:func:`test_every_seed_config_has_an_expectation`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from appliance.config import Config, load_config

TUTORIAL_DEFAULT = frozenset({"kod", "notrap", "nomodify", "nopeer", "noquery", "limited"})
NO_FLAGS: frozenset[str] = frozenset()
LOOPBACK = [
    (4, "127.0.0.1/32", NO_FLAGS),
    (6, "::1/128", NO_FLAGS),
]

#: file -> (driftfile, [(kind, host, iburst, prefer)], [(family, network or None, flags)], {fudge host: stratum})
EXPECTED: dict[
    str,
    tuple[
        str | None,
        list[tuple[str, str, bool, bool]],
        list[tuple[int | None, str | None, frozenset[str]]],
        dict[str, int],
    ],
] = {
    "centos-pool-server.conf": (
        "/var/lib/ntp/drift",
        [("server", f"ntp_server_hostname_{i}", True, False) for i in range(1, 6)],
        [(None, None, TUTORIAL_DEFAULT), *LOOPBACK],
        {},
    ),
    "ubuntu-pool-server.conf": (
        "/var/lib/ntp/ntp.drift",
        [
            ("server", "139.162.170.219", True, False),
            ("server", "2a01:7e01::f03c:91ff:fe8b:e9e0", True, False),
            ("server", "ntp_server_3", True, False),
            ("server", "ntp_server_4", True, False),
            ("server", "ntp_server_5", True, False),
        ],
        [(4, None, TUTORIAL_DEFAULT), (6, None, TUTORIAL_DEFAULT), *LOOPBACK],
        {},
    ),
    "ubuntu-default.conf": (
        "/var/lib/ntp/ntp.drift",
        [
            *[("pool", f"{i}.ubuntu.pool.ntp.org", True, False) for i in range(4)],
            ("pool", "ntp.ubuntu.com", False, False),
        ],
        [(4, None, TUTORIAL_DEFAULT), (6, None, TUTORIAL_DEFAULT), *LOOPBACK],
        {},
    ),
    "lan-server-local-fallback.conf": (
        "/var/lib/ntp/drift",
        [
            ("server", "ntp.ntsc.ac.cn", False, True),
            ("server", "ntp1.aliyun.com", False, False),
            ("server", "cn.pool.ntp.org", False, False),
            ("server", "127.127.1.0", False, False),
        ],
        [(4, "192.168.0.0/24", frozenset({"nomodify", "notrap"}))],
        {"127.127.1.0": 10},
    ),
    # No `restrict default` line: ntpd would leave everybody else unrestricted;
    # stratum1's access table applies its implicit default (docs/configuration.md).
    "lan-client.conf": (
        None,
        [("server", "192.168.0.140", False, False)],
        [(4, "192.168.0.140/32", frozenset({"nomodify", "notrap", "noquery"}))],
        {},
    ),
}


def seed_dir(shared_data: Path) -> Path:
    return shared_data / "seed-configs"


def test_every_seed_config_has_an_expectation(shared_data: Path) -> None:
    assert {p.name for p in seed_dir(shared_data).glob("*.conf")} == set(EXPECTED)


@pytest.fixture(params=sorted(EXPECTED))
def seed(request: pytest.FixtureRequest, shared_data: Path) -> tuple[str, Config]:
    name = str(request.param)
    return name, load_config(seed_dir(shared_data) / name)


def test_loads_without_warnings(seed: tuple[str, Config]) -> None:
    _, config = seed
    assert config.warnings == ()


def test_driftfile(seed: tuple[str, Config]) -> None:
    name, config = seed
    assert config.driftfile == EXPECTED[name][0]


def test_servers_and_pools(seed: tuple[str, Config]) -> None:
    name, config = seed
    got = [(s.kind, s.host, s.iburst, s.prefer) for s in config.servers]
    assert got == EXPECTED[name][1]
    for s in config.servers:
        assert not (s.burst or s.noselect or s.true)
        assert (s.minpoll, s.maxpoll, s.version, s.key, s.mode, s.port, s.family) == (None,) * 7


def test_restrict_rules(seed: tuple[str, Config]) -> None:
    name, config = seed
    got = [(r.family, str(r.network) if r.network else None, r.flags) for r in config.restricts]
    assert got == EXPECTED[name][2]
    assert not any(r.source for r in config.restricts)
    for r in config.restricts:
        if r.network is not None:
            assert r.family == r.network.version
            assert r.network == ipaddress.ip_network(str(r.network))


def test_fudges(seed: tuple[str, Config]) -> None:
    name, config = seed
    assert {f.host: f.stratum for f in config.fudges} == EXPECTED[name][3]
    for host in EXPECTED[name][3]:
        assert any(s.host == host and s.refclock == (1, 0) for s in config.servers)


def test_line_numbers_point_into_the_file(seed: tuple[str, Config], shared_data: Path) -> None:
    name, config = seed
    lines = (seed_dir(shared_data) / name).read_text().splitlines()
    for s in config.servers:
        assert lines[s.location.line - 1].split()[:2] == [s.kind, s.host]
    for r in config.restricts:
        assert lines[r.location.line - 1].startswith("restrict")
