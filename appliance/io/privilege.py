"""Least privilege: once the sockets are bound and the devices open, become USER with only the capabilities still used.

``stratum1 serve -u USER`` (as ``chronyd -u`` and ``ntpd -u``) binds port 123,
opens the serial port, the PPS device and the GPIO line, reads the drift and
leap files and sets the kernel's TAI offset while it is still privileged,
then calls :func:`drop_privileges`:

1. ``prctl(PR_SET_KEEPCAPS, 1)``, so the permitted set survives the change of
   user;
2. every capability not kept leaves the bounding set (``PR_CAPBSET_DROP``,
   needs ``CAP_SETPCAP``: done when started as root);
3. ``setgroups`` (the user's groups as ``/etc/group`` lists them:
   ``dialout`` for the serial port, ``gpio`` for a PPS line), ``setresgid``,
   ``setresuid``: real, effective, saved and file-system ids all become USER's;
4. ``capset``: effective = permitted = the capabilities kept, inheritable
   empty; the ambient set is cleared, so a child gets nothing;
5. ``prctl(PR_SET_NO_NEW_PRIVS, 1)``: no exec can gain a privilege back;
6. ``/proc/self/status`` is read back and every field checked
   (:class:`ProcessCredentials`); a mismatch is a :class:`PrivilegeError`;
7. (the caller, ``stratum1 serve``) :func:`unreadable_module_path`: the modules
   Python has loaded must be readable by USER, since more are imported later.

What is kept (:func:`capabilities_for`): ``CAP_SYS_TIME`` (bit 25) while the
daemon steers the kernel clock (``adjtimex``: frequency, phase, status, leap
and ``ADJ_TAI``, each of which needs that capability alone), nothing when it
serves a soft clock or no clock at all. ``CAP_NET_BIND_SERVICE`` is never
kept: binding a new port below 1024 after the switch fails with ``EACCES``.

Started by systemd (``User=stratum1``, ``AmbientCapabilities=``) the process
already is USER: steps 1-3 are skipped (they need privileges it does not
have), and steps 4-6 trim the capabilities systemd gave to those still used.

The system calls go through ``ctypes.CDLL(None)`` (libc's ``prctl`` and
``capset``), so interposing test harnesses see them. ``capset`` and
``prctl`` act on the calling thread only: :func:`drop_privileges` checks the
other threads' credentials too.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# linux/capability.h
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_NET_BIND_SERVICE = 10
CAP_SYS_TIME = 25
#: Names for the log and for error messages (the ones this daemon meets).
CAP_NAMES = {
    CAP_SETGID: "cap_setgid",
    CAP_SETUID: "cap_setuid",
    CAP_SETPCAP: "cap_setpcap",
    CAP_NET_BIND_SERVICE: "cap_net_bind_service",
    CAP_SYS_TIME: "cap_sys_time",
}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
#: Capability numbers go up to CAP_LAST_CAP (40 on Linux 6.x); the 64-bit masks bound them.
_MAX_CAP = 63

# linux/prctl.h
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


class PrivilegeError(Exception):
    """The switch cannot be made or did not come out as asked; the message says which in one line."""


@dataclass(frozen=True, slots=True)
class Account:
    """The user to become: ids, and every group it belongs to (primary first), with names for the log."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    group_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProcessCredentials:
    """What ``/proc/PID/status`` says of a process's identity and privileges (masks: bit N = capability N)."""

    uids: tuple[int, ...]  # real, effective, saved, file system
    gids: tuple[int, ...]
    groups: tuple[int, ...]
    cap_inh: int
    cap_prm: int
    cap_eff: int
    cap_bnd: int
    cap_amb: int
    no_new_privs: bool


