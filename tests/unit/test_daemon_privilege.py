"""``stratum1 serve -u USER`` started as root: who it is afterwards, what it may do, and that it still works.

Each test starts the daemon as a subprocess as root with ``-u`` a throwaway
system user (made and deleted here), on loopback, and reads ``ps -o user,cmd``
and ``/proc/PID/status``. The kernel-clock run preloads tests/noclock.c, so
the daemon's ``adjtimex`` writes are checked by the kernel for CAP_SYS_TIME
but never reach the host clock; its GPS is a pty owned by root:dialout 0660,
unplugged and plugged back in after the switch. Every process started here is
ended by its PID.
"""

from __future__ import annotations

import grp
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from accounts import need_root, open_dir, runnable_by, throwaway_user
from noclock import noclock_env

from appliance.io import privilege

LOCAL_ONLY = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nrestrict default kod nomodify notrap nopeer\n"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def wait_for(self, pattern: str, timeout: float = 20.0, after: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the log past offset ``after``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text()[after:]
            m = re.search(pattern, text)
            if m:
                return m
            assert self.proc.poll() is None, f"the daemon ended ({self.proc.returncode}):\n{text}"
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{text}"
            time.sleep(0.1)


@pytest.fixture
def workdir() -> Iterator[Path]:
    need_root()
    with open_dir() as path:
        yield path


@pytest.fixture
def user() -> Iterator[str]:
    need_root()
    with throwaway_user(("dialout",)) as name:
        yield name


@pytest.fixture
def serve(workdir: Path, user: str) -> Iterator[Callable[..., Daemon]]:
    """Starts daemons (ended before ``user`` is deleted: userdel refuses a user with processes)."""
    started: list[Daemon] = []
    # a Python and a copy of the packages the user can read: whatever the daemon imports after the switch
    python, base_env = runnable_by(user, workdir)

    def start(config: str, *args: str, env: dict[str, str] | None = None) -> Daemon:
        conf = workdir / "ntp.conf"
        conf.write_text(config)
        log = workdir / f"daemon{len(started)}.log"
        cmd = [python, "-m", "appliance.cli", "serve", "-c", str(conf), "-l", "127.0.0.1", "-p", "0"]
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [*cmd, "--log", "stderr", "-v", *args],
                stderr=f,
                env={**base_env, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=workdir,
            )
        daemon = Daemon(proc, log, 0)
        started.append(daemon)
        daemon.port = int(daemon.wait_for(r"serving NTP on 127\.0\.0\.1:(\d+)").group(1))
        return daemon

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()


def _ps_user_cmd(pid: int) -> tuple[str, str]:
    ps = ["ps", "-ww", "-o", "user:40=,cmd=", "-p", str(pid)]
    out = subprocess.run(ps, capture_output=True, text=True, check=True)
    user, _, cmd = out.stdout.strip().partition(" ")
    return user, cmd.strip()


def _answers(port: int) -> str:
    q = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "query", f"127.0.0.1:{port}", "-n", "1", "-t", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert q.stdout.startswith("server 127.0.0.1, stratum "), q.stderr
    return q.stdout


