"""Static checks of the SD-card image (image/check-image): they pass on a good image and fail on copies
patched into the broken variants the issue names: a password login, baked-in SSH host keys, a serial
console on the GPS UART (and a time daemon beside the appliance).

The good image is the one in ``STRATUM1_IMAGE`` (a built ``.img`` or ``.img.xz``) when set; otherwise a
small one assembled here by image/assemble (the same code as the real build: mkfs.vfat + mcopy,
mkfs.ext4 -d, sfdisk, dd) from a synthetic root file system that has what the checks look for. Patching
uses debugfs -w and mcopy, no mounting. Needs mtools, e2fsprogs, fdisk and dosfstools (mandatory when
CI=true; image/install-build-deps installs them).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT, require

IMAGE = ROOT / "image"
TOOLS = ("mkfs.vfat", "mcopy", "mtype", "mdir", "mkfs.ext4", "debugfs", "sfdisk")
UNITS = {
    "multi-user.target.wants": ("stratum1.service", "ssh.service", "stratum1-sshkeys.service"),
    "sysinit.target.wants": ("stratum1-growroot.service", "fake-hwclock-load.service"),
}


def _synthetic_root(top: Path) -> None:
    """A root file system with what a good image has, and nothing more."""
    fw = top / "boot" / "firmware"
    (fw / "overlays").mkdir(parents=True)
    (fw / "config.txt").write_text(
        "arm_64bit=1\nupstream_kernel=1\nenable_uart=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n"
        "dtoverlay=stratum1-pps-gpio4\n"
    )
    for name in ("vmlinuz", "initrd.img", "overlays/stratum1-pps-gpio4.dtbo"):
        (fw / name).write_bytes(b"\0" * 64)
    (fw / "cmdline.txt").write_text("console=tty0 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait\n")
    etc = top / "etc"
    for target, units in UNITS.items():
        (etc / "systemd" / "system" / target).mkdir(parents=True)
        for u in units:
            (etc / "systemd" / "system" / target / u).symlink_to(f"/usr/lib/systemd/system/{u}")
    (etc / "ssh" / "sshd_config.d").mkdir(parents=True)
    (etc / "ssh" / "sshd_config.d" / "stratum1.conf").write_text(
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    )
    (etc / "shadow").write_text("root:*:20000:0:99999:7:::\nstratum1:!:20000::::::\n")
    (etc / "machine-id").write_text("")
    (etc / "fake-hwclock.data").write_text("2026-12-01 00:00:00\n")
    (etc / "stratum1").mkdir()
    (etc / "stratum1" / "ntp.conf").write_text("refclock nmea unit 0 path /dev/ttyAMA0 baud 9600 time2 0.5\n")
    (etc / "stratum1" / "profile.json").write_text(json.dumps({"name": "test", "uart": "/dev/ttyAMA0"}))
    (etc / "dpkg" / "dpkg.cfg.d").mkdir(parents=True)
    (etc / "dpkg" / "dpkg.cfg.d" / "99mmdebstrap").write_text("path-exclude=/usr/share/man/*\n")
    dpkg = top / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(
        "Package: systemd\nStatus: install ok installed\n\nPackage: stratum1\nStatus: install ok installed\n\n"
    )


@pytest.fixture(scope="module")
def good_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in TOOLS:
        require(shutil.which(tool) is not None, f"{tool} missing (image/install-build-deps installs it)")
    tmp = tmp_path_factory.mktemp("img")
    given = os.environ.get("STRATUM1_IMAGE")
    if given:
        img = tmp / "given.img"
        opener = lzma.open if given.endswith(".xz") else open
        with opener(given, "rb") as src, open(img, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return img
    _synthetic_root(tmp / "root")
    img = tmp / "synthetic.img"
    r = subprocess.run([str(IMAGE / "assemble"), str(tmp / "root"), str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return img


def _check(img: Path) -> tuple[int, str]:
    r = subprocess.run([str(IMAGE / "check-image"), str(img)], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def _offsets(img: Path) -> tuple[int, int]:
    out = subprocess.run(["sfdisk", "-J", str(img)], capture_output=True, text=True, check=True).stdout
    boot, root = json.loads(out)["partitiontable"]["partitions"]
    return boot["start"] * 512, root["start"] * 512


def _copy(img: Path, tmp: Path) -> Path:
    bad = tmp / "bad.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(bad)], check=True)
    return bad


def _debugfs_write(img: Path, path: str, content: bytes, tmp: Path) -> None:
    """Replace (or create) ``path`` in the image's root file system."""
    src = tmp / "content"
    src.write_bytes(content)
    cmds = tmp / "debugfs.cmds"
    parent, name = path.rsplit("/", 1)
    cmds.write_text(f"cd {parent}\nrm {name}\nwrite {src} {name}\n")
    _, root_off = _offsets(img)
    subprocess.run(["debugfs", "-w", "-f", str(cmds), f"{img}?offset={root_off}"], capture_output=True, check=True)


