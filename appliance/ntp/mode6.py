"""NTP control messages (mode 6, RFC 9327), sans I/O: the part that is safe to answer.

A mode 6 message has a 12-octet header of its own::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |LI | VN  |Mode |R|E|M| OpCode  |        Sequence Number        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            Status             |        Association ID         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            Offset             |            Count              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    .                      Data (up to 468 octets)                  .

The server drops mode 6 from ``noquery`` addresses before it gets here.
This handler answers with the header alone, so a reply is never longer than
its request: READSTAT of association 0 gets the system status word and an
empty association list; writes, traps and the MRU list are refused with
"permission denied" where ``nomodify``/``notrap``/``nomrulist`` say so;
everything else gets "invalid opcode" until the full read protocol (system
and peer variables, for ntpq and ntpstat) is built.
"""

from __future__ import annotations

import struct

from appliance.ntp import access as acl
from appliance.state import SystemState

HEADER = struct.Struct("!BBHHHHH")
HEADER_LEN = HEADER.size  # 12

OP_READSTAT = 1
OP_READVAR = 2
OP_WRITEVAR = 3
OP_READCLOCK = 4
OP_WRITECLOCK = 5
OP_SETTRAP = 6
OP_ASYNCMSG = 7
OP_CONFIGURE = 8
OP_SAVECONFIG = 9
OP_READ_MRU = 10
OP_READ_ORDLIST = 11
OP_REQ_NONCE = 12
OP_UNSETTRAP = 31

ERR_UNSPEC = 0
ERR_AUTH = 1
ERR_FORMAT = 2
ERR_OPCODE = 3
ERR_ASSOC = 4
ERR_UNKNOWNVAR = 5
ERR_BADVALUE = 6
ERR_PERMISSION = 7

_WRITES = frozenset({OP_WRITEVAR, OP_WRITECLOCK, OP_CONFIGURE, OP_SAVECONFIG})
_TRAPS = frozenset({OP_SETTRAP, OP_UNSETTRAP})
_MRU = frozenset({OP_READ_MRU, OP_REQ_NONCE})

#: System status word clock-source codes (RFC 9327 section 2.1 / ntpq).
SOURCE_UNSPEC = 0
SOURCE_PPS = 1
SOURCE_UHF = 4  # GPS and other satellite receivers
SOURCE_LOCAL = 5
SOURCE_NTP = 6


def system_status_word(state: SystemState, source: int = SOURCE_UNSPEC) -> int:
    """The 16-bit system status word: leap (2 bits), clock source (6), event count and code (4+4)."""
    return (state.leap & 3) << 14 | (source & 0x3F) << 8


class ControlHandler:
    """Answers mode 6 requests with header-only replies (never longer than the request)."""

    def __init__(self, source_code: int = SOURCE_UNSPEC) -> None:
        self.source_code = source_code

    def handle(self, data: bytes, flags: int, state: SystemState, now_ns: int) -> bytes | None:
        """Return the reply to one mode 6 datagram, or None to drop it (malformed, or a response)."""
        if len(data) < HEADER_LEN:
            return None
        b0, b1, seq, _status, assoc, _offset, count = HEADER.unpack_from(data)
        if b1 & 0x80:  # a response, not a request: never answer (no loops)
            return None
        if count > len(data) - HEADER_LEN:
            return None
        opcode = b1 & 0x1F
        version = (b0 >> 3) & 7
        if opcode in _WRITES and flags & acl.NOMODIFY:
            return _error(version, opcode, seq, assoc, ERR_PERMISSION)
        if opcode in _TRAPS and flags & acl.NOTRAP:
            return _error(version, opcode, seq, assoc, ERR_PERMISSION)
        if opcode in _MRU and flags & acl.NOMRULIST:
            return _error(version, opcode, seq, assoc, ERR_PERMISSION)
        if opcode == OP_READSTAT and assoc == 0:
            status = system_status_word(state, self.source_code)
            return HEADER.pack((version << 3) | 6, 0x80 | opcode, seq, status, 0, 0, 0)
        return _error(version, opcode, seq, assoc, ERR_OPCODE)


def _error(version: int, opcode: int, seq: int, assoc: int, code: int) -> bytes:
    return HEADER.pack((version << 3) | 6, 0xC0 | opcode, seq, code << 8, assoc, 0, 0)
