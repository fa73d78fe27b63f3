"""image/*'s work directories are removed without reaching through what a killed mmdebstrap left mounted.

An interrupted build leaves its chroot's /proc, /sys, /dev/pts and /dev/shm mounted under /tmp/stratum1-image.*;
a plain ``rm -rf`` of it descends into them, and through a bind mount into the host's own files. Run in a
private mount namespace (``unshare --mount``), so nothing the test mounts is seen outside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare (a private mount namespace)"
)


def run_in_private_mounts(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("remove", ["remove_work", "rm -rf"])
def test_a_work_directory_with_mounts_left_inside_goes_and_nothing_else(tmp_path: Path, remove: str) -> None:
    host = tmp_path / "host"  # stands for the host's files a chroot bind-mounts
    host.mkdir()
    (host / "precious").write_text("the host's\n")
    work = tmp_path / "stratum1-image.x"
    script = f"""
        . '{ROOT}/image/lib/common.sh'
        mkdir -p '{work}/root/dev/shm' '{work}/root/host' '{work}/root/proc'
        mount -t tmpfs none '{work}/root/dev/shm' && echo x >'{work}/root/dev/shm/file'
        mount --bind '{host}' '{work}/root/host'
        mount -t proc proc '{work}/root/proc'
        {remove} '{work}' 2>/dev/null || true
        awk -v d='{work}/' 'index($2, d) == 1' /proc/self/mounts
    """
    r = run_in_private_mounts(script)
    assert r.returncode == 0, r.stderr
    if remove == "rm -rf":  # the fault remove_work mends: through the bind mount, the host's file went too
        assert not (host / "precious").exists()
        return
    assert r.stdout == ""  # every mount under it was unmounted
    assert not work.exists()
    assert (host / "precious").read_text() == "the host's\n"
