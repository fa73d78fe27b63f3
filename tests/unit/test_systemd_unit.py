"""systemd/stratum1.service: its exposure score, its device drop-in, and the daemon run the way the unit runs it.

systemd is not PID 1 on the machines that run these tests, so the unit cannot
be started. Instead:

- ``systemd-analyze security --offline=true`` scores the file (and the file
  with the drop-in a GPS config gets); the score is printed in the run's
  summary ("stratum1 figures") and must stay at or under 2.5 (Debian's
  chrony.service: 3.7);
- ``stratum1 unit-devices`` and ``systemd/stratum1-devices.generator`` are
  run against configs;
- the daemon is started with what the unit file says, read from it: its
  ``ExecStart=``, its user (a throwaway one here) with the groups the
  drop-in adds, its ambient and bounding capabilities and no_new_privs
  (``setpriv``), its ``UMask=``, ``MemoryDenyWriteExecute=`` (``PR_SET_MDWE``)
  and ``SystemCallFilter=`` (a seccomp filter with the same system calls:
  tests/unitexec.py), in a private network namespace so it binds port 123.
  Its kernel clock's writes stop at tests/noclock.c, after the kernel checked
  CAP_SYS_TIME.

The image's boot test, where a real systemd starts the unit, covers what is
left (the device cgroup, the mount namespace, ProtectProc).
"""

from __future__ import annotations

import errno
import grp
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import nsutil
import pytest
from accounts import need_root, open_dir, runnable_by, throwaway_user
from noclock import noclock_env
from support import ROOT, require

from appliance.config import parse_config
from appliance.io import privilege
from appliance.io.unitdevices import device_needs, drivers_for, render_dropin

UNIT = ROOT / "systemd" / "stratum1.service"
GENERATOR = ROOT / "systemd" / "stratum1-devices.generator"
TARGET = 2.5


