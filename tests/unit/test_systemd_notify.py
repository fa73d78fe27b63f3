"""Type=notify and WatchdogSec= as the daemon sees them: READY=1 once serving, WATCHDOG=1 from its event loop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from appliance.ntp.exchange import client_request


def test_daemon_says_ready_then_pings_the_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "40000"}  # pings every 20 ms
        cmd = [sys.executable, "-m", "appliance.cli", "serve", "-l", "127.0.0.1", "-p", "0", "--log", "stderr"]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            messages = []
            deadline = time.monotonic() + 20
            while messages.count(b"WATCHDOG=1") < 3 and time.monotonic() < deadline:
                messages.append(sock.recv(256))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert messages[0] == b"READY=1"
    assert messages[1:4] == [b"WATCHDOG=1"] * 3


def test_no_pings_for_another_process(tmp_path: Path) -> None:
    """WATCHDOG_PID names another process: no pings, though the loop has run through many intervals.

    After READY=1 and ten ping intervals, the daemon answers a request: its loop, which would have run a
    ping timer first (the timers are run before each wait), has sent every ping it was going to by then,
    and a datagram on a Unix socket is queued when sent, so the socket must hold nothing.
    """
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"}
        cmd = [sys.executable, "-m", "appliance.cli", "serve", "-l", "127.0.0.1", "-p", "0", "--log", "stderr"]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            port = None
            while port is None:
                line = proc.stderr.readline()
                assert line, "the daemon ended before serving"
                m = re.search(r"serving NTP on 127\.0\.0\.1:(\d+)", line)
                port = int(m.group(1)) if m else None
            assert sock.recv(256) == b"READY=1"
            time.sleep(0.1)  # ten intervals of the 10 ms pings it would send for itself
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(10)
                client.sendto(client_request(time.time_ns())[0], ("127.0.0.1", port))
                assert client.recv(1024)
            sock.setblocking(False)
            try:
                extra = sock.recv(256)
            except BlockingIOError:
                extra = b""
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
            assert proc.returncode == 0
    assert extra == b""
