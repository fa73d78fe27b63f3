"""NTP control messages (mode 6, RFC 9327), sans I/O: what ntpq and ntpstat read, nothing they could write.

A mode 6 message has a 12-octet header of its own (RFC 9327 section 2)::

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

R marks a response, E an error (the error code in the status's high octet), M "more fragments follow";
Offset and Count place a fragment's data in the whole response; data is padded to a multiple of 4 octets
(the padding is not counted).

What is answered (from the status snapshot, :mod:`appliance.status.snapshot`):

- READSTAT (1): association 0 gets the system status word and one (association ID, peer status word) pair
  per source (ntpq ``associations``, the first step of ``peers``); association N that source's status
  word and variables (as ntpd's ``read_status``);
- READVAR (2): association 0 the system variables (ntpq ``rv``, ntpstat), association N that source's
  variables (``rv N``, ``peers``); a request that names variables gets those, in its order;
- READCLOCK (4): a reference clock's variables (``cv``), from that clock's own state (the snapshot's
  ``clocks``; the GPS's fix and pulses only for the receiver they are of); association 0 means the system
  peer when it is a clock, else the first clock;
- REQ_NONCE (12) and READ_MRU (10): the MRU list of recent clients (:mod:`appliance.ntp.mru`), as NTPsec's
  ntpd gives it to ``ntpq -c mrulist`` (below).

A request with the E (error) or M (more) bit set, or a nonzero Offset, is no request ntpq sends: it is
dropped, as ntpd's ``process_control`` drops it. Everything else is refused: writes (WRITEVAR,
WRITECLOCK, CONFIGURE, SAVECONFIG) and traps with "permission denied" (they are never carried out,
whatever the restrict flags say), the MRU list and nonces with "permission denied" under ``nomrulist``,
anything unknown with "invalid opcode".

The MRU list (NTPsec ntpd's ``read_mru_list``, as the capture in tests/data/mode6 shows it): the asker first
gets a nonce (REQ_NONCE: ``nonce=`` 24 hex digits: the NTP time it was issued and 32 bits of an HMAC-SHA256
over that time and the asker's address, keyed with a secret made per run), then asks READ_MRU with
``nonce=..., frags=N`` (or ``limit=N`` rows) and, to go on where the last answer stopped, the ``addr.I`` /
``last.I`` of the entries it holds, newest first. A READ_MRU without a nonce this run issued to this
address in the last :data:`NONCE_TIMEOUT_S` seconds is dropped (as ntpd does): so the list is only ever
sent to an address that proved it receives, never reflected at a forged one. The answer starts with a new
nonce, then per entry, least recently seen first from just after the newest given entry still in the table
(none matching: "unknown variable", and ntpq starts over), ``addr.I`` (address:port), ``last.I``,
``first.I`` (NTP timestamps), ``ct.I`` (datagrams), ``mv.I`` (mode and version), ``rs.I`` (the restrict
flags in ntpd's RES_ bits, which ntpq prints); it stops at ``frags`` fragments (at most
:data:`MAX_FRAGMENTS`) or ``limit`` rows, and only once it reached the newest entry ends with ``now=`` and
``last.newest=`` (the last row's last-seen time, when there are rows: ntpq's sign that the list is whole).
The filters ``mincount``, ``resall``, ``resany``, ``minlstint``, ``maxlstint`` and ``recent`` (only the
newest N entries: ntpd's countdown) are applied as ntpd does, numbers read as ntpd's ``sscanf`` reads them
(the leading digits: ntpq sends ``mincount=010`` as ``10.0``); ``laddr`` is accepted and ignored (one table
for every local address), and so is a name ntpd does not know. Score and drop counts (``sc``, ``dr``) are
not kept (ntpq prints "-"): 0 for every entry, so ``mindrop`` or ``minscore`` above 0 lists nobody.

Who gets answers, and how much: the server drops mode 6 from ``noquery`` addresses before it gets here
(``restrict default ... noquery`` in the shipped config: only localhost asks). Replies go only to requests
(R clear). An answer longer than one fragment's 468 octets (:data:`MAX_DATA`) is sent as ntpd sends it, in
fragments (:func:`fragments`: M set on all but the last, Offset and Count placing each, each padded to 4
octets; ntpq reassembles them), at most :data:`MAX_FRAGMENTS` of them: past that an answer is cut at the
last whole variable that fits (an association list at the last whole pair). The rate limit counts
datagrams: a request is answered when the asking address's token bucket (:data:`RATE` a second, bursts of
:data:`BURST`) holds a token, and every fragment of its answer takes one (the bucket may go into debt by
the rest of a long answer, repaid before the next is sent); the rest are dropped and counted by the server.
Each address has its own bucket (the :data:`MAX_ASKERS` most recent are kept), so a host that floods cannot
starve another: the local ntpq, ntpstat and the LCD (on loopback) are answered whatever a LAN host does.
:meth:`ControlHandler.handle` returns an answer's datagrams back to back; :func:`datagrams` cuts them apart
for the UDP edge, which sends each.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from appliance.ntp import access as acl
from appliance.ntp.mru import ClientRecorder, MruEntry, MruTable
from appliance.state import SystemState
from appliance.status import variables as v
from appliance.status.snapshot import Snapshot, SourceStatus, SystemStatus
from appliance.timebase import NS_PER_S, ns_from_ntp64, ntp64_from_ns

HEADER = struct.Struct("!BBHHHHH")
HEADER_LEN = HEADER.size  # 12
#: The most data one fragment carries (RFC 9327 section 2: a 480-octet message less its header).
MAX_DATA = 468
#: Mode 6 datagrams per second, and the burst, for each asking address (ntpq ``peers`` asks 1 + one per source).
RATE = 20
BURST = 40
#: Asking addresses whose buckets are kept (the least recently seen is forgotten past that: it starts full).
MAX_ASKERS = 1024
#: The most fragments one answer takes (3744 octets of data: an association list of 936 sources).
MAX_FRAGMENTS = 8

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

#: How long a nonce is good for (ntpd's and ntpq's NONCE_TIMEOUT).
NONCE_TIMEOUT_S = 16
#: The most rows one MRU answer carries (ntpd's MRU_ROW_LIMIT).
MRU_ROW_LIMIT = 256
#: Entries read from the table at a time while an MRU answer is made.
_CHUNK = 32

#: appliance.ntp.access bits -> ntpd's RES_ bits (ntp/magic.py), which ntpq's ``rstr`` column prints.
_RES_BITS = (
    (acl.IGNORE, 0x0001),
    (acl.NOSERVE, 0x0002),
    (acl.NOTRUST, 0x0004),
    (acl.VERSION, 0x0008),
    (acl.NOPEER, 0x0010),
    (acl.LIMITED, 0x0020),
    (acl.NOQUERY, 0x0040),
    (acl.NOMODIFY, 0x0080),
    (acl.NOTRAP, 0x0100),
    (acl.LOWPRIOTRAP, 0x0200),
    (acl.KOD, 0x0400),
    (acl.NOMRULIST, 0x2000),
)

#: System status word clock-source codes (RFC 9327 section 2.1 / ntpq).
SOURCE_UNSPEC = 0
SOURCE_PPS = 1
SOURCE_UHF = 4  # GPS and other satellite receivers (ntpstat: "UHF radio", as ntpd says for a GPS)
SOURCE_LOCAL = 5
SOURCE_NTP = 6

#: The clock source in the system status word, by the timekeeper's basis.
_SOURCE_BY_BASIS = {"refclock": SOURCE_UHF, "holdover": SOURCE_UHF, "upstream": SOURCE_NTP, "local": SOURCE_LOCAL}

#: Peer status word bits (RFC 9327 section 2.2): configured, authentication enabled (a keyed server),
#: authentic (its replies passed the MAC check), reachable.
PEER_CONFIGURED = 0x8000
PEER_AUTHENABLE = 0x4000
PEER_AUTHENTIC = 0x2000
PEER_REACHABLE = 0x1000


def system_status_word(state: SystemState, source: int = SOURCE_UNSPEC) -> int:
    """The 16-bit system status word: leap (2 bits), clock source (6), event count and code (4+4)."""
    return (state.leap & 3) << 14 | (source & 0x3F) << 8


def peer_status_word(reach: int, selection_code: int, keyid: int = 0) -> int:
    """The 16-bit peer status word: flags (5 bits), selection (3), event count and code (4+4).

    A keyed server (``keyid``) has authentication enabled, and is authentic once it reaches us: its replies
    are used only with a valid MAC of its key (ntpq ``as``: ``auth ok``; ``bad`` while it has not answered).
    """
    auth = (PEER_AUTHENABLE | (PEER_AUTHENTIC if reach else 0)) if keyid else 0
    return PEER_CONFIGURED | auth | (PEER_REACHABLE if reach else 0) | (selection_code & 7) << 8


def _peer_status(s: SourceStatus) -> int:
    return peer_status_word(s.reach, s.selection_code, s.keyid)


def fragments(version: int, opcode: int, seq: int, status: int, assoc: int, data: bytes) -> list[bytes]:
    """The response datagrams for ``data``: 468 octets each at most, M set on all but the last, padded to 4."""
    out = []
    offset = 0
    while True:
        chunk = data[offset : offset + MAX_DATA]
        more = offset + len(chunk) < len(data)
        b1 = 0x80 | (0x20 if more else 0) | opcode
        head = HEADER.pack((version << 3) | 6, b1, seq, status, assoc, offset, len(chunk))
        out.append(head + chunk + b"\0" * (-len(chunk) % 4))
        offset += len(chunk)
        if not more:
            return out


def datagrams(reply: bytes) -> list[bytes]:
    """The datagrams of an answer given back to back (:meth:`ControlHandler.handle`), each whole."""
    out = []
    i = 0
    while i + HEADER_LEN <= len(reply):
        count = HEADER.unpack_from(reply, i)[6]
        end = i + HEADER_LEN + count + (-count % 4)
        out.append(reply[i:end])
        i = end
    return out


def fit(data: bytes, limit: int = MAX_FRAGMENTS * MAX_DATA) -> bytes:
    """``data`` cut after the last whole variable within ``limit`` octets (ends with CR LF as ntpd's do)."""
    if len(data) <= limit:
        return data
    cut = max(data.rfind(b",", 0, limit - 2), 0)
    return data[:cut] + b"\r\n"


class ControlHandler:
    """Answers mode 6 read requests from the latest snapshot (see the module docstring).

    ``snapshot`` returns the latest :class:`Snapshot` (None before the first: READSTAT then lists no
    associations); ``version`` is the ``version`` variable's text, ``host`` the ``processor`` and ``system`` ones;
    ``secret`` keys the MRU list's nonces (random per handler when not given).
    """

    def __init__(
        self,
        source_code: int = SOURCE_UNSPEC,
        snapshot: Callable[[], Snapshot | None] | None = None,
        version: str = "stratum1",
        host: tuple[str, str] = ("", ""),
        secret: bytes | None = None,
    ) -> None:
        self.source_code = source_code
        self._secret = secret if secret is not None else secrets.token_bytes(16)
        self.bad_nonces = 0
        self.snapshot = snapshot or (lambda: None)
        self.version = version
        self.host = host
        self.rate_limited = 0
        # asking address -> [tokens, when they were counted]; least recently asking first
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def _admit(self, now_ns: int, ip: str) -> list[float] | None:
        """``ip``'s bucket when it holds a token for one more answer (which then pays per datagram:
        :meth:`handle`), else None. Each address has its own, so one asker cannot starve another."""
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= MAX_ASKERS:
                self._buckets.popitem(last=False)
            bucket = self._buckets[ip] = [float(BURST), float(now_ns)]
        else:
            self._buckets.move_to_end(ip)
            elapsed = max(0.0, now_ns - bucket[1])
            bucket[0] = min(float(BURST), bucket[0] + elapsed * RATE / NS_PER_S)
            bucket[1] = float(now_ns)
        if bucket[0] < 1.0:
            self.rate_limited += 1
            return None
        return bucket

    def handle(
        self,
        data: bytes,
        flags: int,
        state: SystemState,
        now_ns: int,
        ip: str = "",
        clients: ClientRecorder | None = None,
    ) -> bytes | None:
        """Return the answer to one mode 6 datagram, or None to drop it (malformed, a response, rate limited).

        ``ip`` is the asker's address (the MRU list's nonces are bound to it), ``clients`` the MRU list (none:
        READ_MRU lists nobody). The answer is one datagram, or several back to back when it is longer than
        one fragment (:func:`datagrams` cuts them apart); each datagram takes one token from the rate limit.
        """
        if len(data) < HEADER_LEN:
            return None
        _b0, b1, _seq, _status, _assoc, offset, count = HEADER.unpack_from(data)
        if b1 & 0xE0 or offset:  # a response (no loops), an error or a fragment: dropped, as ntpd drops them
            return None
        if count > len(data) - HEADER_LEN:
            return None
        bucket = self._admit(now_ns, ip)
        if bucket is None:
            return None
        reply = self._handle(data, flags, state, now_ns, ip, clients)
        if reply is not None:
            bucket[0] -= len(datagrams(reply))
        return reply

    def _handle(
        self, data: bytes, flags: int, state: SystemState, now_ns: int, ip: str, clients: ClientRecorder | None
    ) -> bytes | None:
        b0, b1, seq, _status, assoc, _offset, count = HEADER.unpack_from(data)
        opcode = b1 & 0x1F
        version = (b0 >> 3) & 7
        if opcode in _WRITES or opcode in _TRAPS:
            return _error(version, opcode, seq, assoc, ERR_PERMISSION)
        if opcode in _MRU and flags & acl.NOMRULIST:
            return _error(version, opcode, seq, assoc, ERR_PERMISSION)
        if opcode == OP_REQ_NONCE:
            text = f"nonce={self.nonce(ip, now_ns)}\r\n".encode("ascii")
            return _all(version, OP_REQ_NONCE, seq, 0, 0, text)
        if opcode == OP_READ_MRU:
            return self._read_mru(version, seq, data[HEADER_LEN : HEADER_LEN + count], ip, now_ns, clients)
        snap = self.snapshot()
        source = _SOURCE_BY_BASIS.get(snap.system.basis, self.source_code) if snap else self.source_code
        sys_status = system_status_word(state, source)
        request = data[HEADER_LEN : HEADER_LEN + count]
        if opcode == OP_READSTAT:
            return self._readstat(version, seq, sys_status, assoc, snap)
        if opcode == OP_READVAR:
            return self._readvar(version, seq, sys_status, assoc, snap, state, request, now_ns, clients)
        if opcode == OP_READCLOCK:
            return self._readclock(version, seq, assoc, snap, request)
        return _error(version, opcode, seq, assoc, ERR_OPCODE)

    def nonce(self, ip: str, now_ns: int) -> str:
        """A nonce for ``ip`` issued at ``now_ns``: 16 hex digits of NTP time, 8 of a keyed hash of both."""
        stamp = f"{ntp64_from_ns(now_ns):016x}"
        return stamp + self._mac(stamp, ip)

    def _mac(self, stamp: str, ip: str) -> str:
        return hmac.new(self._secret, f"{stamp} {ip}".encode(), hashlib.sha256).hexdigest()[:8]

    def nonce_ok(self, nonce: str, ip: str, now_ns: int) -> bool:
        """Whether ``nonce`` was issued here to ``ip`` no more than :data:`NONCE_TIMEOUT_S` before ``now_ns``."""
        if len(nonce) != 24:
            return False
        stamp, mac = nonce[:16], nonce[16:]
        try:
            issued = ns_from_ntp64(int(stamp, 16), now_ns)
        except ValueError:
            return False
        if not hmac.compare_digest(self._mac(stamp, ip), mac):
            return False
        return 0 <= now_ns - issued <= NONCE_TIMEOUT_S * NS_PER_S

    def _read_mru(
        self, version: int, seq: int, request: bytes, ip: str, now_ns: int, clients: ClientRecorder | None
    ) -> bytes | None:
        params = _parse_params(request)
        if not self.nonce_ok(params.get("nonce", ""), ip, now_ns):
            self.bad_nonces += 1
            return None
        try:
            query = _MruQuery.parse(params)
        except ValueError:
            return _error(version, OP_READ_MRU, seq, 0, ERR_BADVALUE)
        table = clients if clients is not None else MruTable(1)
        start = _resume(table, query.given)
        if start is False:
            return _error(version, OP_READ_MRU, seq, 0, ERR_UNKNOWNVAR)
        head: v.Variables = [("nonce", self.nonce(ip, now_ns))]
        tail: v.Variables = [("now", _lfp(now_ns))]
        # room for the end: now= and, when rows go, last.newest= (the last row's last seen, as ntpd says it)
        room = query.frags * MAX_DATA - _size(head) - _size(tail + [("last.newest", _lfp(now_ns))])
        sent: MruEntry | None = None
        rows: v.Variables = []
        n = 0
        complete = True
        cursor: tuple[str | None, int] = start if isinstance(start, tuple) else (None, 0)
        # recent=N: from the oldest, the entries the filters keep are counted down from the table's size and
        # sent once N are left, as ntpd does (ntpq sends it on the first request only, then goes on)
        skip = max(0, len(table) - query.recent) if query.recent and start is None else 0
        while complete:  # a piece at a time: the work is the rows sent, not the table's size
            chunk = table.after(cursor[0], cursor[1], _CHUNK) or []
            if not chunk:
                break
            for e in chunk:
                if not query.wants(e, now_ns):
                    continue
                if skip:
                    skip -= 1
                    continue
                row = _mru_row(n, e)
                size = _size(row)
                if n >= query.limit or size > room:
                    complete = False
                    break
                rows += row
                room -= size
                n += 1
                sent = e
            last = chunk[-1]
            cursor = (last.addr, ntp64_from_ns(last.last_ns))
        if sent is not None:
            tail.append(("last.newest", _lfp(sent.last_ns)))
        return _all(version, OP_READ_MRU, seq, 0, 0, v.encode(head + rows + (tail if complete else [])))

    def _readstat(self, version: int, seq: int, sys_status: int, assoc: int, snap: Snapshot | None) -> bytes:
        if assoc == 0:
            pairs = b"".join(struct.pack("!HH", s.assoc_id, _peer_status(s)) for s in (snap.sources if snap else ()))
            most = MAX_FRAGMENTS * MAX_DATA
            return _all(version, OP_READSTAT, seq, sys_status, 0, pairs[: most - most % 4])
        s = snap.source(assoc) if snap else None
        if s is None or snap is None:
            return _error(version, OP_READSTAT, seq, assoc, ERR_ASSOC)
        # the status word and, as ntpd's read_status sends, the association's variables
        variables = v.peer_variables(s, snap.system.precision)
        return _all(version, OP_READSTAT, seq, _peer_status(s), assoc, fit(v.encode(variables)))

    def _readvar(
        self,
        version: int,
        seq: int,
        sys_status: int,
        assoc: int,
        snap: Snapshot | None,
        state: SystemState,
        request: bytes,
        now_ns: int,
        clients: ClientRecorder | None = None,
    ) -> bytes:
        named: v.Variables = []
        if assoc == 0:
            if snap is None:
                return _error(version, OP_READVAR, seq, 0, ERR_UNSPEC)
            told = _told(snap.system, state)
            variables = v.system_variables(snap, told, now_ns, self.version, self.host)
            named = v.system_named_variables(snap, told, now_ns, _mru_figures(clients))
            status = sys_status
        else:
            s = snap.source(assoc) if snap else None
            if s is None or snap is None:
                return _error(version, OP_READVAR, seq, assoc, ERR_ASSOC)
            variables = v.peer_variables(s, snap.system.precision)
            status = _peer_status(s)
        return self._answer(version, OP_READVAR, seq, status, assoc, variables, request, named)

    def _readclock(self, version: int, seq: int, assoc: int, snap: Snapshot | None, request: bytes) -> bytes:
        clocks = [s for s in (snap.sources if snap else ()) if s.kind != "server"]
        if assoc == 0:
            peer = snap.system_peer if snap else None
            s = peer if peer is not None and peer.kind != "server" else (clocks[0] if clocks else None)
        else:
            s = next((c for c in clocks if c.assoc_id == assoc), None)
        if s is None or snap is None:
            return _error(version, OP_READCLOCK, seq, assoc, ERR_ASSOC)
        clock = snap.clock(s.name)  # this clock's own state: the GPS lines only for the receiver they are of
        gps = snap.gps if clock is not None and clock.gps else None
        # the header keeps the asked association (0 stays 0, as ntpd's read_clockstatus keeps res_associd)
        return self._answer(version, OP_READCLOCK, seq, 0, assoc, v.clock_variables(s, clock, gps), request)

    def _answer(
        self,
        version: int,
        opcode: int,
        seq: int,
        status: int,
        assoc: int,
        variables: v.Variables,
        request: bytes,
        named: v.Variables | None = None,
    ) -> bytes:
        """``variables`` when the request names none, else those it names, from them and ``named`` (the
        variables ntpd gives only by name)."""
        names = v.parse_names(request)
        if names:
            chosen = v.select([*variables, *(named or [])], names)
            if chosen is None:
                return _error(version, opcode, seq, assoc, ERR_UNKNOWNVAR)
            variables = chosen
        return _all(version, opcode, seq, status, assoc, fit(v.encode(variables)))


def _mru_figures(clients: ClientRecorder | None) -> v.MruFigures | None:
    if clients is None:
        return None
    oldest = clients.after(None, 0, 1)
    return v.MruFigures(len(clients), clients.maxdepth, oldest[0].last_ns if oldest else None)


def _told(system: SystemStatus, state: SystemState) -> SystemStatus:
    """The system variables as this client is told them: the served state's leap, stratum, root and refid."""
    refid = state.refid.rstrip(b"\0").decode("ascii", "replace") if state.stratum <= 1 else system.refid
    if state.stratum >= 16:
        refid = state.refid.rstrip(b"\0").decode("ascii", "replace")
    return replace(
        system,
        leap=state.leap,
        stratum=state.stratum,
        root_delay_ns=state.root_delay_ns,
        root_dispersion_ns=state.root_dispersion_ns,
        refid=refid,
        reference_ns=state.reference_ns,
    )


def _all(version: int, opcode: int, seq: int, status: int, assoc: int, data: bytes) -> bytes:
    """Every fragment of the answer ``data``, back to back (the callers keep it to :data:`MAX_FRAGMENTS`)."""
    return b"".join(fragments(version, opcode, seq, status, assoc, data))


def _error(version: int, opcode: int, seq: int, assoc: int, code: int) -> bytes:
    return HEADER.pack((version << 3) | 6, 0xC0 | opcode, seq, code << 8, assoc, 0, 0)


def _lfp(t_ns: int) -> str:
    """An NTP timestamp as ntpd writes one in the MRU list (``0xeeba1db5.5b61fdf6``)."""
    t = ntp64_from_ns(t_ns)
    return f"0x{t >> 32:08x}.{t & 0xFFFFFFFF:08x}"


def _address(e: MruEntry) -> str:
    return f"[{e.addr}]:{e.port}" if ":" in e.addr else f"{e.addr}:{e.port}"


def res_bits(flags: int) -> int:
    """The restrict flags ``flags`` (:mod:`appliance.ntp.access` bits) in ntpd's RES_ bits."""
    return sum(res for bit, res in _RES_BITS if flags & bit)


def _mru_row(i: int, e: MruEntry) -> v.Variables:
    return [
        (f"addr.{i}", _address(e)),
        (f"last.{i}", _lfp(e.last_ns)),
        (f"first.{i}", _lfp(e.first_ns)),
        (f"ct.{i}", str(e.count)),
        (f"mv.{i}", str(e.mv)),
        (f"rs.{i}", f"0x{res_bits(e.flags):x}"),
    ]


def _size(variables: v.Variables) -> int:
    """At most the octets ``variables`` take in :func:`appliance.status.variables.encode` (with separators)."""
    return sum(len(name) + len(value) + 4 for name, value in variables)


def _parse_params(request: bytes) -> dict[str, str]:
    """A request's ``name=value, ...`` (NUL padding and blanks dropped; a later name wins)."""
    out = {}
    for part in request.decode("ascii", "replace").split(","):
        name, _, value = part.strip().strip("\0").partition("=")
        if name:
            out[name.strip()] = value.strip()
    return out


def _resume(table: ClientRecorder, given: list[tuple[str, str]]) -> tuple[str, int] | None | bool:
    """Where an answer starts: after the first of the asker's (addr, last) pairs (newest first) still in
    the table with that last-seen time, as (address, NTP timestamp); None (from the oldest) when none were
    given; False when none matches."""
    if not given:
        return None
    for addr, last in given:
        host = addr.rpartition(":")[0].strip("[]")
        sec, _, frac = last.removeprefix("0x").partition(".")
        try:
            stamp = int(sec, 16) << 32 | int(frac, 16)
        except ValueError:
            continue
        if host and stamp < 1 << 64 and table.after(host, stamp, 0) is not None:
            return host, stamp
    return False


class _MruQuery:
    """A READ_MRU request's parameters (ntpd's names): how much, which entries, where to go on from.

    Numbers are read as ntpd's ``sscanf("%d")``/``("%u")`` reads them: the leading decimal digits, so the
    ``10.0`` that ntpq sends for ``mincount=010`` is 10; a value with no digits is a bad value. A name ntpd
    does not know is ignored, as ntpd ignores it.
    """

    def __init__(self) -> None:
        self.frags = MAX_FRAGMENTS
        self.limit = MRU_ROW_LIMIT
        self.mincount = 0
        self.mindrop = 0
        self.minscore = 0.0
        self.resall = 0
        self.resany = 0
        self.minlstint_s = 0
        self.maxlstint_s = 0
        self.recent = 0
        self.given: list[tuple[str, str]] = []

    @classmethod
    def parse(cls, params: dict[str, str]) -> _MruQuery:
        """ValueError for a bad value."""
        q = cls()
        addrs: dict[int, str] = {}
        lasts: dict[int, str] = {}
        for name, value in params.items():
            if name == "frags":
                q.frags = min(MAX_FRAGMENTS, _positive(value))
            elif name == "limit":
                q.limit = min(MRU_ROW_LIMIT, _positive(value))
            elif name == "recent":
                q.recent = _unsigned(value)
            elif name == "mincount":
                q.mincount = max(0, _scan_int(value))
            elif name == "mindrop":
                q.mindrop = _unsigned(value)
            elif name == "minscore":
                q.minscore = max(0.0, _scan_float(value))
            elif name == "resall":
                q.resall = int(value, 0)
            elif name == "resany":
                q.resany = int(value, 0)
            elif name == "minlstint":
                q.minlstint_s = _unsigned(value)
            elif name == "maxlstint":
                q.maxlstint_s = _unsigned(value)
            elif name.startswith(("addr.", "last.")) and name[5:].isdigit():
                (addrs if name[0] == "a" else lasts)[int(name[5:])] = value
            # nonce, laddr (one table for every local address) and names ntpd does not know: ignored
        q.given = [(addrs[i], lasts[i]) for i in sorted(addrs) if i in lasts]
        return q

    def wants(self, e: MruEntry, now_ns: int) -> bool:
        """Whether the filters keep ``e`` (drop counts and scores are not kept: 0 for every entry)."""
        if e.count < self.mincount or self.mindrop > 0 or self.minscore > 0:
            return False
        rs = res_bits(e.flags)
        if self.resall and rs & self.resall != self.resall:
            return False
        if self.resany and not rs & self.resany:
            return False
        age_s = (now_ns - e.last_ns) // NS_PER_S
        if self.maxlstint_s > 0 and age_s > self.maxlstint_s:
            return False
        return not (self.minlstint_s > 0 and age_s < self.minlstint_s)


_LEADING_INT = re.compile(r"\s*([+-]?\d+)")
_LEADING_FLOAT = re.compile(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")


def _scan_int(value: str) -> int:
    """The leading decimal integer of ``value``, as C's ``sscanf("%d")`` reads it (``10.0`` is 10)."""
    m = _LEADING_INT.match(value)
    if m is None:
        raise ValueError(value)
    return int(m.group(1))


def _unsigned(value: str) -> int:
    """``sscanf("%u")``: the leading decimal integer, a negative one clamped to 0."""
    return max(0, _scan_int(value))


def _scan_float(value: str) -> float:
    m = _LEADING_FLOAT.match(value)
    if m is None:
        raise ValueError(value)
    return float(m.group(1))


def _positive(value: str) -> int:
    n = _scan_int(value)
    if n < 1:
        raise ValueError(value)
    return n
