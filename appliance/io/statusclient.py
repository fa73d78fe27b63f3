"""The status socket's client side: one snapshot's JSON from the daemon (imports ``socket`` alone, to start fast).

The server side is :mod:`appliance.io.statussock`; ``stratum1 status`` and the exporter read through here.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager

#: Where the daemon listens by default (systemd's RuntimeDirectory=stratum1).
DEFAULT_PATH = "/run/stratum1/status.sock"
#: A snapshot larger than this is neither sent nor read (a bound on what either side holds).
MAX_SNAPSHOT = 1 << 20


#: The longest path ``sockaddr_un`` holds (108 octets with its NUL on Linux).
MAX_UNIX_PATH = 107


@contextmanager
def unix_address(path: str) -> Iterator[str]:
    """``path`` as an address ``bind``/``connect`` take, however long it is.

    A Unix socket's address holds 107 octets; a longer path (a deep ``TMPDIR``) is reached through the
    directory's descriptor, ``/proc/self/fd/N/NAME``, valid while the block runs.
    """
    if len(os.fsencode(path)) <= MAX_UNIX_PATH:
        yield path
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def read_status(path: str = DEFAULT_PATH, timeout_s: float = 2.0) -> bytes:
    """One snapshot's JSON from the daemon at ``path`` (OSError when it does not answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        with unix_address(path) as address:
            s.connect(address)
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


def explain(path: str, e: OSError) -> str:
    """What a reader of the socket at ``path`` says when ``read_status`` failed with ``e``: why, and what to do."""
    running = "is 'stratum1 serve' running? systemctl status stratum1"
    if isinstance(e, FileNotFoundError):
        return f"{path}: no status socket ({running})"
    if isinstance(e, PermissionError):
        return f"{path}: permission denied (join the 'stratum1' group: sudo adduser $USER stratum1)"
    if isinstance(e, ConnectionRefusedError):
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True
        if not is_socket:
            return f"{path}: not a socket (--socket names the daemon's status socket, {DEFAULT_PATH} by default)"
        return f"{path}: nothing answers on it: the daemon that made it has stopped ({running})"
    if isinstance(e, TimeoutError):
        return f"{path}: the daemon did not answer in time (busy or stuck? systemctl status stratum1)"
    return f"{path}: {e.strerror or e}"
