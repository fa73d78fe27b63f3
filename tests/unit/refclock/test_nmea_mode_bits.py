"""ntpd's NMEA ``mode`` bits: the baud rate (bits 4-6) and the sentence selection (bits 0-3: 1 RMC, 2 GGA,
4 GLL, 8 ZDA) are acted on; 0x80, 0x100, 0x10000, 0x20000, 0x40000 (other behaviours) are warned about with
file:line, and so is a selection with no dated sentence, which stratum1 widens with RMC and ZDA.
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


@pytest.mark.parametrize(("mode", "bits"), [(8, 8), (17, 1), (3, 3), (25, 9), (16, 0), (0, 0), (528, 0x200)])
def test_the_sentence_selection_is_taken_not_warned_about(mode: int, bits: int) -> None:
    for text in (
        f"server 127.127.20.0 mode {mode}\nfudge 127.127.20.0 time2 0.4\n",
        f"refclock nmea unit 0 mode {mode} time2 0.4\n",
    ):
        assert warned(text) == []
        (line,) = refclock_lines(parse_config(text, "t.conf"))
        assert line.gps is not None and line.gps.sentences == bits


@pytest.mark.parametrize(
    ("mode", "chosen"), [(2, "GGA, which carries"), (4, "GLL, which carries"), (22, "GGA and GLL, which carry")]
)
def test_a_selection_without_a_date_says_rmc_and_zda_are_used_too(mode: int, chosen: str) -> None:
    (w,) = warned(f"server 127.127.20.0 mode {mode}\nfudge 127.127.20.0 time2 0.4\n")
    assert w.startswith("t.conf:1: warning: ") and f"chooses {chosen} no date" in w
    assert "for the date only: the chosen sentence times it" in w


@pytest.mark.parametrize("mode", [0, 16, 32, 80])
def test_the_baud_rate_bits_alone_are_not_warned_about(mode: int) -> None:
    text = f"server 127.127.20.0 mode {mode}\nfudge 127.127.20.0 time2 0.4\n"
    assert warned(text) == []
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert line.gps is not None and line.gps.baud == {0: 4800, 16: 9600, 32: 19200, 80: 115200}[mode]


def test_the_shipped_config_example_is_quiet() -> None:
    """default.conf's ntpd form ('mode 16') draws no warning (it said 'mode 17', RMC only, which is not so)."""
    assert warned("server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.350 refid GPS\n") == []
