"""The built SD-card image boots under QEMU into serving NTP (image/boot-test), and passes the static checks.

The long part (building the image: about 10 minutes of package configuration under emulation on a 2-core
machine, then a 1-2 minute boot) runs only when asked: ``STRATUM1_IMAGE_TESTS=1`` builds the image with
image/build, or ``STRATUM1_IMAGE=path.img.xz`` uses one already built. CI asks (.ci/image, run by .ci/run,
with ``-s`` so the figures the build and the boot print are in its log). The limits are generous (the boot
test waits up to 480 s for each milestone): the figures are printed, not asserted. Needs root, mmdebstrap,
qemu-user-static with binfmt, qemu-system-aarch64, mtools, e2fsprogs (image/install-build-deps).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT, require

IMAGE = ROOT / "image"
WANTED = os.environ.get("STRATUM1_IMAGE_TESTS", "") == "1" or bool(os.environ.get("STRATUM1_IMAGE"))
pytestmark = pytest.mark.skipif(not WANTED, reason="set STRATUM1_IMAGE_TESTS=1 (or STRATUM1_IMAGE) to build and boot")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("STRATUM1_IMAGE")
    if given:
        return Path(given)
    require(os.geteuid() == 0, "building the image needs root")
    require(shutil.which("mmdebstrap") is not None, "mmdebstrap missing (image/install-build-deps)")
    out = tmp_path_factory.mktemp("image")
    # stderr (the build's time-stamped progress) goes straight to the terminal: minutes of it under CI.
    r = subprocess.run([str(IMAGE / "build"), "--out", str(out)], stdout=subprocess.PIPE, text=True, timeout=3600)
    print(r.stdout)
    assert r.returncode == 0, f"image/build failed (its log: {out}/*.build.log):\n{r.stdout}"
    assert re.search(r"^build time: \d+ s", r.stdout, re.M), r.stdout
    (img,) = out.glob("*.img.xz")
    return img


def test_image_outputs(image: Path) -> None:
    sha = image.with_name(image.name + ".sha256")
    manifest = image.with_name(image.name.removesuffix(".img.xz") + ".manifest")
    assert sha.is_file() and manifest.is_file()
    digest = subprocess.run(["sha256sum", str(image)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert sha.read_text().split()[0] == digest
    packages = {line.split("\t")[0] for line in manifest.read_text().splitlines()}
    assert {"stratum1", "linux-image-arm64", "raspi-firmware", "openssh-server", "fake-hwclock"} <= packages
    assert not packages & {"systemd-timesyncd", "chrony", "ntpsec", "ntp"}


def test_static_checks_pass(image: Path) -> None:
    r = subprocess.run([str(IMAGE / "check-image"), str(image)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout


def test_boots_into_serving(image: Path) -> None:
    require(shutil.which("qemu-system-aarch64") is not None, "qemu-system-aarch64 missing (image/install-build-deps)")
    r = subprocess.run([str(IMAGE / "boot-test"), str(image)], capture_output=True, text=True, timeout=1500)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]
    first = re.search(r"^power-on to first NTP answer: ([\d.]+) s \(stratum (\d+)", r.stdout, re.M)
    s1 = re.search(r"^power-on to stratum 1: ([\d.]+) s \(refid (\w+)", r.stdout, re.M)
    assert first and s1, r.stdout
    assert int(first[2]) == 16  # "unsynchronised": the local clock waits for the GPS's first sync (start wait)
    assert s1[2] in ("GPS", "PPS")
    assert float(first[1]) <= float(s1[1])
