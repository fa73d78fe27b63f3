"""The stratum1 command as a person uses it: one clear line and an exit code, never a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.cli import format_query, parse_host_port
from appliance.io.statusclient import read_status
from appliance.ntp.exchange import Measurement
from appliance.status.snapshot import Snapshot


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_check_config_accepts_every_seed_config(shared_data: Path) -> None:
    for conf in sorted((shared_data / "seed-configs").glob("*.conf")):
        out = run("check-config", str(conf))
        assert out.returncode == 0, out.stderr
        assert f"{conf}: OK" in out.stdout


def test_check_config_error_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "ntp.conf"
    bad.write_text("driftfile /var/lib/ntp/drift\nrestrict default kod nomodfy\n")
    out = run("check-config", str(bad))
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"stratum1: {bad}:2:") and "nomodfy" in out.stderr


def test_check_config_names_every_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "ntp.conf"
    bad.write_text(
        "sever a.example\nserver b.example iburst\nrestrict default kod nomodfy\nfudge 127.127.1.0 stratum x\n"
    )
    out = run("check-config", str(bad))
    assert out.returncode == 1 and out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert [line.split(":")[2] for line in lines] == ["1", "3", "4"], out.stderr
    assert all(line.startswith(f"stratum1: {bad}:") for line in lines)


@pytest.mark.parametrize("line", ["server 127.127.8.0 mode 5", "refclock generic unit 0"])
def test_check_config_refuses_a_driver_stratum1_has_not(tmp_path: Path, line: str) -> None:
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"driftfile /var/lib/ntp/drift\n{line}\n")
    out = run("check-config", str(conf))
    assert out.returncode == 1 and out.stderr.startswith(f"stratum1: {conf}:2:"), out.stderr
    assert all(name in out.stderr for name in ("nmea", "pps", "shm", "gpsd"))


@pytest.mark.parametrize("line", ["refclock shm unit 0", "server 127.127.28.0", "server 127.127.46.0"])
def test_check_config_takes_the_gpsd_lines(tmp_path: Path, line: str) -> None:
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"{line}\n")
    out = run("check-config", str(conf))
    assert out.returncode == 0 and f"{conf}: OK" in out.stdout, out.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    out = run("check-config", str(tmp_path / "nope.conf"))
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_default_config_prints_a_config_that_checks(tmp_path: Path) -> None:
    out = run("default-config")
    assert out.returncode == 0 and "restrict default" in out.stdout
    f = tmp_path / "default.conf"
    f.write_text(out.stdout)
    checked = run("check-config", str(f))
    assert checked.returncode == 0 and "0 warnings" in checked.stdout


def test_query_without_answer_is_one_line() -> None:
    out = run("query", "127.0.0.1:9", "-n", "1", "-t", "0.5")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("stratum1: 127.0.0.1:9:")


def test_serve_on_a_busy_port_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        out = run("serve", "--listen", "127.0.0.1", "--port", str(port), "--log", "stderr")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ntp.example", ("ntp.example", 123)),
        ("127.0.0.1:11123", ("127.0.0.1", 11123)),
        ("[::1]:11123", ("::1", 11123)),
        ("[::1]", ("::1", 123)),
        ("2001:db8::1", ("2001:db8::1", 123)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


def test_query_output_matches_ntpdate() -> None:
    m = Measurement(1_172_000, 164_280_000, 2, 0, bytes([192, 0, 2, 1]), 4, 6, -20, 0, 0)
    first = format_query("192.0.2.10", m).splitlines()[0]
    assert first == "server 192.0.2.10, stratum 2, offset 0.001172, delay 0.16428"


@pytest.mark.parametrize(("capeff", "allowed"), [("0000003fffffffff", True), ("0000000000000000", False)])
def test_may_set_clock_reads_cap_sys_time(tmp_path: Path, capeff: str, allowed: bool) -> None:
    from appliance.cli import _may_set_clock

    status = tmp_path / "status"
    status.write_text(f"Name:\tstratum1\nCapInh:\t0000000000000000\nCapEff:\t{capeff}\n")
    assert _may_set_clock(str(status)) is allowed


# -- every command-line value is checked: one line, exit status 2 -------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["serve", "--port", "70000"],
            "argument -p/--port: a UDP port must be a whole number in 0..65535, not '70000'",
        ),
        (["serve", "--port", "-1"], "argument -p/--port: a UDP port must be a whole number in 0..65535, not '-1'"),
        (["serve", "-p", "http"], "argument -p/--port: a UDP port must be a whole number in 0..65535, not 'http'"),
        (
            ["serve", "--rcvbuf", "99999999999999999999"],
            "argument --rcvbuf: a receive buffer size in bytes must be a whole number in 4096..1073741824, "
            "not '99999999999999999999'",
        ),
        (
            ["serve", "--rcvbuf", "0"],
            "argument --rcvbuf: a receive buffer size in bytes must be a whole number in 4096..1073741824, not '0'",
        ),
        (["serve", "--listen", "localhost"], "argument -l/--listen: 'localhost' is not an IPv4 or IPv6 address"),
        (["serve", "-l", "300.1.1.1"], "argument -l/--listen: '300.1.1.1' is not an IPv4 or IPv6 address"),
        (["serve", "--config", ""], "argument -c/--config: '' is not a file name"),
        (["serve", "--clock", "atomic"], "argument --clock: invalid choice: 'atomic' (choose from 'kernel', 'soft')"),
        (
            ["query", "-t", "-1", "h"],
            "argument -t/--timeout: a timeout must be seconds above 0 and at most 60, not '-1'",
        ),
        (["query", "-t", "0", "h"], "argument -t/--timeout: a timeout must be seconds above 0 and at most 60, not '0'"),
        (
            ["query", "-t", "nan", "h"],
            "argument -t/--timeout: a timeout must be seconds above 0 and at most 60, not 'nan'",
        ),
        (
            ["query", "-t", "inf", "h"],
            "argument -t/--timeout: a timeout must be seconds above 0 and at most 60, not 'inf'",
        ),
        (
            ["query", "-t", "1e10", "h"],
            "argument -t/--timeout: a timeout must be seconds above 0 and at most 60, not '1e10'",
        ),
        (
            ["query", "-n", "0", "h"],
            "argument -n/--samples: the number of requests must be a whole number in 1..64, not '0'",
        ),
        (["query", "h:99999"], "argument HOST[:PORT]: bad port '99999'"),
        (["query", "[::1]:0"], "argument HOST[:PORT]: bad port '0'"),
        (["query", ""], "argument HOST[:PORT]: '' is not a host name or address"),
        (["check-config", ""], "argument file: '' is not a file name"),
    ],
)
def test_bad_command_line_values_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from appliance.cli import main

    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"stratum1 {argv[0]}: {message} (see 'stratum1 {argv[0]} --help')\n"


def test_a_missing_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required: COMMAND" in err


def test_good_values_pass_their_types() -> None:
    from appliance.cli import _parser

    args = _parser().parse_args(["serve", "-p", "0", "--rcvbuf", "4096", "-l", "::1", "-l", "0:0::1"])
    assert (args.port, args.rcvbuf, args.listen) == (0, 4096, ["::1", "::1"])
    q = _parser().parse_args(["query", "-t", "0.25", "-n", "64", "[::1]:11123"])
    assert (q.timeout, q.samples, q.server) == (0.25, 64, ("::1", 11123))


def test_check_config_dev_zero_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    assert main(["check-config", "/dev/zero"]) == 1
    out = capsys.readouterr()
    assert out.err == "stratum1: /dev/zero: cannot read: not a regular file (a character device)\n"


def test_check_config_include_of_dev_zero_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    conf = tmp_path / "ntp.conf"
    conf.write_text("server 127.127.1.0\nincludefile /dev/zero\n")
    assert main(["check-config", str(conf)]) == 1
    err = capsys.readouterr().err
    assert err == f"stratum1: {conf}:2: cannot read include file '/dev/zero': not a regular file (a character device)\n"


def test_check_config_refuses_stratum_0_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    conf = tmp_path / "ntp.conf"
    conf.write_text("server 127.127.1.0\nfudge 127.127.1.0 stratum 0\n")
    assert main(["check-config", str(conf)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"stratum1: {conf}:2: stratum 0 is out of range (1..15)") and err.count("\n") == 1


# -- signals: HUP reloads, TERM and INT stop cleanly ----------------------------------------------------


class Daemon:
    """``stratum1 serve`` in a subprocess, its stderr lines collected by a thread; ended by its PID."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "serve", "--port", "0", "--log", "stderr", *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        port = re.search(r"serving NTP on 127\.0\.0\.1:(\d+)", self.wait_for("serving NTP on"))
        assert port, self.lines
        self.port = int(port.group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, start: int = 0, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} in {self.lines}")

    def send(self, signum: int) -> int:
        """Send ``signum``; return the index of the next log line (to wait for what follows)."""
        mark = len(self.lines)
        self.proc.send_signal(signum)
        return mark

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            rc = self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return rc


