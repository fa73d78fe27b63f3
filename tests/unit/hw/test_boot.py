"""appliance.hw.boot: every profile's files parse, compile, apply to a device tree, and agree with the profile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, require

from appliance.config import Config, default_config_text, parse_config
from appliance.hw import boot, doctor
from appliance.hw.kernel import nodes
from appliance.io.board import LiveBoard
from appliance.refclock.profiles import Profile, builtin_profiles
from appliance.refclock.setup import gps_setup, setup_warnings

PROFILES = builtin_profiles()
BASE_DTS = ROOT / "tests" / "data" / "dt" / "upstream-pi-base.dts"
#: Debian's own Pi device trees, when a test run has them (the image build does): every overlay is applied to each.
REAL_DTBS = Path(os.environ.get("STRATUM1_PI_DTBS", "/nonexistent"))
CASES = [(n, k) for n in sorted(PROFILES) for k in boot.KERNELS]


def _render(name: str, kernel: boot.Kernel) -> dict[str, str]:
    return boot.render(PROFILES[name], kernel, default_config_text())


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_ntp_conf_passes_the_appliances_parser_and_names_the_board(name: str, kernel: boot.Kernel) -> None:
    p = PROFILES[name]
    text = _render(name, kernel)["ntp.conf"]
    config = parse_config(text, f"<{name} ntp.conf>")
    assert not config.warnings and not setup_warnings(config)
    setup = gps_setup(config)
    assert setup is not None
    assert setup.serial_path == boot.GPS_LINK
    assert setup.baud == p.baud and setup.autobaud == p.autobaud
    assert setup.nmea_delay_ns == p.nmea_offset_ns
    assert setup.pps_path == (boot.PPS_LINK if p.pps_source == "kernel" else None)
    # public serving as the default has it (everybody may ask the time, within rate limits), the local clock as
    # the last resort, and the private address ranges as the LAN (queries, the local clock)
    default = parse_config(default_config_text(), "<default>")

    def rules(c: Config) -> list[tuple[object, ...]]:
        return [(str(r.network), r.flags) for r in c.restricts]

    lan = [(net, frozenset({"nomodify", "notrap"})) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    lan += [(net, frozenset({"nomodify", "notrap"})) for net in ("fc00::/7", "fe80::/10")]
    assert rules(config) == rules(default) + lan
    assert [s.host for s in config.servers] == [s.host for s in default.servers]


def test_ntp_conf_needs_the_defaults_gps_paragraph() -> None:
    with pytest.raises(ValueError, match="GPS paragraph or LAN example"):
        boot.ntp_conf(PROFILES["usb-receiver"], "server 127.127.1.0\n")


def _dts_pins(dts: str) -> set[int]:
    """Every pin a pps overlay names: the gpios cell, the pin group, the node names."""
    pins = {int(m) for m in re.findall(r"gpios = <&gpio (\d+) 0>", dts)}
    pins |= {int(m) for m in re.findall(r"brcm,pins = <(\d+)>", dts)}
    pins |= {int(m) for m in re.findall(r"pps-gpio(\d+)", dts)}
    return pins


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_file_agrees_with_the_profile(name: str) -> None:
    p = PROFILES[name]
    files = _render(name, "upstream")
    info = json.loads(files["profile.json"])
    rules = files["udev/99-stratum1.rules"]
    config = files["config.txt"].splitlines()
    named = [line.removeprefix("dtoverlay=") for line in config if line.startswith("dtoverlay=")]
    shipped = sorted(f.removeprefix("overlays/").removesuffix(".dts") for f in files if f.startswith("overlays/"))
    assert sorted(named) == shipped == sorted(info["overlays"]), "config.txt names exactly the overlays rendered"
    assert info["name"] == name and info["pps_pin"] == p.pps_gpio and info["baud"] == p.baud
    assert info["i2c_bus"] == boot.HEADER_I2C_BUS and "stratum1-i2c1" in shipped
    pps_overlays = [f for f in files if f.startswith("overlays/stratum1-pps-")]
    if p.pps_source == "kernel":
        assert p.pps_gpio is not None
        (overlay,) = pps_overlays
        assert _dts_pins(files[overlay]) == {p.pps_gpio}
        rule_pins = {int(m) for m in re.findall(r'ATTR\{name\}=="pps-gpio(\d+)\.-1"', rules)}
        assert rule_pins == {p.pps_gpio}
        assert info["pps_name"] == f"pps-gpio{p.pps_gpio}.-1" and info["pps_device"] == boot.PPS_LINK
    else:
        assert not pps_overlays and "gpspps0" not in rules and info["pps_pin"] is None
    if p.serial_bus == "uart":
        assert "enable_uart=1" in config and "dtoverlay=stratum1-uart0" in config
        assert 'KERNELS=="3f201000.serial|fe201000.serial|1f00030000.serial", SYMLINK+="gps0"' in rules
        assert files["cmdline-remove.txt"].split() == ["console=serial0", "console=ttyAMA0"]
        assert info["uart"] == "/dev/ttyAMA0"
    else:
        assert not any(line.startswith("enable_uart") for line in config)
        assert f'KERNEL=="{p.serial_device.removeprefix("/dev/")}", SYMLINK+="gps0"' in rules
        assert files["cmdline-remove.txt"] == ""
    for device, kind in (("pps", "pps"), ("tty", "serial"), ("gpio", "gpio"), ("i2c-dev", "i2c")):
        line = next(rule for rule in rules.splitlines() if f'SUBSYSTEM=="{device}"' in rule and "GROUP" in rule)
        assert f'GROUP="{boot.DEVICE_GROUPS[kind]}", MODE="0660"' in line


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_raspios_lines_use_raspberry_pis_overlays(name: str) -> None:
    p = PROFILES[name]
    files = _render(name, "raspios")
    assert not any(f.startswith("overlays/") for f in files)
    config = files["config.txt"].splitlines()
    assert "dtparam=i2c_arm=on" in config
    if p.pps_source == "kernel":
        assert f"dtoverlay=pps-gpio,gpiopin={p.pps_gpio}" in config
        assert 'ATTR{name}=="pps@*", SYMLINK+="gpspps0"' in files["udev/99-stratum1.rules"]
    if p.serial_bus == "uart":
        assert "dtoverlay=disable-bt" in config


@pytest.mark.parametrize(
    ("cmdline", "kept"),
    [
        (
            "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootwait\n",
            "console=tty1 root=/dev/mmcblk0p2 rootwait\n",
        ),
        ("console=tty0 root=LABEL=RASPIROOT console=ttyAMA0", "console=tty0 root=LABEL=RASPIROOT"),
        ("console=ttyAMA0,115200n8 console=serial0 quiet", "quiet"),
        ("console=ttyAMA01 console=serial1,115200", "console=ttyAMA01 console=serial1,115200"),
    ],
)
def test_strip_cmdline(cmdline: str, kept: str) -> None:
    assert boot.strip_cmdline(cmdline, boot.UART_CONSOLES) == kept


def _tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} (Debian package device-tree-compiler) is not installed")
    assert path is not None
    return path


def _compile(dts: Path, out: Path) -> None:
    subprocess.run([_tool("dtc"), "-@", "-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(dts)], check=True)


def _fdtget(dtb: Path, node: str, prop: str, kind: str = "s") -> str:
    cmd = [_tool("fdtget"), "-t", kind, str(dtb), node, prop]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _apply(base: Path, profile: Profile, tmp: Path) -> Path:
    """``base`` with the profile's overlays applied, as the firmware would (fdtoverlay does the same merge)."""
    dtbos = []
    for o in boot.overlays(profile, "upstream"):
        src = tmp / f"{o.name}.dts"
        src.write_text(o.source)
        _compile(src, tmp / f"{o.name}.dtbo")
        dtbos.append(str(tmp / f"{o.name}.dtbo"))
    out = tmp / "applied.dtb"
    subprocess.run([_tool("fdtoverlay"), "-i", str(base), "-o", str(out), *dtbos], check=True)
    return out


