"""The web status page in a real browser: Debian's chromium, headless, against a simulated appliance.

The appliance runs ``--simulate``'s GPS HAT (a fake receiver writing NMEA into a pty and a fake PPS) with its
status socket and loopstats files in a temporary directory; ``stratum1 web`` runs as its own process on a
loopback port against that socket. Chromium loads the page, runs its script for a few seconds of virtual
time (``--virtual-time-budget``) and prints the DOM it then has (``--dump-dom``): the test reads what a
person sees there (the stratum, the refid, the basis, the sources table's rows, the live chart that the
script draws as ``<svg>``, the GPS sky it draws from the fake receiver's GSV and GSA: one ``circle.sat`` per
satellite with a position, filled when used). Then the receiver is unplugged and the pulses stop, as in
test_fallback.py: the page must say holdover.

The screenshot goes to ``docs/images/web-status.png`` when ``STRATUM1_WRITE_DOCS=1``::

    STRATUM1_WRITE_DOCS=1 python -m pytest -m interop tests/interop/test_web_browser.py

Every process is the test's own, ended by its PID; everything stays on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from harness import free_port
from support import ROOT, require

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.sources.timekeeper import Basis

CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
statsdir {statsdir}
statistics loopstats
"""
SCREENSHOT = ROOT / "docs" / "images" / "web-status.png"
PHONE_SCREENSHOT = ROOT / "docs" / "images" / "web-status-phone.png"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class Seen(HTMLParser):
    """The text of each element with an id, the sources table's rows, and the <svg> elements inside #live."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.live_svg: list[str] = []
        self.sky: list[tuple[str, str]] = []  # (tag, class) of every element inside #sky
        self._stack: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "img", "meta", "link", "input"):
            return
        ident = dict(attrs).get("id")
        if any(i == "live" for _, i in self._stack):  # inside #live
            self.live_svg.append(tag)
        if any(i == "sky" for _, i in self._stack):
            self.sky.append((tag, dict(attrs).get("class") or ""))
        self._stack.append((tag, ident))
        if ident:
            self.by_id[ident] = ""
        ids = [i for _, i in self._stack]
        if tag == "tr" and "sources" in ids and any(t == "tbody" for t, _ in self._stack):
            self.rows.append([])
        if tag == "td" and self.rows:
            self.rows[-1].append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if any(i == "live" for _, i in self._stack):
            self.live_svg.append(tag)
        if any(i == "sky" for _, i in self._stack):
            self.sky.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._stack:
            if ident:
                self.by_id[ident] += data
        if self._stack and self._stack[-1][0] == "td" and self.rows:
            self.rows[-1][-1] += data


def chromium_args(chromium: str, profile: Path) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def run_chromium(args: list[str]) -> str:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()  # our own chromium, by its PID
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out


def seen(chromium: str, profile: Path, url: str) -> Seen:
    page = Seen()
    page.feed(run_chromium([*chromium_args(chromium, profile), "--dump-dom", url]))
    return page


def has_sky(app: Appliance) -> bool:
    snap = app.snapshot
    return snap is not None and snap.gps is not None and len(snap.gps.sky) >= 8


@pytest.mark.interop
def test_the_page_in_chromium_shows_the_appliance_and_its_holdover(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    require(chromium is not None, "chromium is missing (./run-tests installs it as root: .ci/apt-install-safe)")
    assert chromium is not None
    stats = tmp_path / "stats"
    stats.mkdir()
    sock = str(tmp_path / "status.sock")
    config = parse_config(CONF.format(statsdir=stats), "web.conf")
    settings = ServeSettings(listen=("127.0.0.1",), port=free_port(), status_socket=sock)
    app = Appliance(config, settings, simulation=Simulation())
    app.start_thread()
    web: subprocess.Popen[bytes] | None = None
    try:
        tk = app.timekeeper
        assert tk is not None
        wait_for(lambda: tk.basis is Basis.REFCLOCK and app.server.state.stratum == 1, 60, "locked to the GPS")
        wait_for(lambda: any(stats.glob("loopstats*")), 30, "a loopstats line")
        # the receiver sends its GSV groups every few seconds: a lock can come before the first whole sky
        wait_for(lambda: has_sky(app), 30, "the GPS sky in the snapshot")
        port = free_tcp_port()
        web = subprocess.Popen(
            [sys.executable, "-m", "appliance", "web", "--listen", f"127.0.0.1:{port}", "--socket", sock]
            + ["--statsdir", str(stats)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: answers(url), 30, "the web page")
        with urllib.request.urlopen(url + "plot.svg", timeout=5) as r:
            plot = r.read().decode()
        assert "<polyline" in plot, plot[:500]  # the day's plot draws the loopstats lines

        # 1. locked to the GPS: what a person sees once the script has run
        page = seen(chromium, tmp_path / "profile", url)
        assert page.by_id["f-stratum"] == "1" and page.by_id["f-refid"] == "PPS"
        assert page.by_id["f-basis"] == "refclock"
        assert page.by_id["updated"].startswith("read-only; updated ")  # the script's fetch() came back
        peers = [row for row in page.rows if row[0] in ("*", "o")]  # the sources table: the GPS, selected
        assert len(page.rows) == 1 and len(peers) == 1 and peers[0][2:5] == ["refclock", "127.127.20.0", "PPS"]
        name = peers[0][1]
        assert page.by_id["headline"] == f"synchronised to reference clock ({name}, refid PPS) at stratum 1"
        assert page.live_svg[:1] == ["svg"] and "polyline" in page.live_svg  # the live chart, drawn by the JS
        assert page.by_id["f-gps-fix"] == "three_d" and page.by_id["f-gps-pps"] == "ok"
        # the sky, drawn by the script: every satellite the fake receiver places, the used ones filled
        snap = app.snapshot
        assert snap is not None and snap.gps is not None
        placed = [s for s in snap.gps.sky if s.elevation_deg is not None and s.azimuth_deg is not None]
        sats = [cls.split() for tag, cls in page.sky if tag == "circle" and cls.startswith("sat")]
        assert len(placed) >= 8 and len(sats) == len(placed), (placed, page.sky)
        assert sum("used" in c for c in sats) == sum(s.used for s in placed) > 0
        assert {c[1] for c in sats} >= {"snr-30", "snr-20"}  # the signal shows as colour
        assert ("ul", "legend") in page.sky and page.by_id["sky"].count("dB-Hz") >= 1

        shot = tmp_path / "web-status.png"
        run_chromium(
            [*chromium_args(chromium, tmp_path / "profile"), "--hide-scrollbars", "--window-size=900,1500"]
            + [f"--screenshot={shot}", url]
        )
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        phone = tmp_path / "web-status-phone.png"  # a phone's width: one column, the sky as wide as the screen
        run_chromium(
            [*chromium_args(chromium, tmp_path / "profile"), "--hide-scrollbars", "--window-size=390,1900"]
            + [f"--screenshot={phone}", url]
        )
        assert phone.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("STRATUM1_WRITE_DOCS") == "1":
            shutil.copyfile(shot, SCREENSHOT)
            shutil.copyfile(phone, PHONE_SCREENSHOT)

        # 2. the receiver unplugged and the pulses stopped: holdover, and the page says so
        app.fakes["pty"].unplug()
        app.fakes["pps"].stop()
        wait_for(lambda: tk.basis is Basis.HOLDOVER, 30, "holdover")
        page = seen(chromium, tmp_path / "profile", url)
        assert page.by_id["f-basis"] == "holdover"
        assert page.by_id["headline"] == "synchronised to reference clock (holdover) at stratum 1"
        assert "WARNING holdover" in page.by_id["alarms"] and page.by_id["f-gps-pps"] == "missing"
        assert page.by_id["f-stratum"] == "1"
        # the receiver is not there: the page says so, not "no fix"
        assert page.by_id["f-gps-fix"].startswith("receiver gone (") and "gps-gone" in page.by_id["alarms"]
    finally:
        if web is not None:
            web.terminate()  # by its PID
            try:
                _, err = web.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                web.kill()
                web.wait()
            else:
                assert web.returncode == 0, err.decode()[-2000:]
        app.stop()
        app.close()
