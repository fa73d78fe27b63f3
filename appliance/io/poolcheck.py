"""``stratum1 pool-check``'s I/O: the requests a Pool monitor sends, from an address or a network namespace.

:func:`monitor_check` runs one check as :mod:`appliance.pool` describes it
(3 requests 2 s apart on one socket, each waiting up to 3 s) and hands back
a :class:`~appliance.pool.Check`; :func:`reference_offset` measures this
host's clock against trusted upstream servers, so the offset scored is the
server's against them, as the monitors' is.

Where the requests come from matters: a server's own address (or its LAN)
may be allowed what the internet is not. ``source`` binds the socket to an
address of this host the user names (a second public address, a VPN's);
``netns`` opens it inside a named network namespace (``/run/netns/NAME``,
``ip netns``), entered on a short-lived thread with ``setns`` so the calling
thread stays where it is. The socket is connected, so an ICMP port
unreachable comes back as ECONNREFUSED ("refused") and a firewall's silence
as a timeout.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable

from appliance.ntp.exchange import KissOfDeath, client_request, evaluate
from appliance.ntp.packet import PacketError
from appliance.pool import SAMPLES, SPACING_S, TIMEOUT_S, Check, Sample

CLONE_NEWNET = 0x40000000


def open_socket(family: int, *, source: str | None = None, netns: str | None = None) -> socket.socket:
    """A UDP socket of ``family``, bound to ``source`` (port 0) when given, made inside ``netns`` when given."""

    def make() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if source is not None:
                sock.bind((source, 0))
        except OSError:
            sock.close()
            raise
        return sock

    if netns is None:
        return make()
    box: dict[str, object] = {}

    def body() -> None:  # setns moves only this thread; the socket stays in the namespace it was made in
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"cannot enter network namespace {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["sock"] = make()
        except OSError as e:
            box["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["sock"]  # type: ignore[return-value]


def _one(sock: socket.socket, timeout_s: float, read_ns: Callable[[], int]) -> Sample:
    data, sent = client_request(read_ns())
    try:
        sock.send(data)
    except ConnectionRefusedError:  # the ICMP error of an earlier request
        return Sample("refused")
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Sample("timeout")
        sock.settimeout(left)
        try:
            reply = sock.recv(1024)
        except TimeoutError:
            return Sample("timeout")
        except ConnectionRefusedError:
            return Sample("refused")
        t4 = read_ns()
        try:
            m = evaluate(reply, sent, t4)
        except KissOfDeath as e:
            return Sample("kod", kiss=e.code)
        except PacketError:
            continue  # not the answer to this request (stale, or garbage): keep waiting
        # a refid of four capitals at stratum 2 or above is a name all the same (LOCL: ntpd's local clock)
        letters = m.refid.isalpha() and m.refid.isupper()
        refid = m.refid.decode("ascii") if letters else m.refid_text
        return Sample("reply", m.offset_ns, m.delay_ns, m.stratum, m.leap, refid)


def monitor_check(
    address: str,
    port: int = 123,
    *,
    source: str | None = None,
    netns: str | None = None,
    samples: int = SAMPLES,
    spacing_s: float = SPACING_S,
    timeout_s: float = TIMEOUT_S,
    reference_ns: int = 0,
    read_ns: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> Check:
    """One check of ``address``: ``samples`` requests ``spacing_s`` apart (start to start), as a monitor sends them."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    got: list[Sample] = []
    with open_socket(family, source=source, netns=netns) as sock:
        try:
            sock.connect((address, port))
        except OSError as e:
            if e.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
                raise
            return Check(address, tuple(Sample("timeout") for _ in range(samples)), reference_ns)
        for i in range(samples):
            start = time.monotonic()
            got.append(_one(sock, timeout_s, read_ns))
            if i + 1 < samples:
                sleep(max(0.0, spacing_s - (time.monotonic() - start)))
    return Check(address, tuple(got), reference_ns)


def reference_offset(
    servers: list[tuple[str, int]],
    *,
    source: str | None = None,
    netns: str | None = None,
    read_ns: Callable[[], int] = time.time_ns,
) -> tuple[int, list[str]]:
    """This host's clock minus the trusted ``servers``' time (the median of their best offsets), and what was seen.

    Raises OSError when none of them answers.
    """
    offsets: list[int] = []
    seen: list[str] = []
    for host, port in servers:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            seen.append(f"reference {host}: cannot resolve ({e.strerror})")
            continue
        address = str(infos[0][4][0])
        check = monitor_check(address, port, source=source, netns=netns, spacing_s=0.2, timeout_s=2.0, read_ns=read_ns)
        replies = [s for s in check.samples if s.outcome == "reply" and s.leap != 3 and s.stratum not in (0, 16)]
        if not replies:
            seen.append(f"reference {host}: no usable reply")
            continue
        best = min(replies, key=lambda s: s.delay_ns or 0)
        assert best.offset_ns is not None and best.delay_ns is not None
        offsets.append(-best.offset_ns)  # the server minus us, turned round
        seen.append(f"reference {host} ({address}): stratum {best.stratum}, this host {-best.offset_ns / 1e6:+.3f} ms")
    if not offsets:
        raise OSError(errno.EHOSTUNREACH, "no trusted reference server answered")
    return round(statistics.median(offsets)), seen
