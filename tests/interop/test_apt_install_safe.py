"""``.ci/apt-install-safe`` asks the host's apt for real: an install that would remove a package is refused.

The cheap scans of the set-up scripts are ``tests/unit/test_host_safe_scripts.py``; this one runs
``apt-get -s`` (a dry run: nothing is installed or removed), which resolves the whole dependency graph
and takes seconds, so it lives with the tests that run real programs.
"""

from __future__ import annotations

import subprocess

import pytest
from support import ROOT

pytestmark = pytest.mark.interop


def test_apt_install_safe_refuses_an_install_that_would_remove_a_package() -> None:
    """sysvinit-core replaces systemd-sysv: apt-get -s prints Remv lines, and the script says no."""
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "systemd-sysv"], capture_output=True, text=True, check=False
    )
    if "install ok installed" not in installed.stdout:
        pytest.skip("systemd-sysv is not installed here: nothing for sysvinit-core to remove")
    if subprocess.run(["apt-cache", "show", "sysvinit-core"], capture_output=True, check=False).returncode != 0:
        pytest.skip("apt's package lists are empty here (no apt-get update yet)")
    r = subprocess.run(
        ["bash", str(ROOT / ".ci/apt-install-safe"), "--dry-run", "sysvinit-core"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r
    assert "would remove packages" in r.stderr
    assert "Remv systemd-sysv" in r.stderr
