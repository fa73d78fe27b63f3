"""systemd integration at the edge: readiness notification, watchdog pings and journal-friendly logging."""

from __future__ import annotations

import logging
import os
import socket
import sys


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd's notify socket; False when not under systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(state.encode(), path)
        except OSError:
            return False
    return True


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec=``), s; None when systemd asks for no pings.

    systemd sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``: the pings are for
    that process only) when the unit has ``WatchdogSec=``.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return usec / 2e6


class _JournalFormatter(logging.Formatter):
    """Prefix each line with its syslog priority (``<3>`` ...), which journald reads from stderr."""

    _PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(target: str = "auto", verbose: bool = False) -> None:
    """Log to stderr: plain lines with times for a terminal, priority-prefixed lines for the journal.

    ``target`` is ``stderr``, ``journal`` or ``auto`` (journal when systemd
    connected stderr to it, as ``JOURNAL_STREAM`` says).
    """
    if target == "auto":
        target = "journal" if os.environ.get("JOURNAL_STREAM") else "stderr"
    handler = logging.StreamHandler(sys.stderr)
    if target == "journal":
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
