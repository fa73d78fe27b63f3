"""The network namespace a thread is in (Linux ``/proc/thread-self/ns/net``), to put another thread there.

An appliance built inside a test's private network namespace serves from a
thread of its own (``Appliance.start_thread``); that thread must join the
namespace the appliance was built in, or its upstream client's sockets and
name lookups would be the host's. ``setns(2)`` through ``ctypes`` (needs
CAP_SYS_ADMIN when the namespaces differ).
"""

from __future__ import annotations

import os


class NetNs:
    """The network namespace a thread is in (Linux), to put another thread there (``setns``)."""

    _PATH = "/proc/thread-self/ns/net"
    _CLONE_NEWNET = 0x40000000

    def __init__(self, fd: int, inode: int) -> None:
        self.fd = fd
        self.inode = inode

    @classmethod
    def current(cls) -> NetNs | None:
        try:
            fd = os.open(cls._PATH, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # not Linux: one namespace
        return cls(fd, os.fstat(fd).st_ino)

    def enter(self) -> None:
        """Move the calling thread into this namespace, if it is elsewhere (needs CAP_SYS_ADMIN then)."""
        try:
            if os.stat(self._PATH).st_ino == self.inode:
                return
        except OSError:
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self.fd, self._CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter the appliance's network namespace: {os.strerror(err)}")

    def close(self) -> None:
        os.close(self.fd)
