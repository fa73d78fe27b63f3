"""``interface listen NAME|PREFIX`` and ``interface ignore wildcard``: served where the lines say, never widened.

The tester's ``interface ignore wildcard`` + ``interface listen eth0`` bound 0.0.0.0 and ::, with no word from
check-config. Now names and prefixes are resolved against the machine's addresses; a line that names nothing
is warned about with file:line, and lines that name nothing at all make serve refuse rather than bind the
wildcard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import ConfigError, parse_config
from appliance.config.listen import listen_plan
from appliance.daemon import listen_addresses
from appliance.io.ifaddrs import interface_addresses

HERE = (
    ("lo", "127.0.0.1"),
    ("eth0", "192.0.2.7"),
    ("lo", "::1"),
    ("eth0", "2001:db8::7"),
    ("eth0", "fe80::7%eth0"),
    ("wlan0", "198.51.100.3"),
)


def plan(text: str) -> tuple[tuple[str, ...], list[str]]:
    p = listen_plan(parse_config(text, "t.conf").listen, HERE)
    return p.addresses, [str(w) for w in p.warnings]


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("interface ignore wildcard\ninterface listen eth0\n", ("192.0.2.7", "2001:db8::7", "fe80::7%eth0")),
        ("interface listen eth0\n", ("192.0.2.7", "2001:db8::7", "fe80::7%eth0")),
        ("interface listen 192.0.2.0/24\n", ("192.0.2.7",)),
        ("interface listen 2001:db8::/32\ninterface listen wlan0\n", ("2001:db8::7", "198.51.100.3")),
        ("interface listen 192.0.2.7\n", ("192.0.2.7",)),
        ("interface ignore wildcard\n", tuple(a for _, a in HERE)),
        ("interface ignore wildcard\ninterface listen ipv6\n", ("::1", "2001:db8::7", "fe80::7%eth0")),
        ("", ("0.0.0.0", "::")),
        ("interface listen all\n", ("0.0.0.0", "::")),
        ("interface listen ipv4\ninterface listen eth0\n", ("0.0.0.0", "2001:db8::7", "fe80::7%eth0")),
    ],
)
def test_the_lines_choose_the_machines_addresses(text: str, addresses: tuple[str, ...]) -> None:
    assert plan(text) == (addresses, [])


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("interface listen eth9\n", "t.conf:1: warning: interface listen eth9: no interface named eth9 here"),
        ("\ninterface listen 10.0.0.0/8\n", "t.conf:2: warning: interface listen 10.0.0.0/8: no address of"),
    ],
)
def test_a_line_that_names_nothing_here_is_warned_about_and_nothing_is_widened(text: str, warning: str) -> None:
    addresses, warnings = plan(text)
    assert addresses == ()
    assert len(warnings) == 1 and warnings[0].startswith(warning)


def test_serve_refuses_lines_that_name_nothing_rather_than_bind_every_address() -> None:
    config = parse_config("interface ignore wildcard\ninterface listen eth9\n", "t.conf")
    with pytest.raises(ConfigError, match=r"nothing to listen on: the 'interface listen' lines \(t.conf:2\)"):
        listen_addresses(config, None, HERE)
    assert listen_addresses(config, ("127.0.0.1",), HERE) == ("127.0.0.1",)  # -l wins


def test_serve_binds_the_named_interfaces_addresses() -> None:
    config = parse_config("interface listen wlan0\ninterface listen eth9\n", "t.conf")
    assert listen_addresses(config, None, HERE) == ("198.51.100.3",)


def test_the_machines_addresses_include_loopback() -> None:
    found = interface_addresses()
    assert ("lo", "127.0.0.1") in found or not found  # (a namespace with lo down has none)
    for name, address in found:
        assert name and (":" in address or address.count(".") == 3)


def test_check_config_says_it(tmp_path: Path) -> None:
    conf = tmp_path / "ntp.conf"
    conf.write_text("interface ignore wildcard\ninterface listen nosuch0\n")
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check-config", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert f"{conf}:2: warning: interface listen nosuch0: no interface named nosuch0 here" in out.stdout
    assert f"{conf}:2: warning: the 'interface listen' lines name no address of this machine" in out.stdout
    assert "'interface ignore' is not supported" not in out.stdout


def test_serve_waits_for_an_interface_that_has_no_address_yet(caplog: pytest.LogCaptureFixture) -> None:
    """At boot eth0 may have no address until DHCP answers: serve waits (once logged), then binds it, as ntpd
    binds an interface when it comes up, instead of exiting until systemd gives up restarting it."""
    from appliance.cli import wait_for_addresses

    config = parse_config("interface listen eth0\n", "t.conf")
    seen = [(), (), (("eth0", "198.51.100.7"),)]
    waits: list[float] = []
    found = wait_for_addresses(
        lambda again: listen_addresses(config, None, seen.pop(0), quiet=again), wait=lambda s: waits.append(s)
    )
    assert found == ("198.51.100.7",) and waits == [2.0, 2.0]
    said = [r.getMessage() for r in caplog.records if "waiting for one" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("nothing to listen on: the 'interface listen' lines (t.conf:1)")
    assert len([r for r in caplog.records if "no interface named eth0" in r.getMessage()]) == 1  # once


def test_a_stop_while_waiting_for_an_address_serves_nothing() -> None:
    from appliance.cli import wait_for_addresses

    config = parse_config("interface listen eth0\n", "t.conf")
    stopped = wait_for_addresses(lambda again: listen_addresses(config, None, (), quiet=again), wait=lambda s: 15)
    assert stopped is None
