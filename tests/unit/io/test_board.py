"""appliance.io.board.LiveBoard: files under a root, a serial port (a pty) and a sysfs PPS file read together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

from appliance.hw.doctor import parse_assert
from appliance.io.board import LiveBoard
from appliance.io.serial import open_serial

RMC = b"$GPRMC,120000.00,A,4807.038,N,01131.000,E,0.0,0.0,230324,,,A*5B\r\n"


@pytest.fixture
def pty_path() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    os.close(master)
    os.close(slave)


def test_files_under_the_root(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_bytes(b"console=tty0\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "ttyAMA0").write_bytes(b"")
    (tmp_path / "dev" / "gps0").symlink_to("ttyAMA0")
    (tmp_path / "dev" / "gpspps0").symlink_to("pps0")
    board = LiveBoard(str(tmp_path))
    assert board.read("/proc/cmdline") == b"console=tty0\n"
    assert board.listdir("/dev") == ["gps0", "gpspps0", "ttyAMA0"]
    assert board.resolve("/dev/gps0") == "/dev/ttyAMA0"
    with pytest.raises(FileNotFoundError):
        board.resolve("/dev/gpspps0")  # dangling
    with pytest.raises(FileNotFoundError):
        board.read("/boot/firmware/config.txt")


def test_capture_reads_the_port_and_the_pps_file(tmp_path: Path, pty_path: tuple[int, str]) -> None:
    master, path = pty_path
    pps = tmp_path / "sys" / "class" / "pps" / "pps0"
    pps.mkdir(parents=True)
    (pps / "assert").write_text("1711195200.000004211#7\n")
    writer = threading.Timer(0.15, os.write, (master, RMC * 3))  # after the open, which empties the port
    writer.start()
    capture = LiveBoard("/").capture(path, 9600, str(pps / "assert"), 0.5)
    writer.join()
    assert capture.serial_error is None and capture.pps_error is None and not capture.serial_busy
    assert b"".join(data for _, data in capture.chunks) == RMC * 3
    assert capture.asserts == ("1711195200.000004211#7",)
    assert parse_assert(capture.asserts[0]) == (1_711_195_200_000_004_211, 7)


def test_capture_of_a_port_held_by_another_program(pty_path: tuple[int, str]) -> None:
    _, path = pty_path
    holder = open_serial(path, 9600)
    try:
        capture = LiveBoard("/").capture(path, 9600, None, 0.1)
    finally:
        holder.close()
    assert capture.serial_busy and capture.serial_error is not None and "in use" in capture.serial_error
    assert capture.pps_error == "no PPS device"


def test_capture_of_a_missing_port(tmp_path: Path) -> None:
    capture = LiveBoard(str(tmp_path)).capture("/dev/gps0", 9600, "/sys/class/pps/pps0/assert", 0.1)
    assert capture.serial_error is not None and "no such device" in capture.serial_error
    assert not capture.serial_busy and capture.pps_error is not None


def test_i2c_bus_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LiveBoard(str(tmp_path)).i2c_probe(1, 0x27)


def _stratum1(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_doctor_command_on_a_copy_of_a_board(tmp_path: Path) -> None:
    (tmp_path / "etc" / "stratum1").mkdir(parents=True)
    (tmp_path / "etc" / "stratum1" / "profile.json").write_text(json.dumps({"name": "usb-receiver"}))
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    (tmp_path / "boot" / "firmware" / "config.txt").write_text("upstream_kernel=1\ndtoverlay=stratum1-i2c1\n")
    (tmp_path / "etc" / "default").mkdir(parents=True)
    (tmp_path / "etc" / "default" / "raspi-firmware-custom").write_text("dtoverlay=stratum1-i2c1\n")
    out = _stratum1("doctor", "--root", str(tmp_path), "--seconds", "0.1", "--ascii")
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[ok] profile                 usb-receiver (upstream kernel), from /etc/stratum1/profile.json"
    assert lines[1].startswith("[!!] config.txt              /boot/firmware/config.txt names overlays that")
    assert any(line.startswith("[!!] GPS serial port         no /dev/ttyACM0 and no /dev/gps0") for line in lines)
    assert lines[-1] == "first broken link: config.txt"
    data = json.loads(_stratum1("doctor", "--root", str(tmp_path), "--seconds", "0.1", "--json").stdout)
    assert data["broken"] == "config.txt" and len(data["links"]) == 12


def test_doctor_command_without_a_profile(tmp_path: Path) -> None:
    out = _stratum1("doctor", "--root", str(tmp_path))
    assert out.returncode == 1 and out.stdout == ""
    # the command typed, and the file it read: under --root, not the host's /etc
    assert out.stderr.startswith(f"stratum1 doctor: no {tmp_path}/etc/stratum1/profile.json: name the board with")
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [["doctor"], ["hw", "check-kernel"], ["hw", "detect"]])
def test_a_root_that_is_not_there_is_said_so(tmp_path: Path, command: list[str]) -> None:
    out = _stratum1(*command, "--root", str(tmp_path / "nonexistent"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == f"stratum1 {' '.join(command)}: --root {tmp_path}/nonexistent: no such directory\n"


def test_stratum1_hw_render_is_the_module(tmp_path: Path) -> None:
    out = _stratum1("hw", "render", "--profile", "adafruit-ultimate-gps-hat", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "overlays" / "stratum1-pps-gpio4.dts").is_file()
