"""Run a command the way systemd's last steps before ``execve`` would: umask, MemoryDenyWriteExecute, seccomp.

    python unitexec.py SPEC.json -- COMMAND...

SPEC holds ``umask`` (octal text or null), ``mdwe`` (bool), ``allow`` (the
system call names the unit's ``SystemCallFilter=`` lines leave allowed, or
null for no filter) and ``errno`` (``SystemCallErrorNumber=``). Run after
``setpriv`` has changed the user, the capabilities and set no_new_privs, as
systemd does; only the standard library and libseccomp (through ctypes) are
used, since the caller may be a user who can read nothing else.

- MemoryDenyWriteExecute: ``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)``
  (Linux 6.3+), which, like systemd's seccomp rule, refuses writable and
  executable mappings and making a mapping executable later; kept across
  ``execve``. Exit status 75 when the kernel lacks it.
- SystemCallFilter: a seccomp filter, default action ``ERRNO(errno)``, every
  listed call allowed (names this architecture lacks are skipped).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
EX_TEMPFAIL = 75


def scmp_act_errno(err: int) -> int:
    return 0x00050000 | (err & 0xFFFF)


def apply_mdwe() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print(f"unitexec: PR_SET_MDWE: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        sys.exit(EX_TEMPFAIL)


def apply_filter(allow: list[str], err: int) -> None:
    name = ctypes.util.find_library("seccomp")
    if name is None:
        print("unitexec: libseccomp is missing", file=sys.stderr)
        sys.exit(EX_TEMPFAIL)
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(scmp_act_errno(err))
    if not ctx:
        sys.exit("unitexec: seccomp_init failed")
    for syscall in allow:
        nr = lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr < 0:
            continue  # not a system call of this architecture (chown32 on x86-64...)
        rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)
        if rc != 0:
            sys.exit(f"unitexec: seccomp_rule_add({syscall}): {os.strerror(-rc)}")
    rc = lib.seccomp_load(ctx)
    if rc != 0:
        sys.exit(f"unitexec: seccomp_load: {os.strerror(-rc)}")


def main(argv: list[str]) -> None:
    spec_path, dashes, *command = argv
    if dashes != "--" or not command:
        sys.exit(__doc__)
    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("umask") is not None:
        os.umask(int(spec["umask"], 8))
    if spec.get("mdwe"):
        apply_mdwe()
    if spec.get("allow") is not None:
        apply_filter(spec["allow"], int(spec.get("errno", 1)))
    try:
        os.execvp(command[0], command)
    except OSError as e:
        sys.exit(f"unitexec: cannot run {command[0]}: {e.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
