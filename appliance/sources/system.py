"""The system state that follows from a selection (RFC 5905 section 11.2.3, "clock_update"; pure).

From the system peer of a :class:`~appliance.sources.selection.Selection`:

- **stratum**: the peer's plus one. A refclock serves us stratum 0, so with
  the GPS we serve 1. The local clock serves its fudged stratum as it is
  (:mod:`appliance.refclock.local`: ``fudge 127.127.1.0 stratum 10`` means
  10, as chrony's ``local stratum 10``). 16 or more is unsynchronised.
- **reference ID**: a refclock's or the local clock's code (``PPS``,
  ``GPS``, ``LOCL``); for an NTP server its IPv4 address, or for IPv6 the
  first four octets of the MD5 digest of the address (RFC 5905 section 7.3;
  an IPv4-mapped IPv6 address counts as IPv4).
- **root delay**: the peer's root delay plus the delay to it.
- **root dispersion**: the peer's root dispersion, plus its filter
  dispersion, plus the system jitter, plus the absolute combined offset,
  plus whatever the discipline says its own error is (ntpd's system root
  dispersion). The PHI growth since the reference time is *not* included:
  :meth:`SystemState.root_dispersion_at` adds it when a reply is built, so a
  state stays honest without being recomputed.
- **leap**: the selection's (the peer's, or the majority vote).
- **reference time**: when the peer's filter last ran (its newest sample).

With no system peer the result is unsynchronised, unless ``previous`` (the
state served until now) was synchronised and its root distance
(``root_delay / 2 + root_dispersion``, grown at PHI) is still below MAXDIST:
then it is kept, so that losing every source for a while is *holdover*, with
an error bound that grows honestly, rather than a cliff. At 15 ppm that
holdover lasts at most about a day.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import replace

from appliance.ntp.packet import LEAP_UNSYNC
from appliance.sources.filter import phi_growth
from appliance.sources.selection import Selection
from appliance.sources.source import MAXDIST_NS, SourceEstimate, SourceKind
from appliance.state import STRATUM_UNSYNC, SystemState, local_clock_state


def refid_for_address(address: str) -> bytes:
    """The reference ID a server synchronised to ``address`` sends (RFC 5905 section 7.3).

    IPv4: the four address octets. IPv6: the first four octets of the MD5
    digest of the 16 address octets. A ``%scope`` suffix is ignored.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped.packed
        return hashlib.md5(ip.packed, usedforsecurity=False).digest()[:4]
    return ip.packed


def system_refid(peer: SourceEstimate) -> bytes:
    """The reference ID we serve while ``peer`` is the system peer."""
    if peer.kind is SourceKind.SERVER and peer.address is not None:
        return refid_for_address(peer.address)
    return peer.refid


def system_stratum(peer: SourceEstimate) -> int:
    """The stratum we serve while ``peer`` is the system peer (16: unsynchronised)."""
    if peer.kind is SourceKind.LOCAL:
        return min(peer.stratum, STRATUM_UNSYNC)
    return min(peer.stratum + 1, STRATUM_UNSYNC)


def system_state(
    selection: Selection,
    now_ns: int,
    precision: int,
    *,
    discipline_error_ns: int = 0,
    previous: SystemState | None = None,
) -> SystemState:
    """The state to serve after ``selection`` (made at ``now_ns``); ``precision`` is log2 s.

    ``discipline_error_ns`` is the discipline's own error estimate (how far
    the clock may be from where it steers it), added to the root
    dispersion. See the module docstring for ``previous``.
    """
    peer = selection.peer
    if peer is None or peer.updated_ns is None:
        return _holdover(previous, now_ns, precision)
    if peer.kind is SourceKind.LOCAL:
        refid = peer.refid.rstrip(b"\0").decode("ascii", "replace") or "LOCL"
        return local_clock_state(system_stratum(peer), precision, peer.updated_ns, refid)
    stratum = system_stratum(peer)
    if stratum >= STRATUM_UNSYNC:
        return SystemState(precision=precision)
    # the peer's dispersion as it was at its update; SystemState grows it from there
    dispersion = peer.dispersion_ns - phi_growth(now_ns - peer.updated_ns)
    root_dispersion = (
        peer.root_dispersion_ns
        + max(0, dispersion)
        + selection.jitter_ns
        + abs(selection.offset_ns)
        + max(0, discipline_error_ns)
    )
    return SystemState(
        leap=selection.leap,
        stratum=stratum,
        precision=precision,
        root_delay_ns=peer.root_delay_ns + peer.delay_ns,
        root_dispersion_ns=root_dispersion,
        refid=system_refid(peer),
        reference_ns=peer.updated_ns,
    )


def _holdover(previous: SystemState | None, now_ns: int, precision: int) -> SystemState:
    if previous is not None and previous.synchronised and previous.leap != LEAP_UNSYNC:
        distance = previous.root_delay_ns // 2 + previous.root_dispersion_at(now_ns)
        if distance < MAXDIST_NS:
            return replace(previous, precision=precision)
    return SystemState(precision=precision)
