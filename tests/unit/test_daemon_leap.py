"""The daemon reads the leap-second table: served leap bits, the loud expiry warning, a bad file named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.leap import load_leapfile, render_leapfile
from appliance.ntp.packet import LEAP_INSERT, LEAP_NONE

S = 1_000_000_000
DAY = 86_400 * S
JAN_2027 = 1_798_761_600 * S  # 2027-01-01T00:00:00Z
REAL = Path(__file__).resolve().parents[1] / "data" / "leap" / "leap-seconds-2025b.list"


def write_table(path: Path, *, expires_ns: int) -> None:
    """tzdata's table (the copy in tests/data) with one more leap at the end of 2026-12-31 (TAI-UTC 37 -> 38)."""
    real = load_leapfile(str(REAL))
    entries = [(e.at_ns, e.tai_offset_s) for e in real.entries] + [(JAN_2027, 38)]
    path.write_text(render_leapfile(JAN_2027 - 200 * DAY, expires_ns, entries))


def app_at(tmp_path: Path, now_ns: int, leapfile: Path) -> Appliance:
    config = parse_config(f"server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nleapfile {leapfile}\n", "t.conf")
    return Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), read_ns=lambda: now_ns)


def test_leap_bits_served_on_the_last_day_only(tmp_path: Path) -> None:
    leapfile = tmp_path / "leap-seconds.list"
    write_table(leapfile, expires_ns=JAN_2027 + 180 * DAY)
    for now, expected in [
        (JAN_2027 - DAY - S, LEAP_NONE),
        (JAN_2027 - DAY + S, LEAP_INSERT),
        (JAN_2027 + S, LEAP_NONE),
    ]:
        app = app_at(tmp_path, now, leapfile)
        try:
            assert app.leap_table is not None
            assert app.current_state(now).leap == expected, now
        finally:
            app.close()


def test_expired_table_is_warned_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    leapfile = tmp_path / "leap-seconds.list"
    write_table(leapfile, expires_ns=JAN_2027 - 30 * DAY)
    app = app_at(tmp_path, JAN_2027 - 2 * DAY, leapfile)
    app.close()
    assert any("WARNING: leap-second file" in r.getMessage() and "expired on" in r.getMessage() for r in caplog.records)


def test_damaged_table_is_named_and_serving_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    leapfile = tmp_path / "leap-seconds.list"
    write_table(leapfile, expires_ns=JAN_2027 + 180 * DAY)
    leapfile.write_text(leapfile.read_text().replace("\t38", "\t39"))
    app = app_at(tmp_path, JAN_2027 - 2 * DAY, leapfile)
    try:
        assert app.leap_table is None and app.addresses
        messages = [r.getMessage() for r in caplog.records]
        assert any(str(leapfile) in m for m in messages), messages
        assert any("running without a leap-second table" in m for m in messages)
    finally:
        app.close()


def test_a_replaced_leap_file_is_read_again_without_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """tzdata upgraded (the file replaced, a new leap second in it): within the hour the new table decides the
    served leap bits, as ntpd reads a changed leapfile again; at a SIGHUP at once. A file that no longer loads
    leaves the table read before in use."""
    caplog.set_level(logging.INFO)
    leapfile = tmp_path / "leap-seconds.list"
    old = load_leapfile(str(REAL))  # no leap at the end of 2026 in it, expired in mid-2026
    leapfile.write_text(
        render_leapfile(old.updated_ns, old.expires_ns, [(e.at_ns, e.tai_offset_s) for e in old.entries])
    )
    now = JAN_2027 - DAY + S  # the last day of 2026
    app = app_at(tmp_path, now, leapfile)
    try:
        assert app.current_state(now).leap == LEAP_NONE
        app.check_leap_file()  # unchanged: nothing read
        assert not any("read again" in r.getMessage() for r in caplog.records)
        replacement = tmp_path / "new.list"
        write_table(replacement, expires_ns=JAN_2027 + 180 * DAY)
        replacement.replace(leapfile)  # as dpkg installs a file: a new inode under the old name
        app.check_leap_file()
        assert app.leap_table is not None and app.leap_table.expires_ns == JAN_2027 + 180 * DAY
        assert app.current_state(now).leap == LEAP_INSERT
        assert any("leap-second table" in r.getMessage() and "read again" in r.getMessage() for r in caplog.records)
        leapfile.write_text("garbage\n")  # broken: the table read before stays
        assert not app.refresh_leap_table("SIGHUP")
        assert app.current_state(now).leap == LEAP_INSERT
        assert any("still using the leap-second table read before" in r.getMessage() for r in caplog.records)
    finally:
        app.close()


def test_sighup_reads_the_leap_file_again(tmp_path: Path) -> None:
    leapfile = tmp_path / "leap-seconds.list"
    write_table(leapfile, expires_ns=JAN_2027 - 30 * DAY)
    now = JAN_2027 - 2 * DAY
    app = app_at(tmp_path, now, leapfile)
    try:
        write_table(leapfile, expires_ns=JAN_2027 + 180 * DAY)  # rewritten in place
        report = app.reload(app.config)
        assert "leap-second table" in report.applied
        assert app.leap_table is not None and not app.leap_table.expired(now)
        assert "leap-second table" not in app.reload(app.config).applied  # the same file: nothing to apply
    finally:
        app.close()