def read_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections: name -> [(key, value)] in order (keys repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit file line: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def last(section: list[tuple[str, str]], key: str) -> str | None:
    found = values(section, key)
    return found[-1] if found else None


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    require(tool is not None, "systemd-analyze is missing (Debian: apt-get install systemd)")
    assert tool is not None
    return tool


def exposure(unit: Path) -> float:
    """``systemd-analyze security --offline=true``'s overall exposure level for ``unit``."""
    out = subprocess.run([_analyze(), "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, f"no exposure level in systemd-analyze's output:\n{out.stdout}\n{out.stderr}"
    return float(m.group(1))


def test_unit_is_exposed_less_than_chrony(tmp_path: Path, figure: Callable[[str], None]) -> None:
    score = exposure(UNIT)
    figure(f"systemd-analyze security --offline=true systemd/stratum1.service: {score} (target <= {TARGET})")
    # with the drop-in a GPS config gets (DeviceAllow=, SupplementaryGroups=) merged in
    gps = parse_config("refclock nmea unit 0 path /dev/serial0 baud 9600 ppspath /dev/pps0 refid GPS\n", "gps.conf")
    dropin = render_dropin(device_needs(gps), "gps.conf", resolve=lambda p: p, group_exists=lambda g: True)
    merged = tmp_path / "stratum1.service"
    extra = "\n".join(line for line in dropin.splitlines() if line and line[0] not in "#[")
    merged.write_text(UNIT.read_text().replace("[Install]", f"{extra}\n\n[Install]"))
    merged_score = exposure(merged)
    figure(f"  with a GPS config's device drop-in: {merged_score}")
    assert score <= TARGET, f"systemd/stratum1.service exposure {score} > {TARGET}"
    assert merged_score <= TARGET, f"with the device drop-in: exposure {merged_score} > {TARGET}"


def test_unit_sandboxing_settings() -> None:
    service = read_unit(UNIT.read_text())["Service"]
    for key, value in [
        ("Type", "notify"),
        ("User", "stratum1"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("DevicePolicy", "closed"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("RestrictRealtime", "yes"),
        ("SystemCallErrorNumber", "EPERM"),
    ]:
        assert last(service, key) == value, key
    assert set(str(last(service, "CapabilityBoundingSet")).split()) == {"CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"}
    assert int(str(last(service, "WatchdogSec"))) > 0
    assert "-u stratum1" in str(last(service, "ExecStart"))


@cache
def syscalls(name: str) -> frozenset[str]:
    """The system calls a ``SystemCallFilter=`` name stands for (a group expanded by systemd-analyze)."""
    if not name.startswith("@"):
        return frozenset({name})
    out = subprocess.run([_analyze(), "syscall-filter", name], capture_output=True, text=True, check=True)
    found: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            found |= syscalls(item)
    return frozenset(found)


def allowed_syscalls(service: list[tuple[str, str]]) -> set[str]:
    """What the unit's ``SystemCallFilter=`` lines allow (an allow list, then ``~`` lines taking calls out)."""
    lines = values(service, "SystemCallFilter")
    assert lines and not lines[0].startswith("~"), "the unit's filter should start with an allow list"
    allowed = set(syscalls("@default"))  # systemd adds @default to every allow list
    for line in lines:
        names = set().union(*(syscalls(n) for n in line.lstrip("~").split()))
        allowed = allowed - names if line.startswith("~") else allowed | names
    return allowed


def test_filter_lets_the_clock_pps_and_batch_receive_calls_through() -> None:
    allowed = allowed_syscalls(read_unit(UNIT.read_text())["Service"])
    # adjtimex/clock_adjtime: the kernel clock; ioctl: PPS_FETCH and friends; recvmmsg: the data plane;
    # capset/prctl: the daemon trims its capabilities; the rest: Python's event loop and sd_notify
    for call in ("adjtimex", "clock_adjtime", "ioctl", "recvmmsg", "sendto", "capset", "prctl", "epoll_wait"):
        assert call in allowed, call
    for call in ("chown", "setuid", "mount", "reboot", "init_module", "setrlimit", "ptrace"):
        assert call not in allowed, call


# -- the device drop-in ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "allow", "groups"),
    [
        (
            "refclock nmea unit 0 path /dev/serial0 baud 9600 ppspath /dev/pps0 refid GPS\n",
            ["char-ttyAMA", "char-ttyS", "char-pps"],
            "dialout",
        ),
        (
            "refclock nmea unit 0 path /dev/ttyACM0 baud 9600 ppspath gpio:4 refid GPS\n",
            ["char-ttyACM", "char-gpiochip"],
            "dialout gpio",
        ),
        (
            "server 127.127.20.0 mode 16\nfudge 127.127.20.0 flag1 1\n",
            ["char-ttyAMA", "char-ttyS", "char-ttyACM", "char-ttyUSB", "char-pps"],
            "dialout",
        ),
        (
            "refclock nmea unit 0 path /dev/serial/by-id/usb-u-blox_GNSS refid GPS\n",
            ["/dev/serial/by-id/usb-u-blox_GNSS"],
            "dialout",
        ),
        ("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n", [], None),
    ],
)
def test_dropin_allows_exactly_the_devices_the_config_names(config: str, allow: list[str], groups: str | None) -> None:
    needs = device_needs(parse_config(config, "ntp.conf"))
    text = render_dropin(needs, "ntp.conf", resolve=lambda p: p, group_exists=lambda g: True)
    service = read_unit(text)["Service"]
    assert values(service, "DeviceAllow") == [f"{a} rw" for a in allow]
    assert last(service, "SupplementaryGroups") == groups


def test_dropin_follows_a_symlink_and_skips_a_missing_group() -> None:
    assert drivers_for("/dev/gps-usb", resolve=lambda p: "/dev/ttyACM3") == ("ttyACM",)
    needs = device_needs(parse_config("refclock nmea unit 0 path /dev/gps0 ppspath gpio:17 refid GPS\n", "n.conf"))
    text = render_dropin(needs, "n.conf", resolve=lambda p: "/dev/ttyAMA0", group_exists=lambda g: g == "dialout")
    service = read_unit(text)["Service"]
    assert values(service, "DeviceAllow") == ["char-ttyAMA rw"]  # /dev/gpiochip0 "resolves" to ttyAMA0 here
    assert last(service, "SupplementaryGroups") == "dialout"
    assert "# no group 'gpio' here: create it (groupadd --system gpio)" in text


def test_generator_writes_the_dropin_and_nothing_for_a_bad_config(tmp_path: Path) -> None:
    wrapper = tmp_path / "stratum1"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m appliance.cli "$@"\n')
    wrapper.chmod(0o755)
    conf = tmp_path / "ntp.conf"
    conf.write_text("refclock nmea unit 0 path /dev/ttyUSB0 baud 4800 refid GPS\n")
    env = {**os.environ, "STRATUM1_CONFIG": str(conf), "STRATUM1_COMMAND": str(wrapper), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "normal"
    subprocess.run([str(GENERATOR), str(out), str(tmp_path / "early"), str(tmp_path / "late")], env=env, check=True)
    dropin = out / "stratum1.service.d" / "50-devices.conf"
    assert values(read_unit(dropin.read_text())["Service"], "DeviceAllow") == ["char-ttyUSB rw"]
    conf.write_text("refclock nmea unit 0 path /dev/ttyUSB0 baud 4800 refid GPS\nnosuchdirective\n")
    dropin.unlink()
    subprocess.run([str(GENERATOR), str(out)], env=env, check=True)
    assert not dropin.exists() and not list(dropin.parent.glob("*.tmp"))


def test_unit_devices_command(tmp_path: Path) -> None:
    conf = tmp_path / "ntp.conf"
    conf.write_text("refclock nmea unit 0 path /dev/ttyS0 refid GPS\n")
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "unit-devices", "-c", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "DeviceAllow=char-ttyS rw" in out.stdout.splitlines()


# -- the daemon as the unit runs it ---------------------------------------------------


def _caps(value: str | None) -> str:
    """``CAP_A CAP_B`` -> setpriv's ``-all,+a,+b``."""
    names = [c.removeprefix("CAP_").lower() for c in (value or "").split()]
    return ",".join(["-all", *(f"+{n}" for n in names)])


def test_daemon_serves_under_the_units_user_capabilities_groups_and_filter(figure: Callable[[str], None]) -> None:
    need_root()
    require(nsutil.available(), "network namespaces need root and iproute2")
    service = read_unit(UNIT.read_text())["Service"]
    assert last(service, "User") not in (None, "root")
    with throwaway_user(("dialout",)) as user, open_dir() as work:
        python, env = runnable_by(user, work)
        calls = work / "adjtimex.log"
        env.update(noclock_env(work, calls))
        calls.chmod(0o666)  # the library opens it in every process it loads into, the daemon's too
        shutil.copy(ROOT / "tests" / "unitexec.py", work / "unitexec.py")

        # the receiver: a pty as hw/udev leaves a serial port (root:dialout 0660)
        dialout = grp.getgrnam("dialout").gr_gid
        master, slave = os.openpty()
        port = os.ttyname(slave)
        os.close(slave)
        os.chown(port, 0, dialout)
        os.chmod(port, 0o660)
        conf = work / "ntp.conf"
        conf.write_text(f"refclock nmea unit 0 path {port} baud 9600 refid GPS\nrestrict default kod nomodify notrap\n")
        dropin = read_unit(render_dropin(device_needs(parse_config(conf.read_text(), str(conf))), str(conf)))
        supplementary = (last(dropin["Service"], "SupplementaryGroups") or "").split()
        account = privilege.resolve_account(user)
        groups = [*account.groups, *(grp.getgrnam(g).gr_gid for g in supplementary)]

        argv = shlex.split(str(last(service, "ExecStart")))
        assert argv[0] == "/usr/bin/stratum1"
        argv = [python, "-m", "appliance.cli", *argv[1:]]
        argv[argv.index("--config") + 1] = str(conf)
        argv[argv.index("-u") + 1] = user
        allow = sorted(allowed_syscalls(service))
        err = getattr(errno, str(last(service, "SystemCallErrorNumber")))
        spec = work / "spec.json"
        mdwe = last(service, "MemoryDenyWriteExecute") == "yes"
        spec.write_text(json.dumps({"umask": last(service, "UMask"), "mdwe": mdwe, "allow": allow, "errno": err}))
        ambient = _caps(last(service, "AmbientCapabilities"))
        setpriv = [
            "setpriv",
            f"--reuid={account.uid}",
            f"--regid={account.gid}",
            f"--groups={','.join(str(g) for g in dict.fromkeys(groups))}",
            f"--inh-caps={ambient}",
            f"--ambient-caps={ambient}",
            f"--bounding-set={_caps(last(service, 'CapabilityBoundingSet'))}",
            *(["--no-new-privs"] if last(service, "NoNewPrivileges") == "yes" else []),
            "--",
        ]
        ns = nsutil.NetNs("unit")
        log = work / "daemon.log"
        proc = None
        try:
            with log.open("wb") as f:
                cmd = ns.cmd(*setpriv, python, str(work / "unitexec.py"), str(spec), "--", *argv)
                proc = subprocess.Popen(cmd, stderr=f, env=env)
            _wait_for(proc, log, r"serving NTP on 0\.0\.0\.0:123")
            ps = subprocess.run(["ps", "-ww", "-o", "user:40=", "-p", str(proc.pid)], capture_output=True, text=True)
            assert ps.stdout.strip() == user
            c = privilege.read_credentials(proc.pid)
            assert c.uids == (account.uid,) * 4 and dialout in c.groups
            assert c.cap_eff == c.cap_prm == 0x2000000  # CAP_NET_BIND_SERVICE gone once bound
            assert (c.cap_inh, c.cap_amb, c.no_new_privs) == (0, 0, True)
            assert c.cap_bnd == privilege.capability_mask([privilege.CAP_NET_BIND_SERVICE, privilege.CAP_SYS_TIME])
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(r"^Umask:\s+0077$", status, re.M)
            assert re.search(r"^Seccomp:\s+2$", status, re.M)  # the filter is on
            _wait_for(proc, log, rf"running as user {user} .*capabilities: cap_sys_time;")
            _wait_for(proc, log, rf"GPS {port} open at 9600 baud")
            q = subprocess.run(
                ns.cmd(sys.executable, "-m", "appliance.cli", "query", "127.0.0.1", "-n", "1"),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert q.stdout.startswith("server 127.0.0.1, stratum "), q.stderr + log.read_text()
            deadline = time.monotonic() + 10
            while not re.search(rf"^uid={account.uid} modes=\S+ rc=[0-9]+ ", calls.read_text(), re.M):
                assert time.monotonic() < deadline, calls.read_text()
                time.sleep(0.2)
            assert "rc=-1" not in calls.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0, log.read_text()
            figure(f"unit run through setpriv + seccomp ({len(allow)} system calls allowed) + MDWE: serves on port 123")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            ns.delete()
            os.close(master)


def _wait_for(proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, log.read_text()):
        assert proc.poll() is None, f"the daemon ended ({proc.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{log.read_text()}"
        time.sleep(0.1)
