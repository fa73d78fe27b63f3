"""The web status page's WSGI application: headers, methods, the JSON, the page's facts and its escaping."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
from status_sample import HOLDOVER, SNAP, UNSYNC

from appliance.status.snapshot import Snapshot
from appliance.web.app import StatusApp, shipped_static
from appliance.web.page import SKY_NOTE

Response = tuple[str, dict[str, str], bytes]


def call(app: StatusApp, path: str, method: str = "GET") -> Response:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))
    return got["status"], got["headers"], body


def app_for(snap: Snapshot | None, plot: Callable[[], str] = lambda: "<svg/>") -> StatusApp:
    def read() -> bytes:
        if snap is None:
            raise FileNotFoundError(2, "No such file or directory")
        return snap.to_json().encode() + b"\n"

    return StatusApp(read, plot)


class Text(HTMLParser):
    """The page's text by element id, and the sources table's rows as cell lists."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.scripts: list[dict[str, str | None]] = []
        self._open: list[str] = []
        self._in_body_rows = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if a.get("id"):
            self._open.append(str(a["id"]))
            self.by_id[str(a["id"])] = ""
        if tag == "tbody":
            self._in_body_rows = True
        if tag == "tr" and self._in_body_rows:
            self.rows.append([])
        if tag == "td" and self._in_body_rows:
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body_rows = False
        if tag in ("dd", "p", "ul", "dl") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in self._open:
            self.by_id[key] += data
        if self._in_body_rows and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def parse(body: bytes) -> Text:
    t = Text()
    t.feed(body.decode())
    return t


@pytest.mark.parametrize("path", ["/", "/status.json", "/plot.svg", "/static/status.js", "/nothing"])
def test_every_answer_carries_the_security_headers(path: str) -> None:
    status, h, _ = call(app_for(SNAP), path)
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert status.startswith("404" if path == "/nothing" else "200")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_only_get_and_head(method: str) -> None:
    status, h, body = call(app_for(SNAP), "/", method)
    assert status == "405 Method Not Allowed" and h["Allow"] == "GET, HEAD" and b"<html" not in body


def test_head_has_the_headers_and_no_body() -> None:
    _, get_h, get_body = call(app_for(SNAP), "/status.json")
    status, h, body = call(app_for(SNAP), "/status.json", "HEAD")
    assert status.startswith("200") and body == b"" and h["Content-Length"] == str(len(get_body))


def test_json_is_the_snapshot_and_never_cached() -> None:
    status, h, body = call(app_for(HOLDOVER), "/status.json")
    assert status.startswith("200") and h["Content-Type"] == "application/json" and h["Cache-Control"] == "no-store"
    assert Snapshot.from_json(body) == HOLDOVER
    # the words the script shows are status/text.py's, carried beside the snapshot: the script keeps no copy
    assert json.loads(body)["words"] == {
        "headline": "synchronised to reference clock (holdover) at stratum 1",
        "level": "warning",
    }
    sky = json.loads(body)["gps"]["sky"]
    assert sky[0] == dict(system="GPS", prn=3, elevation_deg=21, azimuth_deg=174, snr_dbhz=29, used=True)
    status, h, body = call(app_for(None), "/status.json")
    assert status.startswith("503") and h["Cache-Control"] == "no-store"
    assert "status socket did not answer" in json.loads(body)["error"]


