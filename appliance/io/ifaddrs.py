"""The machine's interface addresses, through libc's ``getifaddrs`` (for ``interface listen NAME|PREFIX``).

:func:`interface_addresses` returns ``(interface name, address)`` for
every IPv4 and IPv6 address of the interfaces that are up, in the order
the kernel lists them; an IPv6 link-local address carries its ``%scope``
(the interface name), as ``bind`` needs it. libc is called through
``ctypes.CDLL(None)`` (as :mod:`appliance.io.shm` does).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket

_IFF_UP = 0x1


class _IfAddrs(ctypes.Structure):
    pass


_IfAddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_IfAddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.c_void_p),
    ("ifa_netmask", ctypes.c_void_p),
    ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
]


def _address(sa: int) -> str | None:
    """The address in the ``struct sockaddr`` at ``sa`` (IPv4 or IPv6), else None."""
    family = ctypes.c_ushort.from_address(sa).value
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, ctypes.string_at(sa + 4, 4))
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, ctypes.string_at(sa + 8, 16))
    return None


def interface_addresses() -> tuple[tuple[str, str], ...]:
    """``(name, address)`` of every address of every interface that is up; OSError when libc fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.getifaddrs.argtypes = [ctypes.POINTER(ctypes.POINTER(_IfAddrs))]
    libc.getifaddrs.restype = ctypes.c_int
    libc.freeifaddrs.argtypes = [ctypes.POINTER(_IfAddrs)]
    head = ctypes.POINTER(_IfAddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"getifaddrs: {os.strerror(err)}")
    out: list[tuple[str, str]] = []
    try:
        node = head
        while node:
            ifa = node.contents
            if ifa.ifa_addr and ifa.ifa_flags & _IFF_UP and ifa.ifa_name is not None:
                name = ifa.ifa_name.decode("utf-8", "replace")
                address = _address(ifa.ifa_addr)
                if address is not None:
                    if ipaddress.ip_address(address).is_link_local and ":" in address:
                        address = f"{address}%{name}"
                    out.append((name, address))
            node = ifa.ifa_next
    finally:
        libc.freeifaddrs(head)
    return tuple(out)
