"""ntpd's NMEA ``mode`` bits other than the baud rate are not acted on: each is warned about with file:line.

Bits 0-3 choose the sentences ntpd uses (RMC, GGA, GLL, ZDA); 0x80, 0x100, 0x10000, 0x20000, 0x40000 are
other behaviours. stratum1 reads bits 4-6 (the baud rate) only, and said nothing about the rest.
"""

from __future__ import annotations

import pytest

from appliance.config import parse_config
from appliance.refclock.setup import refclock_lines, setup_warnings


def warned(text: str) -> list[str]:
    return [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("server 127.127.20.0 mode 8\nfudge 127.127.20.0 time2 0.4\n", ["sentence selection", "only ZDA/ZDG"]),
        ("server 127.127.20.0 mode 17\nfudge 127.127.20.0 time2 0.4\n", ["sentence selection", "only RMC"]),
        ("refclock nmea unit 0 mode 3 time2 0.4\n", ["only RMC, GGA"]),
        ("server 127.127.20.0 mode 128\nfudge 127.127.20.0 time2 0.4\n", ["0x80"]),
        ("server 127.127.20.0 mode 65536\nfudge 127.127.20.0 time2 0.4\n", ["0x10000"]),
        ("refclock nmea unit 0 mode 262160 time2 0.4\n", ["0x40000"]),
    ],
)
def test_bits_not_acted_on_are_warned_about_with_the_line(text: str, words: list[str]) -> None:
    (w,) = warned(text)
    assert w.startswith("t.conf:1: warning: ") and w.endswith("ignored")
    for word in words:
        assert word in w


@pytest.mark.parametrize("mode", [0, 16, 32, 80])
def test_the_baud_rate_bits_alone_are_not_warned_about(mode: int) -> None:
    text = f"server 127.127.20.0 mode {mode}\nfudge 127.127.20.0 time2 0.4\n"
    assert warned(text) == []
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert line.gps is not None and line.gps.baud == {0: 4800, 16: 9600, 32: 19200, 80: 115200}[mode]


def test_the_shipped_config_example_is_quiet() -> None:
    """default.conf's ntpd form ('mode 16') draws no warning (it said 'mode 17', RMC only, which is not so)."""
    assert warned("server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.350 refid GPS\n") == []
