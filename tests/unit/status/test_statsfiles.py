"""ntpd's loopstats / peerstats / clockstats lines, daily files and links, and the daemon writing them."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from status_sample import NOW, SNAP

from appliance.config import parse_config
from appliance.config.model import Filegen
from appliance.io.statsfiles import StatsWriter
from appliance.status.statsfiles import (
    StatsPlan,
    file_name,
    loopstats_line,
    mjd_seconds,
    parse_loopstats,
    parse_peerstats,
    peerstats_line,
)
from appliance.timebase import NS_PER_S

ALL = frozenset({"loopstats", "peerstats", "clockstats"})


def test_mjd_and_seconds_past_midnight() -> None:
    assert mjd_seconds(0) == (40587, 0.0)
    # 2026-11-23 00:00:00 UTC is MJD 61367
    assert mjd_seconds(1_795_392_000 * NS_PER_S + 75_440_031_000_000) == (61367, 75440.031)


def test_loopstats_and_peerstats_lines_in_ntpd_columns() -> None:
    f = loopstats_line(SNAP).split()
    assert len(f) == 7 and f[2] == "-0.000003981" and f[3] == "0.444000" and f[6] == "4"
    p = peerstats_line(NOW, SNAP.sources[0]).split()
    assert p[2] == "127.127.20.0" and p[3] == "9700" and p[4] == "-0.000006389"
    point = parse_peerstats(" ".join(p))[0]
    assert point.address == "127.127.20.0" and abs(point.t - NOW / 1e9) < 0.001
    assert parse_loopstats(" ".join(f) + "\ngarbage line\n")[0].frequency == 0.444


def test_daily_file_names() -> None:
    gen = Filegen("loopstats", "loopstats")
    assert file_name(gen, 1_795_392_000 * NS_PER_S) == "loopstats.20261123"
    assert file_name(replace(gen, type="none"), 0) == "loopstats"


def test_plan_writes_once_per_poll_interval_and_only_new_measurements() -> None:
    plan = StatsPlan()
    first = plan.due(SNAP, ALL)
    assert sorted(name for name, _ in first) == ["clockstats", "loopstats", "peerstats", "peerstats"]
    later = replace(SNAP, time_ns=NOW + NS_PER_S)
    assert plan.due(later, ALL) == []  # nothing new, and within the poll interval
    moved = replace(
        SNAP,
        time_ns=NOW + 16 * NS_PER_S,
        system=replace(SNAP.system, reference_ns=NOW + 16 * NS_PER_S),
        sources=(replace(SNAP.sources[0], updated_ns=NOW + 16 * NS_PER_S), *SNAP.sources[1:]),
    )
    names = sorted(name for name, _ in plan.due(moved, ALL))
    assert names == ["clockstats", "loopstats", "peerstats"]  # the server's sample is not new, its poll is 64 s


def test_writer_appends_daily_files_and_links_today(tmp_path: Path) -> None:
    w = StatsWriter(str(tmp_path), [Filegen("loopstats", "loopstats"), Filegen("peerstats", "peers", link=False)])
    w.observe(SNAP)
    day = file_name(Filegen("loopstats", "loopstats"), NOW)
    assert (tmp_path / day).read_text().count("\n") == 1
    assert os.readlink(tmp_path / "loopstats") == day
    assert not (tmp_path / "peers").exists() and (tmp_path / f"peers.{day.split('.')[1]}").exists()
    assert not list(tmp_path.glob("clockstats*"))  # not enabled


def test_files_are_readable_by_the_group_under_the_units_umask(tmp_path: Path) -> None:
    """The unit runs with UMask=0077; the web page and 'stratum1 plot' read the files as group stratum1."""
    old = os.umask(0o077)
    try:
        w = StatsWriter(str(tmp_path), [Filegen("loopstats", "loopstats")])
        w.observe(SNAP)
    finally:
        os.umask(old)
    day = tmp_path / file_name(Filegen("loopstats", "loopstats"), NOW)
    assert day.stat().st_mode & 0o777 == 0o640 and w.lines == 1


def test_missing_statsdir_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    w = StatsWriter(str(tmp_path / "missing"), [Filegen("loopstats", "loopstats")])
    w.observe(SNAP)
    assert w.errors == 1 and w.lines == 0


def test_the_daemon_writes_what_the_config_asks(tmp_path: Path) -> None:
    from appliance.daemon import Appliance, ServeSettings, Simulation

    text = f"statsdir {tmp_path}\nstatistics loopstats peerstats clockstats\nfilegen clockstats disable\n"
    app = Appliance(parse_config(text, "t.conf"), ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation())
    app.start_thread()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (
            list(tmp_path.glob("loopstats.*")) and list(tmp_path.glob("peerstats.*"))
        ):
            time.sleep(0.05)
    finally:
        app.stop()
        app.close()
    (peers,) = tmp_path.glob("peerstats.2*")
    assert "127.127.20.0" in peers.read_text()
    (loops,) = tmp_path.glob("loopstats.2*")
    assert parse_loopstats(loops.read_text())
    assert not list(tmp_path.glob("clockstats*"))