def _stop(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0, daemon.log.read_text()


def test_serving_the_local_clock_keeps_no_capability(serve: Callable[..., Daemon], user: str) -> None:
    daemon = serve(LOCAL_ONLY, "-u", user)
    account = privilege.resolve_account(user)
    ps_user, cmd = _ps_user_cmd(daemon.proc.pid)
    assert ps_user == user and "appliance.cli serve -c" in cmd and f"-u {user}" in cmd
    c = privilege.read_credentials(daemon.proc.pid)
    assert c.uids == (account.uid,) * 4 and c.gids == (account.gid,) * 4
    assert (c.cap_eff, c.cap_prm, c.cap_inh, c.cap_bnd, c.cap_amb) == (0, 0, 0, 0, 0)
    assert c.no_new_privs
    daemon.wait_for(rf"running as user {user} \(uid {account.uid}, groups {user},dialout\); capabilities: none")
    _answers(daemon.port)
    _stop(daemon)


def test_kernel_clock_keeps_cap_sys_time_alone_and_reopens_a_replugged_receiver(
    serve: Callable[..., Daemon], user: str, workdir: Path
) -> None:
    dialout = grp.getgrnam("dialout").gr_gid
    calls = workdir / "adjtimex.log"
    env = noclock_env(workdir, calls)
    link = workdir / "gps0"
    master, _ = _plug(link, dialout, 0o660)
    config = f"refclock nmea unit 0 path {link} baud 9600 refid GPS\nrestrict default kod nomodify notrap nopeer\n"
    try:
        daemon = serve(config, "--clock", "kernel", "-u", user, env=env)
        account = privilege.resolve_account(user)
        assert _ps_user_cmd(daemon.proc.pid)[0] == user
        c = privilege.read_credentials(daemon.proc.pid)
        assert c.uids == (account.uid,) * 4 and dialout in c.groups
        assert c.cap_eff == c.cap_prm == c.cap_bnd == 0x2000000  # cap_sys_time (bit 25) alone
        assert (c.cap_inh, c.cap_amb, c.no_new_privs) == (0, 0, True)
        daemon.wait_for(rf"running as user {user} .*capabilities: cap_sys_time; bounding set: cap_sys_time")
        # after the switch the kernel still lets it steer (the writes stop at tests/noclock.c)
        deadline = time.monotonic() + 10
        while not re.search(rf"^uid={account.uid} modes=\S+ rc=[0-9]+ ", calls.read_text(), re.M):
            assert time.monotonic() < deadline, calls.read_text()
            time.sleep(0.2)
        assert not re.search(r"rc=-1", calls.read_text()), calls.read_text()
        _answers(daemon.port)

        # unplugged; back as a device of root's alone (refused); then as udev leaves it (opened, by group)
        mark = len(daemon.log.read_text())
        os.close(master)
        daemon.wait_for(rf"GPS {link} lost", after=mark)
        master, slave = _plug(link, 0, 0o600)
        daemon.wait_for(rf"GPS {link}: still cannot open: .*Permission denied", after=mark)
        os.chown(slave, 0, dialout)
        os.chmod(slave, 0o660)
        daemon.wait_for(rf"GPS {link} is back after", after=mark)
        _answers(daemon.port)
        _stop(daemon)
    finally:
        os.close(master)


def _plug(link: Path, gid: int, mode: int) -> tuple[int, str]:
    """A new pty behind ``link`` (a receiver plugged in), its slave root:``gid`` ``mode``: (master fd, slave path)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    os.chown(path, 0, gid)
    os.chmod(path, mode)
    tmp = link.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(path)
    tmp.replace(link)
    return master, path


def test_unknown_user_is_one_line_before_anything_is_bound() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "serve", "-l", "127.0.0.1", "-p", "0", "-u", "no-such-user-s1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("stratum1: -u no-such-user-s1: no such user") and out.stderr.count("\n") == 1


def test_simulation_switches_before_it_builds_anything(user: str, workdir: Path) -> None:
    python, env = runnable_by(user, workdir)  # the simulation imports its fakes after the switch
    log = workdir / "sim.log"
    cmd = [python, "-m", "appliance.cli", "serve", "--simulate", "--port", "0", "--log", "stderr", "-u", user]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stderr=f, env={**env, "PYTHONUNBUFFERED": "1"}, cwd=workdir)
    daemon = Daemon(proc, log, 0)
    try:
        daemon.port = int(daemon.wait_for(r"serving NTP on 127\.0\.0\.1:(\d+)").group(1))
        c = privilege.read_credentials(proc.pid)
        assert c.uids[0] == privilege.resolve_account(user).uid and c.cap_eff == c.cap_prm == 0
        link = Path(daemon.wait_for(r"GPS (/\S+)/gps0 open").group(1))
        assert link.owner() == user  # made after the switch, so the daemon can remove it
        _answers(daemon.port)
        _stop(daemon)
        assert not link.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", [("--simulate",), ("-c", "CONF", "--clock", "soft")])
def test_modules_the_user_may_not_read_stop_the_start_in_one_line(
    user: str, workdir: Path, mode: tuple[str, ...]
) -> None:
    """stratum1 from a directory USER may not enter (a virtual environment in a 0700 home): one line at the switch.

    Python imports lazily (statistics when the simulation is built, encodings.idna when a server name is first
    resolved): after the switch those imports failed, with a traceback or a server never polled.
    """
    python, env = runnable_by(user, workdir)
    home = workdir / "home"
    home.mkdir(mode=0o700)
    (workdir / "site").rename(home / "site")
    conf = workdir / "ntp.conf"
    conf.write_text(LOCAL_ONLY + "server 127.0.0.1 iburst\n")
    args = [str(conf) if a == "CONF" else a for a in mode]
    out = subprocess.run(
        [python, "-m", "appliance.cli", "serve", *args, "-l", "127.0.0.1", "-p", "0", "-u", user],
        env={**env, "PYTHONPATH": str(home / "site")},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    last = out.stderr.splitlines()[-1]
    assert last.startswith(f"stratum1: -u {user}: user {user} may not read {home}, where this Python"), out.stderr


def test_the_status_socket_thread_runs_with_the_dropped_privileges(
    serve: Callable[..., Daemon], user: str, workdir: Path
) -> None:
    """The status socket's thread starts after the switch (capabilities are per thread), and answers."""
    sock = workdir / "status.sock"
    daemon = serve(LOCAL_ONLY, "-u", user, "--status-socket", str(sock))
    daemon.wait_for(r"running as user ")
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(
            [sys.executable, "-m", "appliance", "status", "--json", "--socket", str(sock)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode in (0, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert out.returncode in (0, 1), out.stderr + daemon.log.read_text()
    assert '"stratum":10' in out.stdout.replace(" ", "")
    for tid in os.listdir(f"/proc/{daemon.proc.pid}/task"):
        status = Path(f"/proc/{daemon.proc.pid}/task/{tid}/status").read_text()
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    _stop(daemon)
