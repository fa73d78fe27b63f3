"""Shared test helpers: where the test data is, whether missing tools skip or fail, the receiver logs."""

from __future__ import annotations

import datetime as dt
import os
import re
import select
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Receiver logs, seed configs, leap files, ntpd's mode 6 answers: all in the repository (tests/data/README.md).
DATA = ROOT / "tests" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """Skip the test when ``condition`` is false, or fail it under CI, where every tool must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)


def nmea_logs(data: Path) -> list[Path]:
    """The receiver logs (gpsd's regression suite) in ``data/nmea``."""
    logs = sorted((data / "nmea").glob("*.log"))
    assert logs, f"no *.log in {data / 'nmea'}"
    return logs


def log_payload(log: Path) -> bytes:
    """The bytes the receiver sent: the log without its ``#`` header lines (as gpsfake does)."""
    lines = log.read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(b"#"))


def log_build_date_ns(log: Path) -> int:
    """The log's ``# Date:`` header as POSIX ns: stands for "the firmware was built no later than the capture"."""
    m = re.search(rb"^# Date:\s*(\d{4})-(\d{1,2})-(\d{1,2})", log.read_bytes(), re.M)
    assert m, f"{log.name}: no '# Date:' header"
    day = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.UTC)
    return int(day.timestamp()) * 1_000_000_000


def unit_service_settings(unit: Path) -> list[tuple[str, str]]:
    """A systemd unit file's ``[Service]`` settings in order, as (key, value): comments and other sections skipped."""
    section, out = "", []
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section == "[Service]":
            out.append((key, value))
    return out


#: Sent by a server's socket after it has answered: the replies (sent before it, on loopback) are all in.
END_OF_REPLIES = b"end of the replies"


def replies_before_marker(server: socket.socket, client: socket.socket) -> list[bytes]:
    """The datagrams ``server`` has sent to ``client`` so far: read up to an end marker ``server`` sends now.

    On loopback the datagrams of one socket arrive in order, so the marker comes after every reply sent
    before this call: no waiting for a silence."""
    server.sendto(END_OF_REPLIES, client.getsockname())
    replies = []
    while select.select([client], [], [], 5.0)[0]:
        data = client.recv(2048)
        if data == END_OF_REPLIES:
            assert not select.select([client], [], [], 0)[0], "a datagram after the end marker"
            return replies
        replies.append(data)
    raise AssertionError(f"no end marker within 5 s (after {len(replies)} replies)")
