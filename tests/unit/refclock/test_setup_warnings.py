"""An NMEA receiver that can never give the time (no PPS, no time2) is warned about, naming file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.refclock.setup import setup_warnings

CASES = [
    ("refclock nmea unit 0 path /dev/ttyACM0 baud 9600\n", True),
    ("refclock nmea unit 0 path /dev/ttyACM0 baud 9600 time2 0.1\n", False),
    ("refclock nmea unit 0 path /dev/serial0 ppspath /dev/pps0\n", False),
    ("server 127.127.20.0 mode 16\n", True),
    ("server 127.127.20.0 mode 16\nfudge 127.127.20.0 time2 0.4\n", False),
    ("server 127.127.20.0 mode 16\nfudge 127.127.20.0 flag1 1\n", False),
    ("server 127.127.20.0 mode 16\nserver 127.127.22.0\n", False),
    ("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n", False),
]


@pytest.mark.parametrize(("text", "warned"), CASES)
def test_nmea_without_pps_or_time2_is_warned(text: str, warned: bool) -> None:
    found = [str(w) for w in setup_warnings(parse_config(text, "t.conf"))]
    assert bool(found) == warned, found
    if warned:
        assert found[0].startswith("t.conf:1: warning: NMEA receiver without PPS and without time2")


def test_check_config_prints_it(tmp_path: Path) -> None:
    """(/dev/null stands in for the serial port: a character device, so the only warning is this one.)"""
    conf = tmp_path / "ntp.conf"
    conf.write_text("# USB receiver\nrefclock nmea unit 0 path /dev/null baud auto\n")
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check-config", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert f"{conf}:2: warning: NMEA receiver without PPS and without time2" in out.stdout
    assert "1 warnings" in out.stdout
