"""The status socket's client side: one snapshot's JSON from the daemon (imports ``socket`` alone, to start fast).

The server side is :mod:`appliance.io.statussock`; ``stratum1 status`` and the exporter read through here.
"""

from __future__ import annotations

import socket

#: Where the daemon listens by default (systemd's RuntimeDirectory=stratum1).
DEFAULT_PATH = "/run/stratum1/status.sock"
#: A snapshot larger than this is neither sent nor read (a bound on what either side holds).
MAX_SNAPSHOT = 1 << 20


def read_status(path: str = DEFAULT_PATH, timeout_s: float = 2.0) -> bytes:
    """One snapshot's JSON from the daemon at ``path`` (OSError when it does not answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(path)
        chunks = []
        total = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_SNAPSHOT:
                raise OSError(f"{path}: the status is larger than {MAX_SNAPSHOT} octets")
    return b"".join(chunks)