def parse_status(text: str) -> ProcessCredentials:
    """Read the identity and privilege lines of a ``/proc/PID/status`` text; ValueError when one is missing."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()

    def get(key: str) -> str:
        if key not in fields:
            raise ValueError(f"no {key!r} line in the process status")
        return fields[key]

    def ids(key: str) -> tuple[int, ...]:
        return tuple(int(x) for x in get(key).split())

    return ProcessCredentials(
        uids=ids("Uid"),
        gids=ids("Gid"),
        groups=ids("Groups"),
        cap_inh=int(get("CapInh"), 16),
        cap_prm=int(get("CapPrm"), 16),
        cap_eff=int(get("CapEff"), 16),
        cap_bnd=int(get("CapBnd"), 16),
        cap_amb=int(get("CapAmb"), 16),
        no_new_privs=get("NoNewPrivs") == "1",
    )


def read_credentials(pid: int | str = "self") -> ProcessCredentials:
    """:func:`parse_status` of ``/proc/PID/status``."""
    return parse_status(Path(f"/proc/{pid}/status").read_text())


def capability_mask(caps: Iterable[int]) -> int:
    """The 64-bit mask with bit N set for each capability N."""
    mask = 0
    for cap in caps:
        if not 0 <= cap <= _MAX_CAP:
            raise ValueError(f"no capability number {cap}")
        mask |= 1 << cap
    return mask


def capability_names(mask: int) -> str:
    """``cap_sys_time`` (names joined by commas), ``none`` for an empty mask."""
    names = [CAP_NAMES.get(cap, f"cap_{cap}") for cap in range(_MAX_CAP + 1) if mask >> cap & 1]
    return ",".join(names) or "none"


def capabilities_for(clock: object) -> frozenset[int]:
    """The capabilities the running daemon still uses with ``clock``: CAP_SYS_TIME for the kernel clock, else none.

    The soft and simulated clocks, and serving the host's clock untouched
    (no clock object), write nothing to the kernel. A kernel clock built
    around a fake ``adjtimex`` (tests) writes nothing either, but is
    treated as the real one.
    """
    from appliance.clock.kernel import KernelClock

    return frozenset({CAP_SYS_TIME}) if isinstance(clock, KernelClock) else frozenset()


def resolve_account(name: str) -> Account:
    """USER's ids and groups (``/etc/passwd``, ``/etc/group`` or NSS); PrivilegeError for an unknown user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PrivilegeError(
            f"-u {name}: no such user (create it: useradd --system --no-create-home --shell /usr/sbin/nologin "
            f"--groups dialout {name})"
        ) from None
    groups = tuple(dict.fromkeys([entry.pw_gid, *os.getgrouplist(name, entry.pw_gid)]))
    return Account(name, entry.pw_uid, entry.pw_gid, groups, tuple(_group_name(g) for g in groups))


def unreadable_module_path(files: Iterable[str]) -> str | None:
    """The first path this process may not read on the way to a module file, or None when it may read them all.

    Checked just after the switch, with ``sys.modules``' files: Python imports lazily (the standard library's
    ``statistics`` when the daemon is built, ``encodings.idna`` when a server name is first resolved), so a
    Python under a directory USER may not enter (a pyenv or a virtual environment in root's 0700 home) would
    fail later, at the first import, with a traceback or an "unknown encoding" in the log. The path named is
    the outermost directory USER may not enter, else the directory it may not list, else the file.
    """
    checked: set[str] = set()
    for file in files:
        folder = os.path.dirname(file)
        if folder not in checked:
            checked.add(folder)
            if not os.access(folder, os.R_OK | os.X_OK):
                for parent in (*reversed(Path(folder).parents), Path(folder)):
                    if not os.access(parent, os.X_OK):
                        return str(parent)
                return folder
        if not os.access(file, os.R_OK):
            return file
    return None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_switch(account: Account) -> None:
    """PrivilegeError unless this process can become ``account``: it is root, or it already is that user."""
    if os.geteuid() == 0 or os.getuid() == os.geteuid() == account.uid:
        return
    me = _user_name(os.geteuid())
    raise PrivilegeError(f"-u {account.name}: cannot switch user: not root (running as {me}); drop -u or start as root")


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _Libc:
    """libc's ``prctl`` and ``capset``, raising OSError with the errno."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = self._libc.prctl
        self._prctl.restype = ctypes.c_int
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._capset = self._libc.capset
        self._capset.restype = ctypes.c_int
        self._capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        rc = int(self._prctl(option, arg2, arg3, 0, 0))
        if rc == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl({option}): {os.strerror(err)}")
        return rc

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = effective >> shift & 0xFFFFFFFF
            data[i].permitted = permitted >> shift & 0xFFFFFFFF
            data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
        if self._capset(ctypes.byref(header), data) == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"capset: {os.strerror(err)}")


def _other_tasks() -> list[ProcessCredentials]:
    """The credentials of this process's other threads (``/proc/self/task/TID/status``)."""
    me = str(threading.get_native_id())
    found = []
    for tid in os.listdir("/proc/self/task"):
        if tid != me:
            try:
                found.append(parse_status(Path(f"/proc/self/task/{tid}/status").read_text()))
            except (OSError, ValueError):
                continue  # the thread ended meanwhile
    return found


