"""``python3 -m appliance.hw apply`` and ``overlays``: a root file system set up for a board, idempotently."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, require

from appliance.hw import boot
from appliance.refclock.profiles import builtin_profiles

PROFILES = builtin_profiles()
DEBIAN_CONFIG = "arm_64bit=1\nenable_uart=1\nupstream_kernel=1\n"
DEBIAN_CMDLINE = "console=tty0 console=ttyAMA0,115200 root=LABEL=RASPIROOT rw rootwait\n"


def _hw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.hw", *args], capture_output=True, text=True, cwd=ROOT)


def _root(tmp: Path) -> Path:
    require(shutil.which("dtc") is not None, "dtc (Debian package device-tree-compiler) is not installed")
    firmware = tmp / "boot" / "firmware"
    firmware.mkdir(parents=True)
    (firmware / "config.txt").write_text(DEBIAN_CONFIG)
    (firmware / "cmdline.txt").write_text(DEBIAN_CMDLINE)
    return tmp


def test_merge_replaces_the_earlier_block() -> None:
    ada = boot.config_txt(PROFILES["adafruit-ultimate-gps-hat"], "upstream")
    upu = boot.config_txt(PROFILES["uputronics-gps-hat"], "upstream")
    once = boot.merge_config_txt(DEBIAN_CONFIG, ada)
    assert once == DEBIAN_CONFIG + ada
    assert boot.merge_config_txt(once, ada) == once
    assert boot.merge_config_txt(once + "gpu_mem=16\n", upu) == DEBIAN_CONFIG + "gpu_mem=16\n" + upu
    unterminated = DEBIAN_CONFIG + boot.CONFIG_BEGIN + "\ndtoverlay=stratum1-pps-gpio4\n"
    assert boot.merge_config_txt(unterminated, upu) == DEBIAN_CONFIG + upu
    assert boot.merge_config_txt("", upu) == upu


def test_apply_sets_a_root_up_once(tmp_path: Path) -> None:
    root = _root(tmp_path)
    firmware = root / "boot" / "firmware"
    out = _hw("apply", "--profile", "adafruit-ultimate-gps-hat", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "adafruit-ultimate-gps-hat: reboot for the firmware to load it"
    config = (firmware / "config.txt").read_text()
    assert config.startswith(DEBIAN_CONFIG) and "dtoverlay=stratum1-pps-gpio4\n" in config
    assert (firmware / "cmdline.txt").read_text() == "console=tty0 root=LABEL=RASPIROOT rw rootwait\n"
    custom = (root / "etc/default/raspi-firmware-custom").read_text()
    assert custom == boot.config_txt(PROFILES["adafruit-ultimate-gps-hat"], "upstream")
    for name in ("stratum1-uart0", "stratum1-pps-gpio4", "stratum1-i2c1"):
        assert (firmware / "overlays" / f"{name}.dtbo").read_bytes()[:4] == b"\xd0\x0d\xfe\xed"
    assert json.loads((root / "etc/stratum1/profile.json").read_text())["pps_pin"] == 4
    assert "ppspath /dev/gpspps0 time2 0.5" in (root / "etc/stratum1/ntp.conf").read_text()
    assert (root / "etc/udev/rules.d/99-stratum1.rules").is_file()
    assert (root / "etc/modules-load.d/stratum1.conf").read_text().endswith("i2c-dev\n")
    again = _hw("apply", "--profile", "adafruit-ultimate-gps-hat", "--root", str(root))
    assert again.stdout == "adafruit-ultimate-gps-hat: the boot files were already so\n"


def test_apply_another_board_replaces_the_block(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert _hw("apply", "--profile", "adafruit-ultimate-gps-hat", "--root", str(root)).returncode == 0
    (root / "etc/stratum1/ntp.conf").write_text("# mine\n")
    out = _hw("apply", "--profile", "uputronics-gps-hat", "--root", str(root), "--keep-ntp-conf")
    assert out.returncode == 0, out.stderr
    config = (root / "boot/firmware/config.txt").read_text()
    assert config.count(boot.CONFIG_BEGIN) == 1
    assert "stratum1-pps-gpio18" in config and "stratum1-pps-gpio4" not in config
    assert (root / "etc/stratum1/ntp.conf").read_text() == "# mine\n"


def test_apply_from_the_eeprom(tmp_path: Path) -> None:
    root = _root(tmp_path)
    hat = root / "proc/device-tree/hat"
    assert _hw("apply", "--detect", "--root", str(root)).returncode == 1
    hat.mkdir(parents=True)
    (hat / "vendor").write_bytes(b"Uputronics\0")
    (hat / "product").write_bytes(b"GPS/RTC Expansion Board\0")
    out = _hw("apply", "--detect", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("uputronics-gps-hat: reboot")


def test_apply_for_raspberry_pi_os_leaves_debians_file_alone(tmp_path: Path) -> None:
    root = _root(tmp_path)
    out = _hw("apply", "--profile", "uputronics-gps-hat", "--kernel", "raspios", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert not (root / "etc/default/raspi-firmware-custom").exists()
    assert not (root / "boot/firmware/overlays").exists()
    assert "dtoverlay=pps-gpio,gpiopin=18\n" in (root / "boot/firmware/config.txt").read_text()


def test_the_doctor_finds_an_applied_boot_partition_right(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert _hw("apply", "--profile", "usb-receiver", "--root", str(root)).returncode == 0
    out = _hw("doctor", "--root", str(root), "--seconds", "0.1", "--json")
    links = {link["link"]: link for link in json.loads(out.stdout)["links"]}
    assert links["profile"]["detail"] == "usb-receiver (upstream kernel), from /etc/stratum1/profile.json"
    assert links["config.txt"]["status"] == "ok", links["config.txt"]
    assert links["serial console"]["status"] == "ok"


def test_overlays_for_every_profile(tmp_path: Path) -> None:
    out = _hw("overlays", "--out", str(tmp_path))
    assert out.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "stratum1-i2c1.dts",
        "stratum1-pps-gpio18.dts",
        "stratum1-pps-gpio4.dts",
        "stratum1-uart0.dts",
    ]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_config_block_is_marked(name: str) -> None:
    lines = boot.config_txt(PROFILES[name], "upstream").splitlines()
    assert lines[0] == boot.CONFIG_BEGIN and lines[-1] == boot.CONFIG_END and "[all]" in lines
