"""Network namespaces for tests: private test hosts joined by veth links, never the host's network.

Needs root (``ip netns``). Sockets created inside :meth:`NetNs.call` belong to
that namespace for their whole life, whichever thread uses them later, so a
test can run the appliance in one namespace and clients in another from one
process. Real programs run there with :meth:`NetNs.cmd`.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class NetNs:
    """A network namespace with its loopback up; delete() removes it and everything in it."""

    def __init__(self, tag: str) -> None:
        self.name = f"s1-{tag}-{os.getpid()}-{next(_counter)}"
        _run("ip", "netns", "add", self.name)
        _run("ip", "-n", self.name, "link", "set", "lo", "up")

    def cmd(self, *args: str) -> list[str]:
        """The argv that runs ``args`` inside this namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a thread that has entered this namespace; sockets it opens stay here."""
        box: dict[str, object] = {}

        def body() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            try:
                box["value"] = fn()
            except BaseException as e:  # handed back to the caller's thread
                box["error"] = e

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


def link(a: NetNs, b: NetNs, addrs_a: list[str], addrs_b: list[str]) -> None:
    """Join two namespaces with a veth pair and give each end its addresses (CIDR, IPv6 without DAD)."""
    n = next(_counter)
    ea, eb = f"s1a{os.getpid() % 10000}{n}", f"s1b{os.getpid() % 10000}{n}"
    _run("ip", "link", "add", ea[:15], "netns", a.name, "type", "veth", "peer", "name", eb[:15], "netns", b.name)
    for ns, dev, addrs in ((a, ea[:15], addrs_a), (b, eb[:15], addrs_b)):
        for addr in addrs:
            extra = ["nodad"] if ":" in addr else []
            _run("ip", "-n", ns.name, "addr", "add", addr, "dev", dev, *extra)
        _run("ip", "-n", ns.name, "link", "set", dev, "up")
