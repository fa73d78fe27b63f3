"""The ``gpsd`` refclock's I/O: a client of gpsd's JSON socket (TCP, port 2947 by default).

Everything gpsd says is decoded by :mod:`appliance.refclock.gpsd_json`; this
module connects, sends the ``?WATCH`` request, and reads what is there when
the event loop says the socket is readable (:meth:`GpsdDriver.poll`, with
the time of that wake-up: the TPV fallback uses it as the arrival time, TOFF
and PPS reports carry gpsd's own local timestamps). When gpsd closes the
connection the driver closes too and counts it; the caller opens it again
on its next retry (NTPsec retries every 10 s and backs off to 2 minutes).
Connecting blocks for at most ``connect_timeout_s``: gpsd is on this machine
or next to it.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import asdict

from appliance.refclock.driver import Readings
from appliance.refclock.gpsd_json import GpsdJsonParser, watch_command

GPSD_PORT = 2947
_READ_SIZE = 65_536


class GpsdDriver:
    """gpsd's JSON reports of ``device`` (None: every device gpsd has) as samples and pulses."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = GPSD_PORT,
        *,
        device: str | None = None,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.device = device
        self.connect_timeout_s = connect_timeout_s
        self.parser = GpsdJsonParser(device)
        self._sock: socket.socket | None = None
        self.connects = 0
        self.disconnects = 0
        self.open_errors = 0

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        """Connect and ask for JSON reports with PPS; OSError (naming gpsd's address) when it is not there."""
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as e:
            self.open_errors += 1
            raise OSError(e.errno, f"gpsd at {self.host}:{self.port}: {e.strerror or e}") from None
        try:
            sock.sendall(watch_command(self.device))
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            self.open_errors += 1
            raise OSError(e.errno, f"gpsd at {self.host}:{self.port}: {e.strerror or e}") from None
        self.parser.reset()
        self._sock = sock
        self.connects += 1

    def fileno(self) -> int:
        """The socket's descriptor (-1 while closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    def poll(self, now_ns: int) -> Readings:
        """Read what gpsd sent; ``now_ns`` is when the socket was found readable."""
        sock = self._sock
        out = Readings()
        while sock is not None:
            try:
                data = sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.disconnects += 1
                self.close()
                break
            out = out + self.parser.feed(data, now_ns)
        return out

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def counters(self) -> Mapping[str, int]:
        return {
            **asdict(self.parser.counters),
            "connects": self.connects,
            "disconnects": self.disconnects,
            "open_errors": self.open_errors,
        }
