"""appliance.hw.kernel and ``check-kernel``: a kernel without pps-gpio, trees without labels, stop the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, require

from appliance.hw import kernel
from appliance.hw.command import all_overlays

BASE_DTS = ROOT / "tests" / "data" / "dt" / "upstream-pi-base.dts"
DEBIAN_13 = "CONFIG_PPS=y\nCONFIG_PPS_CLIENT_GPIO=m\nCONFIG_GPIO_CDEV=y\n"
DEBIAN_12 = "CONFIG_PPS=y\n# CONFIG_PPS_CLIENT_GPIO is not set\n"


def _dtb(tmp: Path, *, symbols: bool = True, drop_label: str | None = None) -> bytes:
    dtc = shutil.which("dtc")
    require(dtc is not None, "dtc (Debian package device-tree-compiler) is not installed")
    assert dtc is not None
    source = BASE_DTS.read_text()
    if drop_label:
        source = source.replace(f"{drop_label}: ", "")
    src = tmp / "base.dts"
    src.write_text(source)
    out = tmp / "base.dtb"
    subprocess.run(
        [dtc, *(["-@"] if symbols else []), "-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(src)], check=True
    )
    return out.read_bytes()


def _trees(blob: bytes) -> dict[str, bytes]:
    return {name: blob for name in kernel.REQUIRED_TREES}


def test_symbols_of_a_tree(tmp_path: Path) -> None:
    table = kernel.symbols(_dtb(tmp_path))
    assert table is not None
    assert table["uart0"] == "/soc/serial@7e201000"
    assert table["uart0_gpio14"] == "/soc/gpio@7e200000/uart0-gpio14"
    assert kernel.symbols(_dtb(tmp_path, symbols=False)) is None


def test_not_a_tree() -> None:
    with pytest.raises(kernel.FdtError, match="not a device-tree blob"):
        kernel.symbols(b"\0" * 64)
    with pytest.raises(kernel.FdtError, match="shorter"):
        kernel.symbols(b"\xd0\x0d\xfe\xed")


def test_the_overlays_labels() -> None:
    labels = set().union(*(kernel.overlay_labels(o) for o in all_overlays().values()))
    assert labels == {"gpio", "uart0", "uart1", "uart0_gpio14", "i2c1", "i2c1_gpio2"}


def test_a_kernel_that_can(tmp_path: Path) -> None:
    assert kernel.check({"config-6.12": DEBIAN_13}, _trees(_dtb(tmp_path)), all_overlays().values()) == []


def test_debian_12s_kernel(tmp_path: Path) -> None:
    problems = kernel.check({"config-6.1": DEBIAN_12}, _trees(_dtb(tmp_path, symbols=False)), all_overlays().values())
    assert problems[0] == (
        "config-6.1: CONFIG_PPS_CLIENT_GPIO is not set: this kernel has no pps-gpio driver "
        "(Debian 13's has it as a module)"
    )
    assert "bcm2711-rpi-4-b.dtb: no __symbols__ (built without dtc -@): overlays cannot be applied to it" in problems


def test_a_tree_missing_a_label_or_missing(tmp_path: Path) -> None:
    trees = _trees(_dtb(tmp_path, drop_label="i2c1_gpio2"))
    del trees["bcm2837-rpi-zero-2-w.dtb"]
    problems = kernel.check({"config-6.12": DEBIAN_13}, trees, all_overlays().values())
    assert "no bcm2837-rpi-zero-2-w.dtb: the kernel package has no device tree for this board" in problems
    assert "bcm2711-rpi-4-b.dtb: lacks the labels the overlays use: i2c1_gpio2" in problems
    assert kernel.check({}, trees, [])[0] == "no kernel config (/boot/config-*): is a kernel installed?"


def test_a_tree_whose_i2c1_is_elsewhere(tmp_path: Path) -> None:
    blob = _dtb(tmp_path).replace(b"i2c@7e804000", b"i2c@7e804001")
    problems = kernel.check({"config-6.12": DEBIAN_13}, _trees(blob), all_overlays().values())
    assert problems[0] == (
        "bcm2711-rpi-4-b.dtb: i2c1 is /soc/i2c@7e804001, not /soc/i2c@7e804000, which the I2C overlay names in /aliases"
    )


def test_check_kernel_command(tmp_path: Path) -> None:
    blob = _dtb(tmp_path)
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "config-6.12.0-arm64").write_text(DEBIAN_13)
    trees = root / "usr" / "lib" / "linux-image-6.12.0-arm64" / "broadcom"
    trees.mkdir(parents=True)
    for name in kernel.REQUIRED_TREES:
        (trees / name).write_bytes(blob)
    cmd = [sys.executable, "-m", "appliance.hw", "check-kernel", "--root", str(root)]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "CONFIG_PPS_CLIENT_GPIO set; 3 Pi device trees with __symbols__" in ok.stdout
    (root / "boot" / "config-6.12.0-arm64").write_text(DEBIAN_12)
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith(f"stratum1 hw: {root}/boot/config-6.12.0-arm64: CONFIG_PPS_CLIENT_GPIO is not set")
