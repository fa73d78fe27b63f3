"""The appliance's Debian package (debian/): built from this tree in a clean trixie chroot, installed into
another clean trixie root, checked there (check-config, systemd-analyze verify, the user, the conffile),
and lintian finds no errors.

Needs root, mmdebstrap, lintian and the network (the Debian archive; downloads are cached in
image/out/cache). Mandatory when CI=true (tests/support.py ``require``): .ci/run installs the tools
through image/install-build-deps. ``STRATUM1_DEB=path.deb`` checks an already built package instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT, require

IMAGE = ROOT / "image"


def _tools_present() -> None:
    require(os.geteuid() == 0, "the .deb tests need root (mmdebstrap chroots)")
    for tool in ("mmdebstrap", "lintian", "dpkg-deb"):
        require(shutil.which(tool) is not None, f"{tool} missing (image/install-build-deps installs it)")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package for this machine's architecture, built from the working tree (or ``STRATUM1_DEB``)."""
    _tools_present()
    given = os.environ.get("STRATUM1_DEB")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([str(IMAGE / "build-deb"), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, f"image/build-deb failed:\n{r.stdout}\n{r.stderr}"
    debs = sorted(out.glob("stratum1_*.deb"))
    assert len(debs) == 1, f"expected one stratum1_*.deb in {out}: {sorted(p.name for p in out.iterdir())}"
    return debs[0]


def test_package_contents(deb: Path) -> None:
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = {line.split()[-1].removeprefix(".") for line in files.splitlines()}
    for unit in sorted((ROOT / "systemd").glob("*.service")):
        assert f"/usr/lib/systemd/system/{unit.name}" in paths
    for rules in sorted((ROOT / "hw" / "udev").glob("*.rules")):
        assert f"/usr/lib/udev/rules.d/{rules.name}" in paths
    # stratum1.service has DevicePolicy=closed: without its generator's DeviceAllow= drop-in the daemon
    # can open no GPS port (the image's boot test found it missing once).
    assert "/usr/lib/systemd/system-generators/stratum1-devices" in paths
    assert "/etc/stratum1/ntp.conf" in paths
    assert "/etc/update-motd.d/60-stratum1" in paths  # the login message (issue 10)
    assert "/usr/bin/stratum1" in paths
    assert any("_fastpath" in p and p.endswith(".so") for p in paths), "the compiled data plane is missing"
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
    for dep in ("python3-serial", "python3-nmea2", "python3-smbus2", "adduser"):
        assert dep in fields


def test_installs_into_clean_trixie_root(deb: Path) -> None:
    r = subprocess.run([str(IMAGE / "check-deb"), str(deb)], capture_output=True, text=True)
    report = r.stdout + r.stderr
    assert r.returncode == 0, report
    for check in (
        "check-config",
        "verify:stratum1.service",
        "user",
        "enabled",
        "not-running",
        "conffile",
        "readers-disabled",
        "hw-groups",
    ):
        assert f"ok {check}\n" in r.stdout, report


def test_lintian_no_errors(deb: Path) -> None:
    r = subprocess.run(["lintian", "--fail-on", "error", str(deb)], capture_output=True, text=True)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors and r.returncode == 0, r.stdout + r.stderr
