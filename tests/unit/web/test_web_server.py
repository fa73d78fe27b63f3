"""``stratum1 web`` as a process: it listens where --listen says, answers over real HTTP, and ends on SIGTERM."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

from status_sample import SNAP
from support import ROOT

from appliance.io.statussock import StatusServer
from appliance.status.snapshot import Snapshot


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_the_process_serves_the_socket_over_http(tmp_path: Path) -> None:
    status = StatusServer(str(tmp_path / "status.sock"), group=None)
    status.publish(SNAP.to_json().encode() + b"\n")
    status.start()
    port = free_tcp_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "appliance", "web", "--listen", f"127.0.0.1:{port}", "--socket", status.path]
        + ["--statsdir", str(tmp_path)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                code, h, body = request(port, "GET", "/status.json")
                break
            except OSError:
                assert time.monotonic() < deadline and web.poll() is None, "stratum1 web did not start"
                time.sleep(0.1)
        assert code == 200 and Snapshot.from_json(body) == SNAP and h["cache-control"] == "no-store"
        assert h["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["server"] == "stratum1-web"  # no software versions for a scanner to match
        code, h, body = request(port, "HEAD", "/")
        assert code == 200 and body == b"" and int(h["content-length"]) > 1000
        code, h, body = request(port, "POST", "/")
        assert code == 405 and h["allow"] == "GET, HEAD"
        code, h, body = request(port, "GET", "/plot.svg")
        assert code == 200 and b"no loopstats lines" in body  # an empty statsdir: the drawing says so
    finally:
        web.terminate()  # our own process, by its PID
        _, err = web.communicate(timeout=10)
        status.close()
    assert web.returncode == 0 and f"serving http://127.0.0.1:{port}/" in err.decode()


def test_with_no_daemon_the_page_names_the_socket_and_what_to_do(tmp_path: Path) -> None:
    from appliance.web.server import make_app

    path = str(tmp_path / "status.sock")
    app = make_app(path, str(tmp_path))
    page = app.route("/")[2].decode()
    assert f"no status: {path}: no status socket (is &#x27;stratum1 serve&#x27; running?" in page
    status, _, body, _ = app.route("/status.json")
    assert status.startswith("503") and f"{path}: no status socket (is 'stratum1 serve' running?" in body.decode()


def test_an_ipv6_listen_address_is_printed_in_brackets() -> None:
    from appliance.exporter import host_port

    assert host_port("::1", 9123) == "[::1]:9123" and host_port("192.168.1.5", 8080) == "192.168.1.5:8080"
