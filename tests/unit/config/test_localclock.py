"""``localclock public unsync|serve start wait|serve``: parsing, the defaults, the errors and the warning."""

from __future__ import annotations

import pytest

from appliance.config import Config, ConfigError, default_config_text, parse_config
from appliance.config.model import LocalClockOptions, Location

F = "t.conf"
LOCAL = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"


def parse(text: str) -> Config:
    return parse_config(text, F)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text)
    return str(e.value)


def test_default_is_unsync_for_the_public() -> None:
    c = parse(LOCAL)
    assert c.localclock == LocalClockOptions("unsync", None)
    assert c.localclock.public_unsync


def test_the_shipped_default_config_keeps_the_safe_default() -> None:
    c = parse_config(default_config_text(), "default.conf")
    assert c.localclock.public_unsync and c.localclock.public == "unsync"  # no 'public' line: the default
    assert c.localclock.waits_for_sync and c.warnings == ()  # 'localclock start wait'


@pytest.mark.parametrize(("value", "unsync"), [("serve", False), ("unsync", True)])
def test_public_value_and_location(value: str, unsync: bool) -> None:
    c = parse(f"{LOCAL}\nlocalclock public {value}\n")
    assert c.localclock.public == value
    assert c.localclock.public_unsync is unsync
    assert c.localclock.location == Location(F, 4)
    assert c.warnings == ()


def test_a_later_line_wins() -> None:
    c = parse(f"localclock public serve\n{LOCAL}localclock public unsync\n")
    assert c.localclock == LocalClockOptions("unsync", Location(F, 4))


def test_start_serves_without_a_line_and_each_option_keeps_its_last_line() -> None:
    c = parse(LOCAL)
    assert c.localclock.start == "serve" and not c.localclock.waits_for_sync  # ntpd's way, for ntpd's files
    c = parse(f"{LOCAL}localclock start wait public serve\nlocalclock public unsync\n")
    assert (c.localclock.start, c.localclock.public) == ("wait", "unsync")  # the later line set public only
    assert c.localclock.waits_for_sync and c.localclock.location == Location(F, 4)


def test_with_refclock_local_there_is_no_warning() -> None:
    assert parse("refclock local stratum 10\nlocalclock public serve\n").warnings == ()


def test_without_a_local_clock_it_warns_with_file_and_line() -> None:
    c = parse("server 192.0.2.1 iburst\n\nlocalclock public serve\n")
    assert [str(w) for w in c.warnings] == [
        "t.conf:3: warning: localclock, but no local clock ('server 127.127.1.0'): it has no effect"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("localclock", "t.conf:3: localclock needs an option: 'public unsync|serve' or 'start wait|serve'"),
        ("localclock start now", "t.conf:3: localclock start needs wait or serve, not 'now'"),
        ("localclock start", "t.conf:3: localclock option 'start' needs a value"),
        ("localclock public", "t.conf:3: localclock option 'public' needs a value"),
        ("localclock public yes", "t.conf:3: localclock public needs unsync or serve, not 'yes'"),
        ("localclock pubilc serve", "t.conf:3: unknown localclock option 'pubilc' (did you mean 'public'?)"),
        ("localclock public serve now", "t.conf:3: unknown localclock option 'now'"),
    ],
)
def test_errors_name_file_and_line(line: str, message: str) -> None:
    assert error(f"{LOCAL}{line}\n") == message
