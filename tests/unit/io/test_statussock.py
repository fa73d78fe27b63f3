"""The status socket: every reader gets the snapshot; a hanging reader is dropped and counted, never waited for."""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import pytest
from status_sample import SNAP

from appliance import statuscli
from appliance.io import statussock
from appliance.io.statusclient import MAX_UNIX_PATH
from appliance.io.statussock import StatusServer, read_status
from appliance.status.snapshot import Snapshot


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StatusServer]:
    s = StatusServer(str(tmp_path / "status.sock"), group=None)
    s.publish(SNAP.to_json().encode() + b"\n")
    s.start()
    yield s
    s.close()


def test_a_reader_gets_the_latest_snapshot(server: StatusServer) -> None:
    assert Snapshot.from_json(read_status(server.path)) == SNAP
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o660
    assert server.counters.served == 1


def test_a_hanging_reader_is_dropped_and_others_are_served(
    server: StatusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = b"x" * (4 << 20)  # more than a socket buffer holds: the reader must read, and this one never does
    monkeypatch.setattr(statussock, "MAX_SNAPSHOT", len(big) + 1)
    server.publish(big)
    hang = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hang.connect(server.path)
    time.sleep(0.5)  # the thread accepts it and starts on the big payload
    server.publish(SNAP.to_json().encode() + b"\n")
    started = time.monotonic()
    assert Snapshot.from_json(read_status(server.path)) == SNAP  # not held up by the hanging reader
    assert time.monotonic() - started < 0.5
    deadline = time.monotonic() + 3 * statussock.DEADLINE_S
    while server.counters.slow == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.counters.slow == 1
    hang.close()


def test_too_many_readers_at_once_are_turned_away(server: StatusServer, monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"x" * (4 << 20)
    monkeypatch.setattr(statussock, "MAX_SNAPSHOT", len(big) + 1)
    server.publish(big)
    held = []
    for _ in range(statussock.MAX_READERS + 3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(server.path)
        held.append(s)
    deadline = time.monotonic() + 2
    while server.counters.busy < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.counters.busy == 3
    for s in held:
        s.close()


def run_cli(command: str, path: str, **kw: object) -> tuple[int, str]:
    args = Namespace(command=command, socket=path, json=False, watch=None, line=False)
    for k, v in kw.items():
        setattr(args, k, v)
    out = io.StringIO()
    return statuscli.run(args, out), out.getvalue()


def test_status_and_peers_commands(server: StatusServer) -> None:
    code, text = run_cli("status", server.path)
    assert code == 0 and text.startswith("synchronised to reference clock")
    code, text = run_cli("status", server.path, json=True)
    assert code == 0 and Snapshot.from_json(text) == SNAP
    code, text = run_cli("status", server.path, line=True)
    assert code == 0 and text.startswith("stratum1 OK:") and text.count("\n") == 1
    code, text = run_cli("peers", server.path)
    assert code == 0 and "oGPS(0)" in text


def test_no_daemon_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("status", str(tmp_path / "none.sock"))
    assert code == 2
    assert "is 'stratum1 serve' running?" in capsys.readouterr().err


def test_a_socket_left_by_a_killed_daemon_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "status.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound and closed without unlinking: what SIGKILL leaves
    dead.close()
    s = StatusServer(path, group=None)
    try:
        s.publish(SNAP.to_json().encode() + b"\n")
        s.start()
        assert Snapshot.from_json(read_status(path)) == SNAP
    finally:
        s.close()
    assert not os.path.exists(path)


def test_a_served_socket_is_never_taken_and_outlives_a_second_server(server: StatusServer) -> None:
    """`serve --simulate --status-socket /run/stratum1/status.sock` beside the installed daemon: refused,
    and the daemon's readers (stratum1 status, the LCD, the exporter) keep their socket."""
    with pytest.raises(OSError, match="in use by a running daemon") as e:
        StatusServer(server.path, group=None)
    assert e.value.errno == errno.EADDRINUSE
    assert Snapshot.from_json(read_status(server.path)) == SNAP


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "status.sock"
    path.write_text("someone's notes\n")
    with pytest.raises(OSError, match="not a socket") as e:
        StatusServer(str(path), group=None)
    assert e.value.errno == errno.EEXIST
    assert path.read_text() == "someone's notes\n"


def test_close_removes_only_the_socket_it_made(tmp_path: Path) -> None:
    path = str(tmp_path / "status.sock")
    first = StatusServer(path, group=None)
    os.unlink(path)  # its file removed by hand, and a new daemon has bound the path since
    second = StatusServer(path, group=None)
    second.publish(SNAP.to_json().encode() + b"\n")
    second.start()
    try:
        first.close()
        assert Snapshot.from_json(read_status(path)) == SNAP
    finally:
        second.close()
    assert not os.path.exists(path)


def test_a_path_longer_than_a_unix_address_holds(tmp_path: Path) -> None:
    """A deep TMPDIR (serve --simulate puts its socket there) gives paths over sockaddr_un's 107 octets."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "status.sock")
    assert len(path) > MAX_UNIX_PATH
    s = StatusServer(path, group=None)
    try:
        s.publish(SNAP.to_json().encode() + b"\n")
        s.start()
        assert Path(path).is_socket()
        assert Snapshot.from_json(read_status(path)) == SNAP
        with pytest.raises(OSError, match="in use by a running daemon"):
            StatusServer(path, group=None)
    finally:
        s.close()
    assert not Path(path).exists()
