"""The system state that the server hands to every client (RFC 5905 section 11.2.2, "system variables").

Its own module, below both ``ntp/`` (the server serves it) and ``sources/``
(selection computes it), so neither package imports the other's state: the
leap indicator codes (RFC 5905 section 7.3, "LI") and ``refid_from_text``
live here too, and :mod:`appliance.ntp.packet` takes them from here.

One frozen value: leap indicator, stratum, precision, root delay, root
dispersion, reference ID and reference time. The selection layer computes a
new one whenever its choice changes; the server reads whatever is current.
Root dispersion grows with time since the reference time at PHI (15 ppm,
RFC 5905 section 7.3), so the value served is honest without a new state.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Leap indicator codes (RFC 5905 figure 9): none, 61 s, 59 s, unsynchronised.
LEAP_NONE = 0
LEAP_INSERT = 1
LEAP_DELETE = 2
LEAP_UNSYNC = 3


def refid_from_text(code: str) -> bytes:
    """Return the 4-octet reference ID for an ASCII code such as ``GPS`` or ``LOCL`` (NUL padded).

    >>> refid_from_text("PPS")
    b'PPS\\x00'
    """
    raw = code.encode("ascii")
    if len(raw) > 4:
        raise ValueError(f"reference ID {code!r} is longer than 4 characters")
    return raw + b"\0" * (4 - len(raw))


#: Frequency tolerance, the rate at which dispersion grows (RFC 5905: 15e-6 s/s), in ppb.
PHI_PPB = 15_000
#: The stratum of an unsynchronised server (served as 16 in packets, RFC 5905 "MAXSTRAT").
STRATUM_UNSYNC = 16


@dataclass(frozen=True, slots=True)
class SystemState:
    """What the appliance says about its own time.

    ``root_delay_ns`` and ``root_dispersion_ns`` are the totals to the primary
    reference at ``reference_ns`` (POSIX ns, None when never synchronised).
    ``precision`` is log2 seconds. ``public_unsync`` asks the server to tell
    clients that only a default restrict entry matches (``restrict default``,
    ``-4 default``, ``-6 default`` or the implicit default) that it is
    unsynchronised (leap 3, stratum 16), while clients matched by a more
    specific ``restrict`` line get this state. The local clock's state sets
    it (:class:`appliance.refclock.local.LocalClock`, config ``localclock
    public unsync``, the default), so the public and the Pool's monitors are
    never handed a free-running clock; GPS and upstream states leave it off.
    """

    leap: int = LEAP_UNSYNC
    stratum: int = STRATUM_UNSYNC
    precision: int = -20
    root_delay_ns: int = 0
    root_dispersion_ns: int = 0
    refid: bytes = b"INIT"
    reference_ns: int | None = None
    public_unsync: bool = False

    @property
    def synchronised(self) -> bool:
        """Leap 0 to 2 and a stratum of 1 to 15: stratum 0 is a Kiss-o'-Death's (RFC 5905 section 7.3), never ours."""
        return self.leap != LEAP_UNSYNC and 1 <= self.stratum < STRATUM_UNSYNC

    def root_dispersion_at(self, now_ns: int) -> int:
        """Root dispersion in ns at ``now_ns``: the stated value plus PHI times the age."""
        if self.reference_ns is None:
            return self.root_dispersion_ns
        age = max(0, now_ns - self.reference_ns)
        return self.root_dispersion_ns + age * PHI_PPB // 1_000_000_000


UNSYNCHRONISED = SystemState()


def local_clock_state(
    stratum: int, precision: int, reference_ns: int, refid: str = "LOCL", *, public_unsync: bool = False
) -> SystemState:
    """A synchronised state at ``stratum`` with no root delay or dispersion of its own.

    The free-running local clock (``server 127.127.1.0``) is served with it,
    ``public_unsync`` set as configured (see :class:`SystemState`).
    """
    return SystemState(
        leap=LEAP_NONE,
        stratum=stratum,
        precision=precision,
        root_delay_ns=0,
        root_dispersion_ns=0,
        refid=refid_from_text(refid),
        reference_ns=reference_ns,
        public_unsync=public_unsync,
    )
