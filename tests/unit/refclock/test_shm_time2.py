"""SHM ``time2`` is the largest offset believed, with ntpd's range: 1 to 86400 s taken, anything else ignored.

ntpd's ``shm_control``: ``time2`` under 1 s or over 86400 s is ignored (4 h used), otherwise rounded to whole
seconds. stratum1 refused 600 or 3600 (the 1 s limit of an offset) and took 0.5 literally, dropping every
sample of a clock more than half a second off.
"""

from __future__ import annotations

import pytest

from appliance.config import parse_config
from appliance.refclock.setup import refclock_lines, setup_warnings
from appliance.timebase import NS_PER_S

H4 = 4 * 3600 * NS_PER_S


@pytest.mark.parametrize(
    ("text", "max_delta"),
    [
        ("server 127.127.28.0\nfudge 127.127.28.0 time2 3600 refid GPS\n", 3600 * NS_PER_S),
        ("refclock shm unit 0 refid GPS time2 600\n", 600 * NS_PER_S),
        ("refclock shm unit 0 time2 86400\n", 86400 * NS_PER_S),
        ("refclock shm unit 0 time2 2.6\n", 3 * NS_PER_S),
        ("server 127.127.28.0\nfudge 127.127.28.0 time2 0.5\n", H4),
        ("refclock shm unit 0 time2 90000\n", H4),
        ("refclock shm unit 0\n", H4),
        ("server 127.127.28.0\nfudge 127.127.28.0 time2 60 flag1 1\n", None),
    ],
)
def test_time2_is_read_as_ntpd_reads_it(text: str, max_delta: int | None) -> None:
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert line.shm_max_delta_ns == max_delta


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("server 127.127.28.0\nfudge 127.127.28.0 time2 0.5\n", "t.conf:2"),
        ("refclock shm unit 0 time2 90000\n", "t.conf:1"),
        ("refclock shm unit 1 time2 0\n", "t.conf:1"),
    ],
)
def test_a_time2_ntpd_ignores_is_warned_about_with_the_line(text: str, at: str) -> None:
    (w,) = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    assert w.startswith(f"{at}: warning: shm time2 ") and "4 h" in w


def test_a_time2_in_range_is_not_warned_about() -> None:
    assert setup_warnings(parse_config("refclock shm unit 0 time2 600\n", "t.conf")) == []


def test_other_drivers_keep_the_1_s_limit() -> None:
    from appliance.config import ConfigError

    with pytest.raises(ConfigError, match=r"t.conf:1: time2 600 s is out of range"):
        parse_config("refclock nmea unit 0 time2 600\n", "t.conf")