def _check_applied(dtb: Path, p: Profile) -> None:
    def path(label: str) -> str:
        return _fdtget(dtb, "/__symbols__", label)

    def phandle(node: str) -> str:
        return _fdtget(dtb, node, "phandle", "x")

    assert _fdtget(dtb, path("i2c1"), "status") == "okay"
    assert _fdtget(dtb, "/aliases", "i2c1") == path("i2c1") == boot.HEADER_I2C_NODE, "/dev/i2c-1 whatever the order"
    assert _fdtget(dtb, path("i2c1"), "pinctrl-0", "x") == phandle(path("i2c1_gpio2"))
    if p.serial_bus == "uart":
        assert _fdtget(dtb, path("uart1"), "status") == "disabled"
        assert _fdtget(dtb, path("uart0"), "status") == "okay"
        assert _fdtget(dtb, path("uart0"), "pinctrl-0", "x") == phandle(path("uart0_gpio14"))
        assert _fdtget(dtb, path("uart0") + "/bluetooth", "status") == "disabled"
    if p.pps_source == "kernel":
        node = f"/pps-gpio{p.pps_gpio}"
        assert _fdtget(dtb, node, "compatible") == "pps-gpio"
        cells = _fdtget(dtb, node, "gpios", "u").split()
        assert cells[1:] == [str(p.pps_gpio), "0"], "the pin, rising edge (active high)"
        assert f"{int(cells[0]):x}" == phandle(path("gpio"))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_overlays_compile_and_apply_to_an_upstream_tree(name: str, tmp_path: Path) -> None:
    base = tmp_path / "base.dtb"
    _compile(BASE_DTS, base)
    _check_applied(_apply(base, PROFILES[name], tmp_path), PROFILES[name])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_overlays_apply_to_debians_own_trees(name: str, tmp_path: Path) -> None:
    dtbs = sorted(REAL_DTBS.glob("bcm2837-rpi-*.dtb")) + sorted(REAL_DTBS.glob("bcm2711-rpi-*.dtb"))
    if not dtbs:
        pytest.skip("STRATUM1_PI_DTBS names no directory of Debian's Pi device trees (the image build has them)")
    for dtb in dtbs:
        _check_applied(_apply(dtb, PROFILES[name], tmp_path), PROFILES[name])


