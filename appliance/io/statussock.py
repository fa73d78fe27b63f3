"""The local status door: a Unix stream socket that hands every reader the latest snapshot as one JSON line.

Like chronyc's ``/run/chrony/chronyd.sock``, but read-only and one-shot: a reader connects, receives the
snapshot (:func:`appliance.status.payload.status_line`: its JSON with the command texts rendered, then
``\\n``) and the connection is closed.
Nothing is read from readers, so there is nothing to parse and nothing they can ask for.

Why readers cannot slow serving:

- the socket is served by its own thread (:class:`StatusServer`; the daemon starts it when its loop runs,
  after ``-u``'s privilege switch, since capabilities are per thread), never the daemon's event loop; the loop
  only swaps in the newest encoded snapshot (:meth:`StatusServer.publish`: one reference assignment, the
  JSON encoded once per snapshot, not per reader);
- every write is non-blocking into a bounded buffer (one snapshot); a reader that has not taken it all
  within :data:`DEADLINE_S` is dropped and counted (``slow``);
- at most :data:`MAX_READERS` at once (more are accepted and closed at once, counted ``busy``), and at most
  :data:`ACCEPT_RATE` connections a second: past that the thread sleeps and the kernel's backlog holds the
  rest (a flooding reader costs the serving thread no Python time, so no GIL time either); counted
  ``deferred`` when the thread had to wait.

One path, one daemon: a socket file left by a run that ended without closing (nobody answers on it) is
replaced; one a running daemon serves, or a file that is not a socket, is left alone and the new server
fails with ``EADDRINUSE``/``EEXIST`` (:func:`_clear_stale`); :meth:`StatusServer.close` removes the socket
file only if it is still the one it made.

Permissions: the socket file is mode 0660 and, when a group of that name exists, group ``stratum1``
(:data:`GROUP`): members read the status unprivileged (``stratum1 status`` over SSH).
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass

from appliance.io.statusclient import DEFAULT_PATH, MAX_SNAPSHOT, read_status, unix_address

__all__ = ["DEFAULT_PATH", "MAX_SNAPSHOT", "StatusServer", "read_status"]

log = logging.getLogger("stratum1.status")

GROUP = "stratum1"
MAX_READERS = 16
DEADLINE_S = 1.0
ACCEPT_RATE = 200


@dataclass(slots=True)
class StatusCounters:
    served: int = 0
    slow: int = 0
    busy: int = 0
    deferred: int = 0
    errors: int = 0


def _clear_stale(path: str) -> None:
    """Remove a socket file a previous run left at ``path``; refuse to take one that is served, or a file.

    A daemon that ended without its close (a crash, SIGKILL) leaves its socket file behind: connecting
    to it is refused, and it is removed. One that answers belongs to a running daemon (the installed
    service, while ``serve --simulate`` is tried beside it): taking its path would leave that daemon's
    readers (``stratum1 status``, the LCD, the exporter) with nothing, so this raises ``EADDRINUSE``.
    Anything that is not a socket is left as it is (``EEXIST``).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, "exists and is not a socket (left as it is)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        with unix_address(path) as address:
            probe.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody listens: stale
    except PermissionError as e:
        raise OSError(errno.EACCES, "a socket this user may not probe (left as it is)") from e
    except OSError as e:  # a daemon so busy its backlog is full is still a daemon
        raise OSError(errno.EADDRINUSE, f"in use by a running daemon ({e.strerror or e})") from e
    else:
        raise OSError(errno.EADDRINUSE, "in use by a running daemon (another 'stratum1 serve')")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


#: The selector's mark for the wake-up socket of :meth:`StatusServer.close`.
_WAKE = object()


@dataclass(slots=True)
class _Reader:
    sock: socket.socket
    pending: memoryview
    deadline: float


class StatusServer:
    """Serves the latest snapshot on ``path`` from a thread of its own; see the module docstring."""

    def __init__(self, path: str, *, group: str | None = GROUP) -> None:
        self.path = path
        self.counters = StatusCounters()
        self._payload = b"{}\n"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _clear_stale(path)
            with unix_address(path) as address:
                self._sock.bind(address)
            st = os.stat(path)
            #: The socket file this server made: close() removes that one, never another's made since.
            self._made = (st.st_dev, st.st_ino)
            os.chmod(path, 0o660)
            if group is not None:
                try:
                    os.chown(path, -1, grp.getgrnam(group).gr_gid)
                except (KeyError, PermissionError):
                    pass  # no such group (a developer's machine), or not ours to give: owner only
            self._sock.listen(64)
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # close() writes a byte here so the thread's wait ends at once (not at its next 0.2 s timeout)
        self._wake_r, self._wake_w = socket.socketpair()

    def publish(self, payload: bytes) -> None:
        """Hand readers ``payload`` (one JSON line) from now on; called from the daemon's loop."""
        if len(payload) <= MAX_SNAPSHOT:
            self._payload = payload

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stratum1-status", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._wake_w.send(b"\0")
            self._thread.join(2)
            self._thread = None
        self._sock.close()
        self._wake_r.close()
        self._wake_w.close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._made:
                os.unlink(self.path)
        except OSError:
            pass

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        readers: dict[int, _Reader] = {}
        window_start = time.monotonic()
        accepted = 0
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.data is _WAKE:
                        break  # close(): the loop's test ends it
                    if key.data is None:
                        now = time.monotonic()
                        if now - window_start >= 1.0:
                            window_start, accepted = now, 0
                        if accepted >= ACCEPT_RATE:
                            self.counters.deferred += 1
                            time.sleep(max(0.0, 1.0 - (now - window_start)))
                            continue
                        accepted += self._accept(sel, readers)
                    else:
                        self._write(sel, readers, key.fd)
                now = time.monotonic()
                for fd, r in list(readers.items()):
                    if now > r.deadline:
                        self.counters.slow += 1
                        self._drop(sel, readers, fd)
        finally:
            for fd in list(readers):
                self._drop(sel, readers, fd)
            sel.close()

    def _accept(self, sel: selectors.BaseSelector, readers: dict[int, _Reader]) -> int:
        n = 0
        for _ in range(8):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.counters.errors += 1
                break
            n += 1
            if len(readers) >= MAX_READERS:
                self.counters.busy += 1
                conn.close()
                continue
            conn.setblocking(False)
            r = _Reader(conn, memoryview(self._payload), time.monotonic() + DEADLINE_S)
            readers[conn.fileno()] = r
            sel.register(conn, selectors.EVENT_WRITE, r)
            self._write(sel, readers, conn.fileno())
        return n

    def _write(self, sel: selectors.BaseSelector, readers: dict[int, _Reader], fd: int) -> None:
        r = readers.get(fd)
        if r is None:
            return
        try:
            sent = r.sock.send(r.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.counters.errors += 1
            self._drop(sel, readers, fd)
            return
        r.pending = r.pending[sent:]
        if not r.pending:
            self.counters.served += 1
            self._drop(sel, readers, fd)

    @staticmethod
    def _drop(sel: selectors.BaseSelector, readers: dict[int, _Reader], fd: int) -> None:
        r = readers.pop(fd, None)
        if r is None:
            return
        try:
            sel.unregister(r.sock)
        except (KeyError, ValueError):
            pass
        r.sock.close()