def test_page_shows_what_stratum1_status_shows() -> None:
    status, h, body = call(app_for(SNAP), "/")
    assert h["Content-Type"] == "text/html; charset=utf-8" and h["Cache-Control"] == "no-store"
    t = parse(body)
    assert t.by_id["headline"] == "synchronised to reference clock (GPS(0), refid PPS) at stratum 1"
    assert (t.by_id["f-stratum"], t.by_id["f-refid"], t.by_id["f-basis"]) == ("1", "PPS", "refclock")
    assert (t.by_id["f-offset"], t.by_id["f-jitter"]) == ("-3.981 us", "1.725 us")
    assert t.by_id["f-frequency"] == "+0.444 ppm"
    assert t.by_id["alarms"] == "none"
    assert [r[:6] for r in t.rows] == [
        ["o", "GPS(0)", "refclock", "127.127.20.0", "PPS", "0"],
        ["+", "ntp.example.org", "server", "192.0.2.10", "192.0.2.1", "2"],
        ["#", "LOCAL(0)", "local", "127.127.1.0", "LOCL", "10"],
    ]
    assert (t.by_id["f-gps-fix"], t.by_id["f-gps-used"], t.by_id["f-gps-seen"]) == ("three_d", "9", "12")
    assert t.by_id["sky"] == SKY_NOTE  # the script draws the sky


def test_page_in_holdover_and_unsynchronised() -> None:
    t = parse(call(app_for(HOLDOVER), "/")[2])
    assert t.by_id["f-basis"] == "holdover" and "WARNING holdover" in t.by_id["alarms"]
    assert t.by_id["headline"] == "synchronised to reference clock (holdover) at stratum 1"
    t = parse(call(app_for(UNSYNC), "/")[2])
    assert t.by_id["headline"] == "unsynchronised" and t.by_id["f-stratum"] == "16"
    assert t.by_id["f-gps-fix"] == "none configured"
    t = parse(call(app_for(None), "/")[2])
    assert t.by_id["headline"].startswith("no status: ") and t.rows == []


def test_source_names_and_alarm_texts_are_escaped() -> None:
    evil = "<script>alert(1)</script>&\"'"
    snap = replace(SNAP, sources=(replace(SNAP.sources[1], name=evil, refid="<b>"),), version="<i>v</i>")
    body = call(app_for(snap), "/")[2].decode()
    assert "<script>alert" not in body and "<b>" not in body and "<i>v" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;" in body
    t = parse(body.encode())
    assert t.rows[0][1] == evil and t.rows[0][4] == "<b>" and t.by_id["f-version"] == "<i>v</i>"


def test_no_inline_script_or_style_and_every_asset_is_shipped() -> None:
    body = call(app_for(SNAP), "/")[2].decode()
    t = parse(body.encode())
    assert t.scripts == [{"src": "/static/status.js", "defer": None}]
    assert "<style" not in body and " style=" not in body and not re.search(r"\son[a-z]+=", body)
    assert not re.search(r"(src|href)=\"(https?:)?//", body)  # nothing from elsewhere: works offline
    assert 'name="viewport"' in body
    for name in re.findall(r"(?:src|href)=\"/static/([^\"]+)\"", body):
        status, h, asset = call(app_for(SNAP), f"/static/{name}")
        assert status.startswith("200") and asset == shipped_static()[name]
    assert set(shipped_static()) == {"status.js", "status.css"}
    js = shipped_static()["status.js"].decode()
    assert "innerHTML" not in js and "eval(" not in js and 'fetch("/status.json"' in js
    for said in ("holdover", "reference clock", "NTP server", "synchronised to"):  # text.py's words, not the script's
        assert said not in js, said


def test_static_serves_only_the_shipped_names() -> None:
    for path in ("/static/../app.py", "/static/", "/static/status.js/..", "/static/%2e%2e/page.py"):
        assert call(app_for(SNAP), path)[0].startswith("404")


def test_plot_is_the_day_plot() -> None:
    status, h, body = call(app_for(SNAP, lambda: '<svg xmlns="http://www.w3.org/2000/svg"/>'), "/plot.svg")
    assert h["Content-Type"].startswith("image/svg+xml") and body.startswith(b"<svg")


def test_listen_wants_a_numeric_address() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "appliance", "web", "--listen", "localhost"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "give a numeric address" in bad.stderr
    none = subprocess.run([sys.executable, "-m", "appliance", "web"], capture_output=True, text=True)
    assert none.returncode == 2 and "--listen" in none.stderr  # no default address at all
