"""The drift file: round trip, bad content ignored with a warning, atomic writes, hourly decision."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.clock.drift import (
    WRITE_INTERVAL_NS,
    DriftFileError,
    format_drift,
    parse_drift,
    read_drift_file,
    should_write,
    write_drift_file,
)

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
