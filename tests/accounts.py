"""Throwaway system users, and a Python they can run, for the tests that drop privileges (root only).

A user made here is deleted by the same context manager, with the group
``useradd --user-group`` made for it; nothing else on the machine is touched.
"""

from __future__ import annotations

import grp
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import require

_counter = itertools.count()


def need_root() -> None:
    """Skip (fail under CI) unless root, with useradd and setpriv at hand."""
    require(os.geteuid() == 0, "dropping privileges needs root")
    for tool in ("useradd", "userdel", "setpriv"):
        require(shutil.which(tool) is not None, f"{tool} is missing")


@contextmanager
def throwaway_user(groups: tuple[str, ...] = ("dialout",)) -> Iterator[str]:
    """A new system user (its own group, and ``groups`` that exist here), deleted on exit."""
    name = f"s1t{os.getpid()}x{next(_counter)}"
    present = [g for g in groups if _group_exists(g)]
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"]
    if present:
        cmd += ["--groups", ",".join(present)]
    subprocess.run([*cmd, name], check=True, capture_output=True, text=True)
    try:
        yield name
    finally:
        gone = subprocess.run(["userdel", name], capture_output=True, text=True)
        assert gone.returncode == 0, f"userdel {name}: {gone.stderr.strip()}"


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def open_dir() -> Iterator[Path]:
    """A temporary directory every user may enter (pytest's tmp_path sits under a root-only 0700 one)."""
    bases = [b for b in (tempfile.gettempdir(), "/var/tmp") if os.path.isdir(b)]
    # the first that lets a library be mapped executable (tests/noclock.c is preloaded from here)
    base = next((b for b in bases if not os.statvfs(b).f_flag & os.ST_NOEXEC), bases[0])
    path = Path(tempfile.mkdtemp(prefix="stratum1-priv-", dir=base))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def runnable_by(user: str, workdir: Path) -> tuple[str, dict[str, str]]:
    """A Python of this version that ``user`` can run, and the environment that imports ``appliance`` for it.

    The test's interpreter and the checkout may sit under a directory only root
    may enter (a pyenv under /root, a clone in /root): the packages the daemon
    imports are copied into ``workdir`` (open to all), and the interpreter is
    this one's real file or the system's of the same version. Skips (fails in
    CI) when there is none.
    """
    import pynmea2  # type: ignore[import-untyped,unused-ignore]
    import serial  # type: ignore[import-untyped,unused-ignore]

    import appliance

    site = workdir / "site"
    site.mkdir()
    for module in (appliance, pynmea2, serial):  # the copies imported here (tox's or the checkout's)
        package = Path(str(module.__file__)).parent
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in site.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    site.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for python in dict.fromkeys(candidates):
        if not os.path.exists(python):
            continue
        # through a shell: setpriv itself may still hold root's capabilities when it calls execve
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", "/bin/sh", "-c"]
        probe = subprocess.run(
            [*as_user, 'exec "$0" -c "import appliance.cli"', python],
            env=env,
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return python, env
    require(False, f"no {version} that user {user} may run (tried {', '.join(candidates)})")
    raise AssertionError("unreachable")
