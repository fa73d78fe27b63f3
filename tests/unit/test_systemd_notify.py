"""Type=notify and WatchdogSec= as the daemon sees them: READY=1 once serving, WATCHDOG=1 from its event loop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def test_daemon_says_ready_then_pings_the_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}  # pings every 0.2 s
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
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(1.5)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
        cmd = [sys.executable, "-m", "appliance.cli", "serve", "-l", "127.0.0.1", "-p", "0", "--log", "stderr"]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            assert sock.recv(256) == b"READY=1"
            try:
                extra = sock.recv(256)
            except TimeoutError:
                extra = b""
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert extra == b""