def ask(port: int) -> bytes | None:
    """One client request to 127.0.0.1:``port``: the reply, or None after half a second."""
    import socket

    from appliance.ntp.exchange import client_request

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(client_request(time.time_ns())[0], ("127.0.0.1", port))
        try:
            return s.recv(1024)
        except TimeoutError:
            return None


def test_sighup_applies_a_new_config_keeps_the_old_on_error_and_sigterm_stops(tmp_path: Path) -> None:
    conf = tmp_path / "ntp.conf"
    local = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"
    conf.write_text(local + "restrict default noquery\nrestrict 127.0.0.1\n")
    d = Daemon("-c", str(conf), "-l", "127.0.0.1")
    try:
        from appliance.io import fastpath

        plane = "compiled" if fastpath.available() else "python"  # the reload must reach the compiled copy too
        assert d.wait_for("data plane:").endswith(f"data plane: {plane}")
        reply = ask(d.port)
        assert reply is not None and reply[1] == 10
        # a broken file: the error with its file:line, and the appliance serves on with the config it has
        conf.write_text(local + "restrict 127.0.0.1 ignore\nfudge 127.127.1.0 stratum 0\n")
        line = d.wait_for("SIGHUP", d.send(signal.SIGHUP))
        assert f"ERROR stratum1: SIGHUP: {conf}:4: stratum 0 is out of range (1..15)" in line
        assert line.endswith("still serving with the configuration read before")
        assert ask(d.port) is not None
        # the same restrict line without the error: 127.0.0.1 is refused from now on
        conf.write_text(local + "restrict default noquery\nrestrict 127.0.0.1 ignore\ndriftfile /var/lib/x\n")
        line = d.wait_for("SIGHUP", d.send(signal.SIGHUP))
        assert line.endswith(f"SIGHUP: {conf} reloaded: applied: restrict lines; needs a restart: driftfile")
        assert ask(d.port) is None
        assert d.proc.poll() is None
    finally:
        rc = d.stop(signal.SIGTERM)
    assert rc == 0
    assert d.lines[-3].endswith("SIGTERM: stopping") and d.lines[-1].endswith("INFO stratum1: stopped")
    assert not any("Traceback" in line for line in d.lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_leaves_nothing_in_tmp_after_hup_then_stop(signum: int, tmp_path: Path) -> None:
    """--simulate makes a directory for its pty link, one for its drift file and one for its status socket
    (never the installed daemon's); all three go at the end."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    conf = tmp_path / "ntp.conf"
    conf.write_text("driftfile /var/lib/stratum1/drift\nrestrict default noquery\nrestrict 127.0.0.1\n")
    d = Daemon("--simulate", "-c", str(conf), env={"TMPDIR": str(tmp)})
    try:
        made = sorted(p.name.rsplit("-", 1)[0] for p in tmp.iterdir())
        assert made == ["stratum1-sim", "stratum1-sim-drift", "stratum1-sim-status"]
        told = re.search(r"status: stratum1 status --socket (\S+), stratum1 peers --socket \1$", d.wait_for("status:"))
        assert told and Path(told.group(1)).parent.parent == tmp, d.lines
        snap = Snapshot.from_json(read_status(told.group(1)))  # this daemon's status: its simulated GPS
        assert [s.name for s in snap.sources] == ["NMEA(0)"] and snap.system.stratum in (1, 16)
        line = d.wait_for("SIGHUP", d.send(signal.SIGHUP))  # used to end the process, leaving all behind
        assert line.endswith("reloaded: nothing changed")
        assert d.proc.poll() is None
    finally:
        rc = d.stop(signum)
    assert rc == 0
    assert list(tmp.iterdir()) == []
    name = signal.Signals(signum).name
    assert d.lines[-3].endswith(f"{name}: stopping") and d.lines[-1].endswith("stopped")


def _healthy_check(address: str, port: int, **_: object) -> object:
    from appliance.pool import Check, Sample

    return Check(address, tuple(Sample("reply", 0, 1_000_000, 1, 0, "PPS") for _ in range(3)))


@pytest.mark.parametrize(
    ("addresses", "ready"), [(["203.0.113.5"], True), (["127.0.0.1"], False), (["203.0.113.5", "192.168.1.50"], False)]
)
def test_pool_check_gives_no_verdict_for_an_address_no_monitor_can_reach(
    addresses: list[str], ready: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A loopback or LAN address is exempt from what the monitors meet: a full score there proves nothing."""
    from appliance import cli
    from appliance.io import poolcheck

    monkeypatch.setattr(poolcheck, "monitor_check", _healthy_check)
    code = cli.main(["pool-check", *addresses])
    out = capsys.readouterr().out
    inside = [a for a in addresses if not a.startswith("203.")]
    assert code == (0 if ready else 1)
    assert ("verdict: ready for the NTP Pool" in out) == ready
    for a in inside:
        assert f"warning: {a} is a " in out and "address: the Pool takes only public ones" in out
    if inside:
        verdict = f"verdict: none: {', '.join(inside)} cannot be checked as the Pool checks"
        assert out.splitlines()[-1].startswith(verdict)


@pytest.mark.parametrize(
    ("argv", "prog", "names"),
    [
        (["status", "--watch", "inf"], "stratum1 status", "--watch: 'inf'"),
        (["status", "--watch", "0"], "stratum1 status", "--watch: '0'"),
        (["peers", "--watch", "nan"], "stratum1 peers", "--watch: 'nan'"),
        (["status", "--bogus"], "stratum1 status", "unrecognized arguments: --bogus"),
        (["plot", "-o", "p.svg", "--end", "nan"], "stratum1 plot", "--end: 'nan'"),
        (["plot", "-o", "p.svg", "--end", "1e30"], "stratum1 plot", "--end: '1e30'"),
        (["exporter", "--listen", "::1", "--bogus"], "stratum1 exporter", "unrecognized arguments: --bogus"),
        (["web"], "stratum1 web", "--listen"),
        (["doctor", "--seconds", "-1"], "stratum1 doctor", "--seconds: '-1'"),
    ],
)
def test_a_bad_option_of_any_command_is_one_line_and_exit_2(argv: list[str], prog: str, names: str) -> None:
    """README: every option is checked before anything starts, and a bad one is one line and exit status 2."""
    out = run(*argv)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"{prog}: "), out.stderr
    assert names in out.stderr and out.stderr.endswith(f"(see '{prog} --help')\n")


