"""check-config and serve warn, with the config line, about GPS devices that are missing or not devices.

``/dev/null`` is a real character device on every Linux machine; a regular
file in ``tmp_path`` and a path that does not exist are the two faults.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.refclock.setup import GPIO_CHIP, Device, device_warnings, gps_devices


def real_stat(path: str) -> int:
    return os.stat(path).st_mode


def test_a_character_device_passes() -> None:
    config = parse_config("refclock nmea path /dev/null ppspath /dev/null\n", "t.conf")
    assert device_warnings(config, real_stat) == []


def test_missing_and_regular_files_are_warned_with_their_lines(tmp_path: Path) -> None:
    plain = tmp_path / "ttyAMA0"
    plain.write_text("")
    missing = tmp_path / "pps0"
    text = f"refclock nmea path {plain} time2 0.35\nrefclock pps path {missing}\n"
    found = [str(w) for w in device_warnings(parse_config(text, "t.conf"), real_stat)]
    assert found == [
        f"t.conf:1: warning: serial port {plain} is not a character device",
        f"t.conf:2: warning: PPS device {missing} does not exist",
    ]


def test_ntpd_spelling_names_its_own_lines() -> None:
    text = "server 127.127.20.0 mode 16\nfudge 127.127.20.0 flag1 1\nserver 127.127.22.1\n"
    devices = gps_devices(parse_config(text, "t.conf"))
    # the receiver's own PPS (flag1), then the PPS line: a source of its own, numbered by the selected one
    assert [(d.what, d.path, d.location.line) for d in devices] == [
        ("serial port", "/dev/gps0", 1),
        ("PPS device", "/dev/gpspps0", 2),
        ("PPS device", "/dev/pps1", 3),
    ]
    paired = gps_devices(parse_config("server 127.127.20.0 mode 16\nserver 127.127.22.1\n", "t.conf"))
    assert [(d.path, d.location.line) for d in paired] == [("/dev/gps0", 1), ("/dev/pps1", 2)]
    flag1 = gps_devices(parse_config("server 127.127.20.0 mode 16\nfudge 127.127.20.0 flag1 1\n", "t.conf"))
    assert [(d.path, d.location.line) for d in flag1] == [("/dev/gps0", 1), ("/dev/gpspps0", 2)]


def test_gpio_pps_needs_the_gpio_chip() -> None:
    config = parse_config("\nrefclock nmea path /dev/serial0 ppspath gpio:18\n", "t.conf")
    assert gps_devices(config)[1] == Device("GPIO chip", GPIO_CHIP, gps_devices(config)[0].location)
    modes = {"/dev/serial0": stat.S_IFCHR | 0o660}

    def table(path: str) -> int:
        if path not in modes:
            raise FileNotFoundError(path)
        return modes[path]

    assert [str(w) for w in device_warnings(config, table)] == [
        f"t.conf:2: warning: GPIO chip {GPIO_CHIP} does not exist"
    ]


def test_no_gps_no_devices() -> None:
    assert gps_devices(parse_config("server 127.127.1.0\n", "t.conf")) == ()


def test_check_config_prints_the_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    missing = tmp_path / "gps0"
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"# GPS\nrefclock nmea path {missing} ppspath /dev/null\n")
    assert main(["check-config", str(conf)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{conf}:2: warning: serial port {missing} does not exist"
    assert out[-1].endswith("1 warnings")
