"""gpsd lines: NTPsec's mode 0 (serial time only), its PPS-only secondary units (128 and up), and what
cannot act (flag1 on a secondary, reserved modes) warned about with file:line.

stratum1 read only 'mode 1': 'mode 0' and unit 128 were silently full sources with pulses and time.
"""

from __future__ import annotations

import pytest

from appliance.config import parse_config
from appliance.refclock.sample import SampleKind
from appliance.refclock.setup import refclock_lines, setup_warnings

BOTH = {SampleKind.PULSE, SampleKind.TIME}


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("refclock gpsd unit 1 mode 0\n", {SampleKind.TIME}),
        ("server 127.127.46.0 mode 0\n", {SampleKind.TIME}),
        ("refclock gpsd unit 0 mode 1\n", {SampleKind.PULSE}),
        ("refclock gpsd unit 0 mode 2\n", BOTH),
        ("refclock gpsd unit 0\n", BOTH),
        ("server 127.127.46.128\nfudge 127.127.46.128 time1 0.0015\n", {SampleKind.PULSE}),
        ("refclock gpsd unit 129\n", {SampleKind.PULSE}),
    ],
)
def test_the_mode_and_unit_choose_what_the_line_takes(text: str, kinds: set[SampleKind]) -> None:
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert set(line.settings.kinds) == kinds


def test_flag1_on_a_secondary_unit_is_warned_about_for_what_it_is() -> None:
    text = (
        "server 127.127.46.0 minpoll 4 maxpoll 4\nfudge 127.127.46.0 time1 0.142\n"
        "server 127.127.46.128 minpoll 4 maxpoll 4\nfudge 127.127.46.128 time1 0.0015 flag1 1\n"
    )
    (w,) = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    assert w.startswith("t.conf:4: warning: server 127.127.46.128 flag1 (NTPsec: this secondary unit may be the PPS")


@pytest.mark.parametrize("text", ["refclock gpsd unit 0 mode 3\n", "server 127.127.46.0 mode 7\n"])
def test_a_reserved_mode_is_warned_about(text: str) -> None:
    (w,) = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    assert w.startswith("t.conf:1: warning: ") and "reserved" in w