def _debugfs_read(img: Path, path: str) -> str:
    _, root_off = _offsets(img)
    r = subprocess.run(["debugfs", "-R", f"cat {path}", f"{img}?offset={root_off}"], capture_output=True, text=True)
    return r.stdout


def test_good_image_passes(good_image: Path) -> None:
    rc, report = _check(good_image)
    assert rc == 0, report
    assert report.count("\nok ") + report.startswith("ok ") >= 12, report


def test_password_login_fails(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    shadow = _debugfs_read(bad, "/etc/shadow")
    hashed = shadow.replace("root:*:", "root:$y$j9T$abcdefgh$0123456789abcdefghijklmnopqrstuvwxyzABCDE:", 1)
    assert hashed != shadow
    _debugfs_write(bad, "/etc/shadow", hashed.encode(), tmp_path)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL no-password: accounts with a password (or an empty one): root" in report, report


def test_baked_host_keys_fail(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    _debugfs_write(bad, "/etc/ssh/ssh_host_ed25519_key", b"-----BEGIN OPENSSH PRIVATE KEY-----\n", tmp_path)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL no-host-keys: baked-in host keys: ssh_host_ed25519_key" in report, report


def test_serial_console_on_gps_uart_fails(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    boot_off, _ = _offsets(bad)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    dev = f"{bad}@@{boot_off}"
    cmdline = subprocess.run(["mtype", "-i", dev, "::cmdline.txt"], capture_output=True, text=True, env=env).stdout
    (tmp_path / "cmdline.txt").write_text("console=ttyAMA0,115200 " + cmdline)
    subprocess.run(["mcopy", "-o", "-i", dev, str(tmp_path / "cmdline.txt"), "::cmdline.txt"], check=True, env=env)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL cmdline.txt: a console on the GPS UART: console=ttyAMA0,115200" in report, report


def test_other_time_daemon_fails(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    status = _debugfs_read(bad, "/var/lib/dpkg/status")
    status += "\nPackage: chrony\nStatus: install ok installed\nVersion: 4.6.1-3\n"
    _debugfs_write(bad, "/var/lib/dpkg/status", status.encode(), tmp_path)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL no-other-time-daemon: installed: chrony" in report, report


def test_no_clock_seed_fails(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    _debugfs_write(bad, "/etc/fake-hwclock.data", b"", tmp_path)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL clock-seed: no /etc/fake-hwclock.data" in report, report


def test_unsafe_dpkg_left_fails(good_image: Path, tmp_path: Path) -> None:
    bad = _copy(good_image, tmp_path)
    conf = _debugfs_read(bad, "/etc/dpkg/dpkg.cfg.d/99mmdebstrap")
    _debugfs_write(bad, "/etc/dpkg/dpkg.cfg.d/99mmdebstrap", (conf + "force-unsafe-io\n").encode(), tmp_path)
    rc, report = _check(bad)
    assert rc == 1
    assert "FAIL dpkg-safe-io: force-unsafe-io left in /etc/dpkg/dpkg.cfg.d/99mmdebstrap" in report, report