def _stale_socket(tmp_path: Path) -> str:
    """A status socket left behind by a daemon killed with SIGKILL: the file is there, nobody listens."""
    import socket

    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    return path


def _regular_file(tmp_path: Path) -> str:
    (tmp_path / "file").write_text("")
    return str(tmp_path / "file")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_stale_socket, "nothing answers on it: the daemon that made it has stopped (is 'stratum1 serve' running?"),
        (lambda tmp_path: str(tmp_path), "not a socket (--socket names the daemon's status socket"),
        (_regular_file, "not a socket (--socket names"),
    ],
)
def test_a_status_socket_that_does_not_answer_says_why(tmp_path: Path, make: Any, says: str) -> None:
    path = make(tmp_path)
    out = run("status", "--socket", path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"stratum1 status: {path}: {says}"), out.stderr


def test_pool_check_names_a_source_that_is_not_this_hosts() -> None:
    out = run("pool-check", "203.0.113.5", "--source", "192.0.2.99")  # TEST-NET-1: on no interface here
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("stratum1: --source 192.0.2.99: ")
    assert out.stderr.endswith("(it must be an address of an interface on this host: ip -br addr)\n")


def test_plot_says_when_the_statsdir_is_not_there(tmp_path: Path) -> None:
    out = run("plot", "-o", str(tmp_path / "p.svg"), "--statsdir", str(tmp_path / "nowhere"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"stratum1 plot: no directory {tmp_path}/nowhere: the daemon writes loopstats")


def _choices(parser: Any) -> dict[str, Any]:
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_and_readme_name_every_command() -> None:
    """stratum1 --help's hw line and README's command table name every command and hw subcommand there is."""
    import argparse

    from appliance import cli
    from appliance.hw import command as hw_command

    commands = _choices(cli._parser())
    hw = list(_choices(commands["hw"]))
    assert list(hw_command.SUBCOMMANDS) == hw
    action = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert next(a.help for a in action._choices_actions if a.dest == "hw") == "the board: " + ", ".join(hw)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `stratum1 ")]
    named = {name for row in rows for name in re.findall(r"`stratum1 ([a-z-]+)", row.split("|")[1])}
    assert set(commands) <= named, set(commands) - named
    hw_row = next(row for row in rows if row.startswith("| `stratum1 hw "))
    code = hw_row.split("`")[1]  # stratum1 hw list \| render \| ...
    assert set(re.findall(r"[a-z][a-z-]*", code)) >= set(hw), hw_row


def test_check_config_warns_about_a_missing_leapfile_or_statsdir_with_the_line(tmp_path: Path) -> None:
    """They passed check-config; serve then warned without the config line."""
    conf = tmp_path / "ntp.conf"
    leap = tmp_path / "leap-seconds.list"
    conf.write_text(
        f"leapfile {tmp_path}/none.list\nstatsdir {tmp_path}/none\nserver 127.127.1.0\nincludefile more.conf\n"
    )
    (tmp_path / "more.conf").write_text(f"# the last one wins\nstatsdir {leap}\n")
    leap.write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check-config", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"{conf}:1: warning: leapfile {tmp_path}/none.list does not exist: leap seconds cannot be read" in out.stdout
    assert f"{tmp_path}/more.conf:2: warning: statsdir {leap} is not a directory: statistics files cannot" in out.stdout
    assert "2 warnings" in out.stdout
