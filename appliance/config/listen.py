"""Where to serve: the ``interface`` lines against the machine's addresses (pure; the addresses are passed in).

ntpd's and NTPsec's ``interface listen`` (ntp_misc(5), misc-options): ``all``
and ``wildcard`` every address, ``ipv4``/``ipv6`` every address of that
family, an address that one, ``ADDRESS/PREFIX`` the machine's addresses in
that network, a name (``eth0``) that interface's addresses. Without
``interface listen`` lines: every address. ``interface ignore wildcard``
binds each address of the machine instead of the wildcard ``0.0.0.0`` and
``::``.

:func:`listen_plan` takes the lines and the machine's addresses as
``(interface name, address)`` pairs (:func:`appliance.io.ifaddrs.interface_addresses`
gives them; an IPv6 link-local address carries its ``%scope``) and returns
the addresses to bind and a file:line warning for each line that names
nothing here. A plan with lines but no address is never widened to the
wildcard: the caller refuses to serve (the user asked for somewhere else).

>>> from appliance.config.model import Listen, Location
>>> here = [("lo", "127.0.0.1"), ("eth0", "192.0.2.7"), ("eth0", "fe80::1%eth0"), ("wlan0", "198.51.100.3")]
>>> at = Location("ntp.conf", 3)
>>> listen_plan((Listen("eth0", at),), here).addresses
('192.0.2.7', 'fe80::1%eth0')
>>> listen_plan((Listen("198.51.100.0/24", at),), here).addresses
('198.51.100.3',)
>>> listen_plan((), here).addresses
('0.0.0.0', '::')
>>> listen_plan((Listen("wildcard", at, action="ignore"), Listen("ipv4", at)), here).addresses
('127.0.0.1', '192.0.2.7', '198.51.100.3')
>>> for w in listen_plan((Listen("eth1", at),), here).warnings:
...     print(w.message)
interface listen eth1: no interface named eth1 here (there are lo, eth0, wlan0), so it adds nothing to listen on
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.config.model import ConfigWarning, Listen

#: Every address: the IPv4 and the IPv6 wildcard.
ALL_ADDRESSES = ("0.0.0.0", "::")
_WILDCARD = {4: "0.0.0.0", 6: "::"}


@dataclass(frozen=True, slots=True)
class ListenPlan:
    """The addresses to bind (in the order the lines give them) and what the lines name that is not here."""

    addresses: tuple[str, ...]
    warnings: tuple[ConfigWarning, ...] = ()


def _version(address: str) -> int:
    return ipaddress.ip_address(address.split("%")[0]).version


def listen_plan(lines: Sequence[Listen], interfaces: Sequence[tuple[str, str]]) -> ListenPlan:
    """The addresses the ``interface`` lines choose among ``interfaces`` (see the module docstring)."""
    ignore_wildcard = any(x.action == "ignore" and x.address == "wildcard" for x in lines)
    wanted = [x for x in lines if x.action == "listen"]
    chosen: list[str] = []
    warnings: list[ConfigWarning] = []

    def family(version: int | None) -> list[str]:
        if not ignore_wildcard:
            return list(ALL_ADDRESSES) if version is None else [_WILDCARD[version]]
        return [a for _, a in interfaces if version is None or _version(a) == version]

    if not wanted:
        chosen = family(None)
    for entry in wanted:
        a = entry.address
        found: list[str]
        if a in ("all", "wildcard"):
            found = family(None)
        elif a in ("ipv4", "ipv6"):
            found = family(int(a[-1]))
        elif "/" in a:
            net = ipaddress.ip_network(a, strict=False)
            found = [x for _, x in interfaces if ipaddress.ip_address(x.split("%")[0]) in net]
            if not found:
                warnings.append(
                    ConfigWarning(
                        entry.location,
                        f"interface listen {a}: no address of this machine is in {net}, "
                        "so it adds nothing to listen on",
                    )
                )
        else:
            try:
                found = [str(ipaddress.ip_address(a.split("%")[0])) + (a[a.index("%") :] if "%" in a else "")]
            except ValueError:
                found = [x for name, x in interfaces if name == a]
                if not found:
                    names = list(dict.fromkeys(name for name, _ in interfaces))
                    why = "it has no address" if a in names else f"no interface named {a} here"
                    there = f" (there are {', '.join(names)})" if a not in names and names else ""
                    warnings.append(
                        ConfigWarning(
                            entry.location, f"interface listen {a}: {why}{there}, so it adds nothing to listen on"
                        )
                    )
        chosen += found
    return ListenPlan(_without_shadowed(chosen), tuple(warnings))


def _without_shadowed(addresses: list[str]) -> tuple[str, ...]:
    """Each address once; none of a family whose wildcard is bound too (both on one port cannot be bound)."""
    unique = list(dict.fromkeys(addresses))
    wild = {v for v, w in _WILDCARD.items() if w in unique}
    return tuple(a for a in unique if a in ALL_ADDRESSES or _version(a) not in wild)
