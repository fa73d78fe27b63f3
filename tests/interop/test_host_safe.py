"""The set-up is host-safe: `.ci/install-interop` next to a running chrony leaves it installed and running.

Issue 8 ("what it must show"): on a machine where chrony is installed and
running, ``sudo ./run-tests`` must leave it installed and running. Here a
chronyd from the private root, started by the test inside a network namespace
it creates (``-x``: it never touches the clock; its own config, pidfile, no
command port or socket), stands in for the host's chrony, and two processes
named ``ntpd`` and ``gpsd`` stand in for the host's other time daemons (the old
set-up ran ``pkill -x ntpd``). Then ``.ci/install-interop`` runs for real, into
a fresh private root. Afterwards the stand-ins still run under the same PIDs
and the chronyd still answers; the package database (``/var/lib/dpkg/status``),
the enabled units and ``policy-rc.d`` are as they were; and every time or GPS
daemon that ran on the host before still runs. The stand-ins are ended by PID.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest
from harness import INTEROP_ROOT
from support import ROOT

pytestmark = [pytest.mark.interop, pytest.mark.netns]

SCRIPT = ROOT / ".ci" / "install-interop"
DPKG_STATUS = Path("/var/lib/dpkg/status")
DAEMON_NAMES = {"chronyd", "ntpd", "ntpsec", "gpsd", "systemd-timesyn", "openntpd", "ptp4l", "phc2sys"}
# A host's daemon has been running a while; a chronyd some other test started (chronyd -Q: 20 s at most) has not.
SETTLED_S = 120
TOOLS = ("chronyd", "chronyc", "ntpq", "ntpdig", "ntpdate", "ntpstat", "gpsd", "gpspipe", "ntpshmmon", "gpsfake")


def processes() -> dict[int, tuple[str, int]]:
    """Every live process: PID -> (comm, start time in clock ticks since boot), so a reused PID is a new process.

    A zombie (ended, not yet reaped by its parent: our own stand-ins until we wait for them) is not live.
    """
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            found[int(d.name)] = (comm, int(fields[19]))
    return found


def age_s(start_ticks: int) -> float:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def enabled_units() -> set[str]:
    """The symlinks that enable services at boot: disabling a service deletes its links."""
    links = set()
    for top in (Path("/etc/systemd/system"), *Path("/etc").glob("rc?.d")):
        if top.is_dir():
            links |= {f"{p}->{os.readlink(p)}" for p in top.rglob("*") if p.is_symlink()}
    return links


def dpkg_status() -> str:
    return hashlib.sha256(DPKG_STATUS.read_bytes()).hexdigest()


def ntp_stratum(ns: nsutil.NetNs, port: int = 123) -> int:
    """One NTP client request to 127.0.0.1:port inside ``ns``; the stratum of the reply."""

    def ask() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(b"\x23" + bytes(39) + struct.pack("!Q", 0x1234_5678_9ABC_DEF0), ("127.0.0.1", port))
            reply, _ = s.recvfrom(512)
        assert len(reply) >= 48 and reply[24:32] == struct.pack("!Q", 0x1234_5678_9ABC_DEF0), reply
        return reply[1]

    return ns.call(ask)


@pytest.fixture
def stand_ins(
    netns: Callable[[str], nsutil.NetNs], chronyd: Path, tmp_path: Path
) -> Iterator[tuple[nsutil.NetNs, dict[str, int]]]:
    """A serving chronyd and processes named ntpd and gpsd in a namespace of their own; ended by PID afterwards."""
    ns = netns("hostsafe")
    work = tmp_path / "host"
    work.mkdir()
    conf = work / "chrony.conf"
    conf.write_text(
        "# stand-in for the host's chrony: serves on the namespace's port 123, never sets the clock (-x)\n"
        "local stratum 10\nallow 127.0.0.1\nbindaddress 127.0.0.1\n"
        f"cmdport 0\nbindcmdaddress /\npidfile {work}/chronyd.pid\n"
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    log = (work / "chronyd.log").open("wb")
    try:
        procs["chronyd"] = subprocess.Popen(
            ns.cmd(str(chronyd), "-x", "-d", "-u", "root", "-f", str(conf)), stdout=log, stderr=subprocess.STDOUT
        )
        sleep = shutil.which("sleep")
        assert sleep is not None
        for name in ("ntpd", "gpsd"):
            stand_in = work / name  # a copy of sleep: its process name is ntpd / gpsd
            shutil.copy(sleep, stand_in)
            procs[name] = subprocess.Popen(ns.cmd(str(stand_in), "3600"))
        deadline = time.monotonic() + 20
        while True:
            try:
                assert ntp_stratum(ns) == 10
                break
            except (OSError, AssertionError):
                assert procs["chronyd"].poll() is None, (work / "chronyd.log").read_text()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        pids = {name: p.pid for name, p in procs.items()}
        # `ip netns exec` and the wrapper exec the program: the PID we hold is the daemon's own
        assert int((work / "chronyd.pid").read_text()) == pids["chronyd"]
        assert {name: processes()[pid][0] for name, pid in pids.items()} == {n: n for n in pids}
        yield ns, pids
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        log.close()


def test_install_interop_leaves_a_running_chrony_and_the_package_database_alone(
    stand_ins: tuple[nsutil.NetNs, dict[str, int]], tmp_path: Path
) -> None:
    ns, pids = stand_ins
    # A fresh private root, so the whole unpacking runs; the .debs already fetched are reused (no download).
    root = tmp_path / "interop"
    (root / "debs").mkdir(parents=True)
    for deb in (INTEROP_ROOT / "debs").glob("*.deb"):
        shutil.copy(deb, root / "debs")
    before = processes()
    daemons_before = {pid: p for pid, p in before.items() if p[0] in DAEMON_NAMES and age_s(p[1]) > SETTLED_S}
    status_before, units_before = dpkg_status(), enabled_units()
    policy_before = Path("/usr/sbin/policy-rc.d").exists()

    r = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "STRATUM1_INTEROP_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr

    after = processes()
    for name, pid in pids.items():
        assert after.get(pid) == before[pid], f"the stand-in {name} (PID {pid}) did not survive"
    assert ntp_stratum(ns) == 10  # and the chronyd still serves
    gone = {pid: p for pid, p in daemons_before.items() if after.get(pid) != p}
    assert gone == {}, f"time or GPS daemons gone: {gone}"
    assert dpkg_status() == status_before, "/var/lib/dpkg/status changed: a package was installed or removed"
    assert enabled_units() == units_before
    assert Path("/usr/sbin/policy-rc.d").exists() == policy_before
    # and what it built is complete: every referee program answers from the private root
    for tool in TOOLS:
        assert os.access(root / "bin" / tool, os.X_OK), tool
    assert f"in {root}" in r.stdout
    version = subprocess.run([str(root / "bin/chronyd"), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("chronyd (chrony) version"), version
