"""appliance/io/privilege.py: the status maths, the account look-up, and the switch itself in a child process (root).

The switch is tested in a subprocess that only drops privileges and reports
``/proc/self/status``, a privilege probe and two device opens: a pty owned by
root:dialout 0660 (a serial port as hw/udev leaves it) must open after the
switch, one owned by root:root 0600 must not. The probe is ``adjtimex`` with
``ADJ_TAI`` and a negative offset: the kernel checks CAP_SYS_TIME first
(EPERM without it) and then ignores a negative TAI offset, so nothing on the
host changes.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import need_root, throwaway_user

import appliance
from appliance.clock.kernel import KernelClock
from appliance.clock.soft import SoftClock
from appliance.io import privilege
from appliance.io.systemd import watchdog_interval_s

STATUS = """Name:\tstratum1
Umask:\t0077
Uid:\t999\t999\t999\t999
Gid:\t995\t995\t995\t995
Groups:\t20 995
CapInh:\t0000000000000000
CapPrm:\t0000000002000000
CapEff:\t0000000002000000
CapBnd:\t0000000002000400
CapAmb:\t0000000000000000
NoNewPrivs:\t1
"""


def test_parse_status_reads_ids_capabilities_and_no_new_privs() -> None:
    c = privilege.parse_status(STATUS)
    assert c.uids == (999,) * 4 and c.gids == (995,) * 4 and c.groups == (20, 995)
    assert c.cap_eff == c.cap_prm == 1 << privilege.CAP_SYS_TIME == 0x2000000
    assert c.cap_bnd == privilege.capability_mask([privilege.CAP_SYS_TIME, privilege.CAP_NET_BIND_SERVICE])
    assert (c.cap_inh, c.cap_amb, c.no_new_privs) == (0, 0, True)


def test_parse_status_names_a_missing_line() -> None:
    with pytest.raises(ValueError, match="CapAmb"):
        privilege.parse_status(STATUS.replace("CapAmb", "Cap_Amb"))


def test_capability_names() -> None:
    assert privilege.capability_names(0) == "none"
    assert privilege.capability_names(0x2000400) == "cap_net_bind_service,cap_sys_time"
    assert privilege.capability_names(1 << 40) == "cap_40"
    with pytest.raises(ValueError):
        privilege.capability_mask([64])


def test_only_the_kernel_clock_keeps_cap_sys_time() -> None:
    assert privilege.capabilities_for(KernelClock(adjtimex=lambda tx: 0)) == {privilege.CAP_SYS_TIME}
    assert privilege.capabilities_for(SoftClock(lambda: 0)) == frozenset()
    assert privilege.capabilities_for(None) == frozenset()


def test_unknown_user_is_one_line() -> None:
    with pytest.raises(privilege.PrivilegeError) as e:
        privilege.resolve_account("no-such-user-stratum1")
    assert str(e.value).startswith("-u no-such-user-stratum1: no such user") and "\n" not in str(e.value)


def test_account_lists_primary_and_supplementary_groups() -> None:
    root = privilege.resolve_account("root")
    assert (root.uid, root.gid, root.groups[0], root.group_names[0]) == (0, 0, 0, "root")


def test_switch_needs_root_or_the_user_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    account = privilege.Account("stratum1", 999, 995, (995,), ("stratum1",))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    with pytest.raises(privilege.PrivilegeError, match=r"^-u stratum1: cannot switch user: not root \(running as"):
        privilege.check_switch(account)
    monkeypatch.setattr(os, "geteuid", lambda: 999)
    monkeypatch.setattr(os, "getuid", lambda: 999)
    privilege.check_switch(account)  # systemd started it as that user already: trimming is allowed


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # pings meant for another process
        ({"WATCHDOG_USEC": "junk"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(environ) == expected


# -- the switch, in a child process (root) ------------------------------------

_DROP = r"""
import ctypes, json, sys
import serial  # everything imported before the switch: the interpreter's own files may be root's only
from appliance.clock.kernel import ADJ_TAI, Timex
from appliance.io import privilege
from appliance.io.serial import open_serial

user, keep, *paths = sys.argv[1:]
account = privilege.resolve_account(user)
credentials = privilege.drop_privileges(account, [int(c) for c in keep.split(",") if c])
libc = ctypes.CDLL(None, use_errno=True)
probe = Timex()
probe.modes = ADJ_TAI
probe.constant = -1  # the kernel checks CAP_SYS_TIME, then ignores a negative TAI offset: nothing changes
rc = libc.adjtimex(ctypes.byref(probe))
opened = {}
for path in paths:
    try:
        open_serial(path, 9600).close()
        opened[path] = 0
    except OSError as e:
        opened[path] = e.errno
print(json.dumps({
    "status": open("/proc/self/status").read(),
    "adjtimex_errno": ctypes.get_errno() if rc == -1 else 0,
    "opened": opened,
    "log": privilege.describe(account, credentials),
}))
"""


def _pty(owner_gid: int, mode: int) -> tuple[int, str]:
    """A pty pair: the master's fd (the test keeps it) and the slave's path, given to root:``owner_gid`` ``mode``."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    os.chown(path, 0, owner_gid)
    os.chmod(path, mode)
    return master, path


@pytest.fixture
def user() -> Iterator[str]:
    need_root()
    with throwaway_user(("dialout",)) as name:
        yield name


def _drop(user: str, keep: str, *paths: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(Path(str(appliance.__file__)).parent.parent)}
    out = subprocess.run([sys.executable, "-c", _DROP, user, keep, *paths], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_switch_keeping_cap_sys_time_alone(user: str) -> None:
    dialout = grp.getgrnam("dialout").gr_gid
    serial_port, serial_path = _pty(dialout, 0o660)
    root_port, root_path = _pty(0, 0o600)
    try:
        result = _drop(user, str(privilege.CAP_SYS_TIME), serial_path, root_path)
    finally:
        os.close(serial_port)
        os.close(root_port)
    c = privilege.parse_status(str(result["status"]))
    account = privilege.resolve_account(user)
    assert c.uids == (account.uid,) * 4 and c.gids == (account.gid,) * 4
    assert dialout in c.groups and 0 not in c.groups
    assert c.cap_eff == c.cap_prm == c.cap_bnd == 0x2000000  # cap_sys_time, bit 25, and nothing else
    assert (c.cap_inh, c.cap_amb, c.no_new_privs) == (0, 0, True)
    assert result["adjtimex_errno"] == 0  # ADJ_TAI needs CAP_SYS_TIME and nothing more
    # unplugged and back after the switch: the group opens it, root's own device stays shut
    assert result["opened"] == {serial_path: 0, root_path: errno.EACCES}
    assert str(result["log"]).startswith(f"running as user {user} (uid {account.uid}, groups {user},dialout)")
    assert "capabilities: cap_sys_time; bounding set: cap_sys_time; no_new_privs" in str(result["log"])


def test_switch_keeping_nothing(user: str) -> None:
    result = _drop(user, "")
    c = privilege.parse_status(str(result["status"]))
    assert c.uids[0] != 0 and c.cap_eff == c.cap_prm == c.cap_bnd == c.cap_amb == c.cap_inh == 0
    assert c.no_new_privs
    assert result["adjtimex_errno"] == errno.EPERM  # a soft clock's daemon cannot touch the host clock
