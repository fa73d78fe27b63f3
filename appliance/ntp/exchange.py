"""One client/server exchange, sans I/O (RFC 5905 section 8, "on-wire protocol").

:func:`client_request` builds a mode 3 request; :func:`evaluate` checks the
reply against it and :func:`measure` computes, with RFC 5905's names::

    T1 = origin (client transmit)    T2 = server receive
    T3 = server transmit             T4 = client receive
    offset theta = ((T2 - T1) + (T3 - T4)) / 2
    delay  delta = (T4 - T1) - (T3 - T2)

``offset`` is the server's clock minus the client's: positive means the
client is behind. Differences are taken on the 64-bit timestamps modulo
2**64, so the result is right across the 2036 era boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.ntp.packet import (
    LEAP_UNSYNC,
    MODE_CLIENT,
    MODE_PASSIVE,
    MODE_SERVER,
    NtpPacket,
    PacketError,
    refid_text,
)
from appliance.timebase import ns_from_short, ntp64_diff_ns, ntp64_from_ns


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one reply says: offset and delay in ns, and the server's stated state."""

    offset_ns: int
    delay_ns: int
    stratum: int
    leap: int
    refid: bytes
    version: int
    poll: int
    precision: int
    root_delay_ns: int
    root_dispersion_ns: int

    @property
    def refid_text(self) -> str:
        return refid_text(self.refid, self.stratum)

    @property
    def synchronised(self) -> bool:
        return self.leap != LEAP_UNSYNC and 0 < self.stratum < 16


class KissOfDeath(PacketError):
    """The server sent a Kiss-o'-Death; ``code`` is its kiss code (RATE, DENY, RSTR...)."""

    def __init__(self, code: str) -> None:
        super().__init__("kod", code)
        self.code = code


def client_request(t1_ns: int, *, version: int = 4, poll: int = 6) -> tuple[bytes, int]:
    """Return ``(datagram, transmit)``: a mode 3 request sent at ``t1_ns`` and its raw transmit timestamp."""
    xmt = ntp64_from_ns(t1_ns)
    return NtpPacket(version=version, mode=MODE_CLIENT, poll=poll, transmit=xmt).encode(), xmt


def evaluate(data: bytes, sent_transmit: int, t4_ns: int) -> Measurement:
    """Check a reply to a request whose raw transmit timestamp was ``sent_transmit``, received at ``t4_ns``.

    Raises :class:`KissOfDeath` for a KoD and :class:`PacketError` for a
    reply that is malformed, of the wrong mode, or whose origin timestamp is
    not our transmit timestamp (a stale, duplicated or spoofed packet).
    """
    p = NtpPacket.decode(data)
    if p.mode not in (MODE_SERVER, MODE_PASSIVE):
        raise PacketError("mode", f"reply has mode {p.mode}")
    if p.origin != sent_transmit:
        raise PacketError("origin", "origin timestamp does not match our request (bogus or stale reply)")
    kiss = p.kiss_code
    if kiss is not None:
        raise KissOfDeath(kiss)
    return measure(p, sent_transmit, t4_ns)


def measure(p: NtpPacket, t1: int, t4_ns: int) -> Measurement:
    """Offset and delay of a decoded reply ``p`` to a request sent at raw timestamp ``t1``, received at ``t4_ns``.

    The caller has matched the reply to its request (mode, origin, KoD), as
    :func:`evaluate` does; raises :class:`PacketError` when the server's
    transmit timestamp is zero.
    """
    if p.transmit == 0:
        raise PacketError("transmit", "server transmit timestamp is zero")
    t2, t3, t4 = p.receive, p.transmit, ntp64_from_ns(t4_ns)
    offset = (ntp64_diff_ns(t2, t1) + ntp64_diff_ns(t3, t4)) // 2
    delay = ntp64_diff_ns(t4, t1) - ntp64_diff_ns(t3, t2)
    return Measurement(
        offset_ns=offset,
        delay_ns=delay,
        stratum=p.stratum,
        leap=p.leap,
        refid=p.refid,
        version=p.version,
        poll=p.poll,
        precision=p.precision,
        root_delay_ns=ns_from_short(p.root_delay),
        root_dispersion_ns=ns_from_short(p.root_dispersion),
    )
