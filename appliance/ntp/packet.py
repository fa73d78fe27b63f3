"""NTP packet codec, sans I/O (RFC 5905 section 7.3, RFC 7822 extension fields).

The NTP header is 48 octets, followed by optional extension fields (version 4
only) and an optional message authentication code::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |LI | VN  |Mode |    Stratum     |     Poll      |  Precision   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Root Delay                            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Root Dispersion                       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                          Reference ID                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                     Reference Timestamp (64)                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Origin Timestamp (64)                    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Receive Timestamp (64)                   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Transmit Timestamp (64)                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    .                Extension Field 1 (variable, v4)               .
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |             Key Identifier (32)  +  dgst (128 or 160)         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

An extension field (RFC 7822) is a 16-bit type, a 16-bit length (of the whole
field, a multiple of 4 and at least 16) and the value, padded. What follows
the header is read as: a MAC when exactly 4 (crypto-NAK), 20 (MD5) or 24
(SHA-1) octets remain, else an extension field, repeatedly. Versions 1 to 3
carry no extension fields, only a MAC (or the 12-octet DES MAC of v2/v3).

Fields keep their wire values (timestamps as 64-bit integers, root delay and
dispersion in the 16.16 short format); :mod:`appliance.timebase` converts.
Modes 6 (control) and 7 (private) have headers of their own and are not
decoded here: :func:`peek` tells them apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# the leap indicator codes and refid_from_text live with the system state (appliance.state): re-exported here
from appliance.state import LEAP_DELETE as LEAP_DELETE
from appliance.state import LEAP_INSERT as LEAP_INSERT
from appliance.state import LEAP_NONE as LEAP_NONE
from appliance.state import LEAP_UNSYNC as LEAP_UNSYNC
from appliance.state import refid_from_text as refid_from_text

HEADER = struct.Struct("!BBbbII4sQQQQ")
HEADER_LEN = HEADER.size  # 48
EF_HEADER = struct.Struct("!HH")

MODE_RESERVED = 0
MODE_ACTIVE = 1
MODE_PASSIVE = 2
MODE_CLIENT = 3
MODE_SERVER = 4
MODE_BROADCAST = 5
MODE_CONTROL = 6
MODE_PRIVATE = 7


MIN_VERSION = 1
MAX_VERSION = 4
MAC_LENGTHS_V4 = (4, 20, 24)
MAC_LENGTHS_OLD = (4, 12, 20, 24)
MIN_EF_LEN = 16
#: The longest datagram the server takes, in octets; longer ones are dropped and counted ("oversize").
#: A request carries nothing that needs more (no NTS here), and a reply is never longer than its request.
MAX_DATAGRAM = 1024


class PacketError(ValueError):
    """A datagram that is not a well-formed NTP packet; ``reason`` is a short tag for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """One RFC 7822 extension field: type and value (padding included as sent)."""

    type: int
    value: bytes

    def encode(self) -> bytes:
        body = self.value + b"\0" * (-len(self.value) % 4)
        length = EF_HEADER.size + len(body)
        if length < MIN_EF_LEN:
            body += b"\0" * (MIN_EF_LEN - length)
            length = MIN_EF_LEN
        return EF_HEADER.pack(self.type, length) + body


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """An NTP packet of mode 1 to 5 with its wire values.

    ``root_delay`` and ``root_dispersion`` are 16.16 short-format integers;
    ``reference``, ``origin``, ``receive`` and ``transmit`` are 64-bit NTP
    timestamps (t_ref, T1-style origin, T2-style receive, T3-style transmit in
    RFC 5905's naming on the server side).
    """

    leap: int = LEAP_NONE
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0
    root_dispersion: int = 0
    refid: bytes = b"\0\0\0\0"
    reference: int = 0
    origin: int = 0
    receive: int = 0
    transmit: int = 0
    extensions: tuple[ExtensionField, ...] = field(default=())
    mac: bytes | None = None

    def encode(self) -> bytes:
        """Return the packet as it goes on the wire."""
        head = HEADER.pack(
            (self.leap << 6) | (self.version << 3) | self.mode,
            self.stratum,
            self.poll,
            self.precision,
            self.root_delay,
            self.root_dispersion,
            self.refid,
            self.reference,
            self.origin,
            self.receive,
            self.transmit,
        )
        tail = b"".join(ef.encode() for ef in self.extensions)
        return head + tail + (self.mac or b"")

    @property
    def kiss_code(self) -> str | None:
        """The kiss code (``RATE``, ``DENY``...) if this is a Kiss-o'-Death packet, else None."""
        if self.stratum != 0 or self.mode not in (MODE_SERVER, MODE_PASSIVE):
            return None
        return self.refid.decode("ascii", "replace").rstrip("\0")

    @classmethod
    def decode(cls, data: bytes) -> NtpPacket:
        """Parse a datagram of mode 1 to 5; raise :class:`PacketError` if it is malformed."""
        version, mode = peek(data)
        if mode in (MODE_CONTROL, MODE_PRIVATE):
            raise PacketError("mode", f"mode {mode} is not an NTP time packet")
        if len(data) < HEADER_LEN:
            raise PacketError("short", f"{len(data)} octets")
        fields = HEADER.unpack_from(data)
        extensions, mac = parse_trailer(data, version)
        return cls(
            fields[0] >> 6,
            version,
            mode,
            fields[1],
            fields[2],
            fields[3],
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            fields[8],
            fields[9],
            fields[10],
            extensions,
            mac,
        )


def peek(data: bytes) -> tuple[int, int]:
    """Return ``(version, mode)`` from the first octet; raise PacketError on an empty or bad version."""
    if not data:
        raise PacketError("short", "empty datagram")
    b = data[0]
    version = (b >> 3) & 7
    if version < MIN_VERSION or version > MAX_VERSION:
        raise PacketError("version", f"version {version}")
    return version, b & 7


def parse_trailer(data: bytes, version: int) -> tuple[tuple[ExtensionField, ...], bytes | None]:
    """Walk what follows the 48-octet header: extension fields, then a MAC.

    Raises :class:`PacketError` ("extension" or "long") when the octets do not
    form whole, well-sized fields followed by a MAC of a known length.
    """
    n = len(data)
    pos = HEADER_LEN
    if n == pos:
        return (), None
    if version < 4:
        if n - pos in MAC_LENGTHS_OLD:
            return (), bytes(data[pos:])
        raise PacketError("long", f"{n - pos} trailing octets on a version {version} packet")
    fields: list[ExtensionField] = []
    while pos < n:
        remaining = n - pos
        if remaining in MAC_LENGTHS_V4:
            return tuple(fields), bytes(data[pos:])
        if remaining < MIN_EF_LEN:
            raise PacketError("extension", f"{remaining} stray octets after the header")
        ef_type, length = EF_HEADER.unpack_from(data, pos)
        if length < MIN_EF_LEN or length % 4 or length > remaining:
            raise PacketError("extension", f"extension field of length {length} with {remaining} left")
        fields.append(ExtensionField(ef_type, bytes(data[pos + 4 : pos + length])))
        pos += length
    return tuple(fields), None


def refid_text(refid: bytes, stratum: int) -> str:
    """Render a reference ID as ntpq does: a code for stratum 0/1, an IPv4 address otherwise."""
    if stratum <= 1:
        return refid.decode("ascii", "replace").rstrip("\0")
    return ".".join(str(b) for b in refid)