def test_render_command_writes_the_files(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "appliance.hw", "render", "--profile", "uputronics-gps-hat", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(_render("uputronics-gps-hat", "upstream"))
    assert out.stdout.split() == [str(tmp_path / f) for f in _render("uputronics-gps-hat", "upstream")]
    assert json.loads((tmp_path / "profile.json").read_text())["pps_pin"] == 18


def test_render_unknown_profile_is_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "appliance.hw", "render", "--profile", "nope", "--out", "/nonexistent/x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "no built-in hardware profile 'nope'" in out.stderr


def test_list_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "appliance.hw", "list"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert [line.split()[0] for line in out.stdout.splitlines()] == sorted(PROFILES)
    assert "PPS on GPIO 4" in out.stdout


def _as_proc_device_tree(blob: bytes, root: Path) -> None:
    """Lay a blob out as the kernel shows it: a directory per node, a file per property."""
    for path, props in nodes(blob).items():
        folder = root / "proc" / "device-tree" / path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in props.items():
            (folder / name).write_bytes(value)


def _doctor_dt_checks(blob: bytes, profile: Profile, root: Path) -> tuple[doctor.Finding, doctor.Finding]:
    _as_proc_device_tree(blob, root)
    board = LiveBoard(str(root))
    plan = doctor.Plan(profile, "upstream", "test")
    seen = doctor._Seen()
    return doctor.check_bluetooth(board, plan, seen), doctor.check_pps_overlay(board, plan, seen)


@pytest.mark.parametrize("name", ["adafruit-ultimate-gps-hat", "uputronics-gps-hat"])
def test_the_doctor_reads_an_applied_tree_as_right(name: str, tmp_path: Path) -> None:
    base = tmp_path / "base.dtb"
    _compile(BASE_DTS, base)
    trees = [base] + sorted(REAL_DTBS.glob("bcm2837-rpi-*.dtb")) + sorted(REAL_DTBS.glob("bcm2711-rpi-*.dtb"))
    for i, tree in enumerate(trees):
        work = tmp_path / f"t{i}"
        work.mkdir()
        bt, pps = _doctor_dt_checks(_apply(tree, PROFILES[name], work).read_bytes(), PROFILES[name], work / "root")
        assert bt.status is doctor.Status.OK, (tree, bt)
        assert bt.detail == "the PL011 (uart0) is on GPIO 14/15; its Bluetooth node: disabled"
        assert pps.status is doctor.Status.OK and f"watches GPIO {PROFILES[name].pps_gpio}" in pps.detail
        before_bt, before_pps = _doctor_dt_checks(tree.read_bytes(), PROFILES[name], work / "before")
        has_bt = f"{_fdtget(tree, '/__symbols__', 'uart0')}/bluetooth" in nodes(tree.read_bytes())
        if has_bt:  # boards with Bluetooth: the PL011 starts on its pins (the CM3 has none, and 14/15 already)
            assert before_bt.status is doctor.Status.FAIL and "32/33" in before_bt.detail, (tree, before_bt)
        else:
            assert before_bt.status is doctor.Status.OK, (tree, before_bt)
        assert before_pps.status is doctor.Status.FAIL and "no pps-gpio node" in before_pps.detail