def drop_privileges(account: Account, keep: Iterable[int] = ()) -> ProcessCredentials:
    """Become ``account`` keeping exactly the capabilities ``keep``; return the credentials read back.

    See the module docstring for the steps. PrivilegeError (one line) when
    the process cannot switch (not root and not already the user), a kept
    capability is not in the permitted set, or the result read back from
    ``/proc/self/status`` is not what was asked. Other threads (a GPIO
    library's) are checked too: changing the user moves them all (glibc),
    and, lacking ``PR_SET_KEEPCAPS``, they lose every capability; without a
    change of user they would keep theirs, which is an error.
    """
    check_switch(account)
    mask = capability_mask(keep)
    before = read_credentials()
    if mask & ~before.cap_prm:
        missing = capability_names(mask & ~before.cap_prm)
        raise PrivilegeError(f"-u {account.name}: cannot keep {missing}: this process does not hold it")
    libc = _Libc()
    switching = os.geteuid() == 0 and before.uids != (account.uid,) * 4
    try:
        if switching:
            libc.prctl(PR_SET_KEEPCAPS, 1)
        bounding_trimmed = _drop_bounding(libc, mask)
        if switching:
            os.setgroups(list(account.groups))
            os.setresgid(account.gid, account.gid, account.gid)
            os.setresuid(account.uid, account.uid, account.uid)
            libc.prctl(PR_SET_KEEPCAPS, 0)
        libc.capset(mask, mask, 0)
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise PrivilegeError(f"-u {account.name}: cannot drop privileges: {e.strerror or e}") from e
    after = read_credentials()
    problems = []
    if after.uids != (account.uid,) * 4:
        problems.append(f"uids {after.uids}")
    if switching and (after.gids != (account.gid,) * 4 or set(after.groups) != set(account.groups)):
        problems.append(f"gids {after.gids} groups {after.groups}")
    if (after.cap_eff, after.cap_prm, after.cap_inh, after.cap_amb) != (mask, mask, 0, 0):
        problems.append(f"capabilities eff {after.cap_eff:#x} prm {after.cap_prm:#x} inh {after.cap_inh:#x}")
    if bounding_trimmed and after.cap_bnd != mask:
        problems.append(f"bounding set {after.cap_bnd:#x}")
    if not after.no_new_privs:
        problems.append("no_new_privs not set")
    for other in _other_tasks():
        if other.uids != (account.uid,) * 4 or (other.cap_prm | other.cap_amb) & ~mask:
            problems.append(f"another thread kept uids {other.uids}, capabilities {other.cap_prm:#x}")
    if problems:
        raise PrivilegeError(f"-u {account.name}: privileges not as asked after the switch: {'; '.join(problems)}")
    return after


def _drop_bounding(libc: _Libc, mask: int) -> bool:
    """Drop every capability outside ``mask`` from the bounding set; False when not allowed (no CAP_SETPCAP)."""
    for cap in range(_MAX_CAP + 1):
        try:
            present = libc.prctl(PR_CAPBSET_READ, cap)
        except OSError:
            break  # past CAP_LAST_CAP
        if present and not mask >> cap & 1:
            try:
                libc.prctl(PR_CAPBSET_DROP, cap)
            except PermissionError:
                return False
    return True


def describe(account: Account, credentials: ProcessCredentials) -> str:
    """The one log line: who the daemon now is (groups as the kernel has them) and what it may still do."""
    primary = credentials.gids[1]
    groups = ",".join(_group_name(g) for g in [primary, *(g for g in credentials.groups if g != primary)])
    return (
        f"running as user {account.name} (uid {credentials.uids[1]}, groups {groups}); "
        f"capabilities: {capability_names(credentials.cap_eff)}; bounding set: "
        f"{capability_names(credentials.cap_bnd)}; no_new_privs"
    )
