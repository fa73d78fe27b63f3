"""The drift file: round trip, bad content ignored with a warning, atomic writes, hourly decision."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.clock.discipline import DisciplineStatus, Mode
from appliance.clock.drift import (
    MAX_FILE_BYTES,
    WRITE_INTERVAL_NS,
    WRITE_MAX_SD_PPB,
    WRITE_MIN_UPDATES,
    DriftFile,
    DriftFileError,
    format_drift,
    parse_drift,
    read_drift_file,
    should_write,
    write_drift_file,
)
from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.timebase import NS_PER_S

H = WRITE_INTERVAL_NS


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ntp.drift"
    write_drift_file(path, -12_345.678)
    assert path.read_text() == "-12.345678\n"
    assert read_drift_file(path) == pytest.approx(-12_345.678)
    assert [p.name for p in tmp_path.iterdir()] == ["ntp.drift"]  # no temporary left behind


def test_rewrite_replaces(tmp_path: Path) -> None:
    path = tmp_path / "ntp.drift"
    write_drift_file(path, 1_000.0)
    write_drift_file(path, 2_000.0)
    assert read_drift_file(path) == pytest.approx(2_000.0)


@given(st.floats(min_value=-500_000, max_value=500_000))
def test_format_parse_round_trip(ppb: float) -> None:
    assert parse_drift(format_drift(ppb)) == pytest.approx(ppb, abs=1e-3)


@pytest.mark.parametrize("text", ["12.5", "  -3.25\n", "0\n", "+1e1\n"])
def test_ntpd_style_content_parses(text: str) -> None:
    assert parse_drift(text) == pytest.approx(float(text) * 1000)


@pytest.mark.parametrize(
    "text", ["", "\n", "abc", "12.5 0.03", "nan", "inf", "-inf", "501", "-1e9", "1,5", "12.5\n13.0\n"]
)
def test_bad_content_is_an_error(text: str) -> None:
    with pytest.raises(DriftFileError):
        parse_drift(text)


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"12.5 0.03\n", b"\xff\xfe1\n", b"nan\n", b"900\n"])
def test_bad_file_ignored_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    path = tmp_path / "ntp.drift"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert read_drift_file(path) is None
    assert any(str(path) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_missing_file_is_a_quiet_cold_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_drift_file(tmp_path / "absent") is None
    assert caplog.records == []


def test_unreadable_file_ignored_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_drift_file(tmp_path) is None  # a directory: IsADirectoryError
    assert caplog.records


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ntp.drift"
    write_drift_file(path, 1_000.0)

    def broken_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_drift_file(path, 2_000.0)
    assert read_drift_file(path) == pytest.approx(1_000.0)
    assert [p.name for p in tmp_path.iterdir()] == ["ntp.drift"]


def test_should_write_at_most_hourly() -> None:
    assert should_write(None, 0)
    assert not should_write(0, H - 1)
    assert should_write(0, H)
    assert should_write(10 * H, 10 * H - 5)  # the clock went back past the last write
    assert not should_write(0, 10, interval_ns=11)


def test_write_syncs_the_data_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ntp.drift"
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        assert Path(src).read_text() == "1.500000\n"  # complete before it takes the name
        calls.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_drift_file(path, 1_500.0)
    assert calls == ["fsync-file", "rename", "fsync-dir"]


CRASH_BEFORE_RENAME = """
import os, sys
from pathlib import Path
from appliance.clock.drift import write_drift_file
os.replace = lambda src, dst: os._exit(9)  # the power goes between write and rename
write_drift_file(Path(sys.argv[1]), 2_000.0)
"""


def test_crash_between_write_and_rename_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "ntp.drift"
    write_drift_file(path, 1_000.0)
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_RENAME, str(path)], capture_output=True)
    assert crashed.returncode == 9, crashed.stderr
    assert path.read_text() == "1.000000\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ntp.drift.")  # the half-done write, not the file
    drift = DriftFile(path)
    assert drift.load(0) == pytest.approx(1_000.0)  # the next start reads the old value...
    assert [p.name for p in tmp_path.iterdir()] == ["ntp.drift"]  # ...and clears the leftover


def test_oversized_file_ignored_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ntp.drift"
    path.write_bytes(b"1" + b" " * MAX_FILE_BYTES + b"\n")
    with caplog.at_level(logging.WARNING):
        assert read_drift_file(path) is None
    assert any("larger than" in r.getMessage() for r in caplog.records)


# -- DriftFile: what the daemon holds ----------------------------------------------


def status(mode: Mode = Mode.TRACKING, frequency_ppb: float = -25_123.5, sd_ppb: float = 5.0) -> DisciplineStatus:
    return DisciplineStatus(mode, frequency_ppb, sd_ppb, 0.0, 1_000.0, 1_000, 100, 0, 0)


def test_drift_file_writes_at_most_hourly_while_tracking(tmp_path: Path) -> None:
    path = tmp_path / "drift"
    drift = DriftFile(path)
    assert drift.load(0) is None
    assert not drift.update(H - 1, status())  # the first hour counts from the start
    assert not path.exists()
    assert drift.update(H, status())
    assert read_drift_file(path) == pytest.approx(-25_123.5)
    assert not drift.update(H + 60 * NS_PER_S, status(frequency_ppb=-25_000.0))
    assert read_drift_file(path) == pytest.approx(-25_123.5)
    assert drift.update(2 * H, status(frequency_ppb=-25_000.0))
    assert read_drift_file(path) == pytest.approx(-25_000.0)
    assert drift.writes == 2


@pytest.mark.parametrize(
    "st",
    [
        status(Mode.UNSYNCHRONISED),
        status(Mode.HOLDOVER),  # no samples: the estimate is not being checked
        status(sd_ppb=WRITE_MAX_SD_PPB * 2),  # a first rough estimate
        replace(status(), updates=WRITE_MIN_UPDATES - 1),  # too soon: the loop's sd is optimistic at first
    ],
    ids=["unsynchronised", "holdover", "rough", "too-soon"],
)
def test_drift_file_not_written_unless_tracking_with_a_good_estimate(tmp_path: Path, st: DisciplineStatus) -> None:
    drift = DriftFile(tmp_path / "drift")
    drift.load(0)
    assert not drift.update(5 * H, st)
    assert not (tmp_path / "drift").exists()


def test_drift_file_close_writes_a_good_estimate_even_in_holdover(tmp_path: Path) -> None:
    drift = DriftFile(tmp_path / "drift")
    drift.load(0)
    assert drift.close(10 * NS_PER_S, status(Mode.HOLDOVER, 3_000.0))
    assert read_drift_file(tmp_path / "drift") == pytest.approx(3_000.0)
    assert not DriftFile(tmp_path / "other").close(0, status(Mode.UNSYNCHRONISED))
    assert not DriftFile(tmp_path / "other").close(0, status(sd_ppb=50_000.0))
    assert not (tmp_path / "other").exists()


def test_unwritable_drift_file_is_a_warning_once_an_hour(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = blocker / "drift"  # its directory is a file: every write fails
    drift = DriftFile(path)
    with caplog.at_level(logging.WARNING):
        assert drift.load(0) is None
        assert not drift.update(H, status())
        assert not drift.update(H + 1, status())  # not retried at once
        assert not drift.update(2 * H, status())
        assert not drift.close(2 * H + 1, status())
    assert drift.failures == 3 and drift.writes == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "unreadable, starting without it" in warned[0]  # at start: a cold start, said once
    assert len(warned) == 4 and all(str(path) in m and "not written" in m for m in warned[1:])


# -- the daemon's wiring (loopback only, soft clock: the host clock is never touched) ----------


def appliance(config_text: str, simulation: bool = False) -> Appliance:
    config = parse_config(config_text, "t.conf")
    return Appliance(
        config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation() if simulation else None
    )


def test_daemon_starts_warm_from_the_drift_file_and_keeps_a_good_file_at_close(tmp_path: Path) -> None:
    path = tmp_path / "drift"
    write_drift_file(path, -12_345.0)
    gps = f"refclock nmea unit 0 path {tmp_path}/no-such-tty baud 9600\n"  # retried in the background
    app = appliance(f"driftfile {path}\n{gps}")
    try:
        assert app.clock is not None and app.timekeeper is not None and app.drift_file is not None
        assert app.drift_file.path == path
        assert app.clock.frequency_ppb() == pytest.approx(-12_345.0)
        assert app.timekeeper.discipline.frequency_ppb == pytest.approx(-12_345.0)
    finally:
        app.close()
    # never synchronised: the shutdown does not overwrite the file with an untested estimate
    assert path.read_text() == "-12.345000\n"
    assert app.drift_file.writes == 0


def test_daemon_without_driftfile_or_with_a_bad_one_starts_cold(tmp_path: Path) -> None:
    gps = f"refclock nmea unit 0 path {tmp_path}/no-such-tty baud 9600\n"
    (tmp_path / "drift").write_text("garbage\n")
    for text in (gps, f"driftfile {tmp_path}/drift\n{gps}", f"driftfile\n{gps}"):
        app = appliance(text)
        try:
            assert app.clock is not None and app.clock.frequency_ppb() == 0.0
            assert app.timekeeper is not None and app.timekeeper.discipline.frequency_ppb == 0.0
        finally:
            app.close()
    assert (tmp_path / "drift").read_text() == "garbage\n"


def test_simulation_keeps_its_drift_file_in_a_temporary_directory(tmp_path: Path) -> None:
    configured = tmp_path / "var-lib" / "drift"
    configured.parent.mkdir()
    write_drift_file(configured, 7_000.0)
    app = appliance(f"driftfile {configured}\n", simulation=True)
    try:
        assert app.drift_file is not None
        sim_path = app.drift_file.path
        assert sim_path.name == "drift" and sim_path.parent != configured.parent
        assert sim_path.parent.parent == Path(tempfile.gettempdir())
        assert app.clock is not None and app.clock.frequency_ppb() == 0.0  # the configured file is not read
    finally:
        app.close()
    assert not sim_path.parent.exists()
    assert configured.read_text() == "7.000000\n"
