"""Asking for mode 6 variables (RFC 9327), sans I/O: the request, the reply's checks, ``name=value`` parsing.

The other side of :mod:`appliance.ntp.mode6`, for readers that may not open the status socket: the display
process (``stratum1 lcd``) runs without group ``stratum1`` and reads what ``ntpq -c rv`` and ``ntpq -c cv``
read, over loopback, where the shipped config answers mode 6 (``restrict 127.0.0.1`` without ``noquery``).

- :func:`request`: a READVAR (2) or READCLOCK (4) request for association ``assoc`` (0: the system, or for
  READCLOCK the system peer's clock), every variable (no names asked);
- :func:`reply`: the response's data after the checks a client makes (a response, no error bit, our opcode
  and sequence, one fragment: our server answers in one, RFC 9327 section 2's M bit clear, offset 0);
- :func:`variables`: ``a=1, b="text", c=0x...`` into a dict, quotes removed (ntpd's encoding, values never
  contain a comma outside quotes);
- :func:`ntp_time_ns`: an NTP 32.32 timestamp as ntpd writes it (``0xeeba1da7.0cda1b54``) as POSIX ns.
"""

from __future__ import annotations

import struct

from appliance.timebase import ns_from_ntp64

HEADER = struct.Struct("!BBHHHHH")
OP_READVAR = 2
OP_READCLOCK = 4
_VERSION = 2  # what ntpq sends (mode 6 keeps version 2 on the wire)


def request(opcode: int, seq: int, assoc: int = 0) -> bytes:
    """A mode 6 request asking association ``assoc`` for all its variables."""
    return HEADER.pack((_VERSION << 3) | 6, opcode & 0x1F, seq & 0xFFFF, 0, assoc & 0xFFFF, 0, 0)


def reply(data: bytes, opcode: int, seq: int) -> tuple[int, bytes]:
    """(status word, data) of the response to our request; ValueError when it is not one we can use."""
    if len(data) < HEADER.size:
        raise ValueError("mode 6 reply shorter than its header")
    b0, b1, got_seq, status, _assoc, offset, count = HEADER.unpack_from(data)
    if b0 & 7 != 6 or not b1 & 0x80:
        raise ValueError("not a mode 6 response")
    if (b1 & 0x1F) != opcode or got_seq != seq & 0xFFFF:
        raise ValueError("a mode 6 response to another request")
    if b1 & 0x40:
        raise ValueError(f"mode 6 error {status >> 8}")
    if b1 & 0x20 or offset != 0 or HEADER.size + count > len(data):
        raise ValueError("a fragmented or cut mode 6 response")
    return status, data[HEADER.size : HEADER.size + count]


def variables(data: bytes) -> dict[str, str]:
    """``name=value`` pairs (ntpd's encoding) as a dict; quotes taken off string values."""
    out: dict[str, str] = {}
    text = data.decode("ascii", "replace")
    for part in _split(text):
        name, eq, value = part.partition("=")
        name = name.strip()
        if name and eq:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out[name] = value
    return out


def _split(text: str) -> list[str]:
    """Split at commas outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def ntp_time_ns(text: str, pivot_ns: int) -> int | None:
    """``0xSSSSSSSS.FFFFFFFF`` as POSIX ns (the era nearest ``pivot_ns``); None when it is not one, or zero."""
    if not text.startswith("0x") or "." not in text:
        return None
    secs, _, frac = text[2:].partition(".")
    try:
        ts = int(secs, 16) << 32 | int(frac, 16)
    except ValueError:
        return None
    return ns_from_ntp64(ts, pivot_ns) if ts else None
