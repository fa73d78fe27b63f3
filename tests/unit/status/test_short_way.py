"""``stratum1 status`` and ``peers`` the short way: the daemon's rendered text, as the long way renders it.

The short way (appliance/statuscli.py) prints the texts the daemon put into the status socket's line
(appliance/status/payload.py) without argparse or the snapshot's classes; these tests hold it to the long way's
output and command line, and check that it really imports neither.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from status_sample import HOLDOVER, SNAP, UNSYNC

from appliance import statuscli
from appliance.io.statussock import StatusServer
from appliance.status.payload import TEXT_KEY, status_line
from appliance.status.snapshot import Snapshot
from appliance.status.text import health_line, peers_text, status_text

ROOT = Path(__file__).resolve().parents[3]
COMMANDS = (["status"], ["status", "--line"], ["peers"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StatusServer]:
    s = StatusServer(str(tmp_path / "status.sock"), group=None)
    s.start()
    yield s
    s.close()


def long_way(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = statuscli.run(statuscli.parser().parse_args(argv))
    return code, capsys.readouterr().out


def test_the_payload_is_the_snapshot_and_its_texts() -> None:
    line = status_line(SNAP)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Snapshot.from_json(line) == SNAP
    d = json.loads(line)
    assert set(d) == set(SNAP.to_dict()) | {TEXT_KEY}
    assert d[TEXT_KEY] == {"status": status_text(SNAP), "line": health_line(SNAP) + "\n", "peers": peers_text(SNAP)}


@pytest.mark.parametrize("snap", [SNAP, HOLDOVER, UNSYNC], ids=["healthy", "holdover", "unsynchronised"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_short_way_prints_what_the_long_way_renders(
    server: StatusServer,
    snap: Snapshot,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.publish(status_line(snap))
    argv = [*command, "--socket", server.path]
    want_code, want = long_way(argv, capsys)
    with monkeypatch.context() as m:

        def no_long_way(args: object) -> int:
            raise AssertionError(f"the long way was taken for {argv}")

        m.setattr(statuscli, "run", no_long_way)
        code = statuscli.main(argv)
    assert (code, capsys.readouterr().out) == (want_code, want)
    assert want_code == (1 if snap.system.leap == 3 else 0)
    assert want.strip()


def test_an_older_daemon_without_texts_gets_the_long_way(
    server: StatusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.publish(SNAP.to_json().encode() + b"\n")  # an older daemon's line
    argv = ["peers", "--socket", server.path]
    code = statuscli.main(argv)
    assert (code, capsys.readouterr().out) == long_way(argv, capsys)
    assert "oGPS(0)" in long_way(argv, capsys)[1]


def test_no_daemon_explains_itself_the_long_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert statuscli.main(["status", "--socket", str(tmp_path / "none.sock")]) == 2
    assert "is 'stratum1 serve' running?" in capsys.readouterr().err


SHORT = [
    ["status"],
    ["peers"],
    ["status", "--line"],
    ["status", "--socket", "/tmp/s.sock"],
    ["status", "--socket=/tmp/s.sock", "--line"],
    ["status", "--line", "--socket", "/x", "--socket", "/y"],
    ["peers", "--socket", "/x"],
]
LONG = [
    [],
    ["status", "--json"],
    ["status", "--watch"],
    ["peers", "--watch", "2"],
    ["status", "--sock", "/x"],  # an abbreviation: argparse knows what it means
    ["status", "--socket", "-x"],
    ["status", "--socket="],
    ["status", "--socket"],
    ["peers", "--line"],
    ["status", "--help"],
    ["status", "extra"],
    ["status", "--", "x"],
    ["plot"],
]


@pytest.mark.parametrize("argv", SHORT, ids=" ".join)
def test_short_command_lines_parse_as_argparse_parses_them(argv: list[str]) -> None:
    assert statuscli.short_arguments(argv) == vars(statuscli.parser().parse_args(argv))


@pytest.mark.parametrize("argv", LONG, ids=lambda a: " ".join(a) or "nothing")
def test_every_other_command_line_goes_to_argparse(argv: list[str]) -> None:
    assert statuscli.short_arguments(argv) is None


def test_the_short_way_imports_neither_argparse_nor_the_snapshot(server: StatusServer) -> None:
    server.publish(status_line(SNAP))
    code = (
        "import sys\nfrom appliance.command import main\n"
        f"rc = main(['status', '--socket', {server.path!r}])\n"
        "heavy = ('argparse', 'dataclasses', 'typing', 'appliance.status.snapshot', 'appliance.status.text')\n"
        "print(rc, sorted(m for m in sys.modules if m in heavy), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stderr.strip() == "0 []", out.stderr
    assert out.stdout.startswith("synchronised to reference clock")


@pytest.mark.parametrize("command", [["status", "--watch", "0.1"], ["peers", "--watch", "0.1"], ["status"]])
def test_a_reader_that_goes_away_ends_it_quietly(server: StatusServer, command: list[str]) -> None:
    """``stratum1 status --watch | head``: exit 141 (or 0 when it was done first), no traceback."""
    server.publish(status_line(SNAP))
    code = "import sys; from appliance.command import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *command, "--socket", server.path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)  # the reader takes a little, as head does, and goes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) in ((0, statuscli.EXIT_BROKEN_PIPE) if "--watch" not in command else (141,))
    assert "Traceback" not in err and "BrokenPipe" not in err, err
