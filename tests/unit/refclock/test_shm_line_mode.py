"""An shm line's ``mode``: bit 0 is ntpd's SHM_MODE_PRIVATE (an owner-only segment from unit 2 on), not ignored."""

from __future__ import annotations

import pytest

from appliance.config import parse_config
from appliance.refclock.setup import refclock_lines, setup_warnings
from appliance.refclock.shm import shm_perm


@pytest.mark.parametrize(
    ("text", "perm"),
    [
        ("server 127.127.28.2 mode 1\nfudge 127.127.28.2 refid GPS\n", 0o600),
        ("refclock shm unit 3 mode 1\n", 0o600),
        ("refclock shm unit 3\n", 0o666),
        ("server 127.127.28.2\n", 0o666),
        ("server 127.127.28.0\n", 0o600),
    ],
)
def test_the_line_says_whether_the_segment_is_private(text: str, perm: int) -> None:
    (line,) = refclock_lines(parse_config(text, "t.conf"))
    assert shm_perm(line.unit, line.shm_mode) == perm


@pytest.mark.parametrize("text", ["server 127.127.28.2 mode 1\n", "refclock shm unit 3 mode 1\n"])
def test_mode_1_is_not_called_ignored(text: str) -> None:
    assert [str(w) for w in setup_warnings(parse_config(text, "t.conf"))] == []


@pytest.mark.parametrize("text", ["server 127.127.28.2 mode 5\n", "refclock shm unit 2 mode 4\n"])
def test_reserved_mode_bits_are_warned_about_with_the_line(text: str) -> None:
    (w,) = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    assert w.startswith("t.conf:1: warning: ") and "0x4" in w and "reserved" in w
