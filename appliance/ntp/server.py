"""The NTP server's request handling, sans I/O (RFC 5905 sections 8 and 9.2, RFC 8633 section 4).

:meth:`NtpServer.handle` takes one datagram, the client's address and the
kernel's receive timestamp, and returns the reply to send or None. It never
reads a clock: the caller appends the transmit timestamp just before the send
(:func:`finish_reply`), so the time between the two is as short as it can be.

What gets an answer:

- mode 3 (client) requests of versions 1 to 4, and NTPv1 requests with mode 0
  from a port other than 123 (NTPv1 had no mode field), get a mode 4 reply
  that echoes version and poll, carries the client's transmit timestamp as
  origin, the receive timestamp, and the system state (leap, stratum,
  precision, root delay, root dispersion, reference ID and time);
- mode 1 (symmetric active) gets a mode 2 reply only from a configured
  ``peer`` address whose restrictions lack ``nopeer``; otherwise it is dropped;
- mode 6 (control, ntpq) is dropped for ``noquery`` addresses and otherwise
  handed to :mod:`appliance.ntp.mode6` (with the MRU list, for ``mrulist``);
- mode 7 (ntpdc, the old monlist amplifier) never gets an answer, nor do modes
  2, 4 and 5, which are replies and broadcasts, not requests.

Access control is ntpd's ``restrict`` (:mod:`appliance.ntp.access`); clients
with ``limited`` pass the rate limiter (:mod:`appliance.ntp.ratelimit`) and,
with ``kod``, a limited client may get a RATE Kiss-o'-Death (stratum 0, the
client's own transmit timestamp in every timestamp field, so it carries no
time). No reply is ever longer than its request: a client request is at
least 48 octets and the reply is 48 (52 with a crypto-NAK).

Symmetric keys (RFC 5905 section 9.2; :mod:`appliance.ntp.keys`): a request whose MAC a trusted key made
(``keys``, ``trustedkey``; a key limited to addresses only from those) gets a reply signed with that key,
as long as the request; any other MAC gets a crypto-NAK; ``restrict ... notrust`` serves only the
former. The reply is signed after its transmit timestamp is written (:func:`finish_reply`).

Who is told what: while the state says ``public_unsync`` (the free-running
local clock is served and ``localclock public unsync`` is in force), a client
whose address only a default entry matches (``restrict default``, ``-4
default``, ``-6 default``, ``0.0.0.0 mask 0.0.0.0`` or the implicit default:
:attr:`~appliance.ntp.access.Restriction.is_default`) gets leap 3, stratum
16, refid ``INIT`` in time replies and leap 3 in mode 6 status words; a client
matched by a more specific ``restrict`` line gets the local clock's stratum.

Interleaved mode (RFC 9769, :mod:`appliance.ntp.interleave`): every receive timestamp sent is marked
(lowest bit set), every transmit timestamp not; a client request whose origin is a marked receive
timestamp, and whose receive and transmit fields differ, is answered with the request's receive field as
origin and, when that earlier reply's transmit time was stamped by the kernel and kept, that time as
transmit. Such a reply's tail is an :class:`Interleave`: the I/O layer has the kernel stamp it as it leaves
and hands the time to :meth:`NtpServer.transmitted`.

Every datagram not ``ignore``d, whatever it then gets, is recorded in the MRU
list of recent clients (:mod:`appliance.ntp.mru`; the compiled data plane
records into the same table).

Everything dropped is counted by reason in :class:`ServerCounters`; a
datagram longer than :data:`~appliance.ntp.packet.MAX_DATAGRAM` (1024) octets
is dropped first of all ("oversize"; the sockets read one octet more than
that, so a longer datagram reaches here cut but still too long).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.ntp import access as acl
from appliance.ntp import mode6
from appliance.ntp.interleave import TransmitTable, mark_receive, mark_transmit, may_interleave
from appliance.ntp.keys import Key, KeyRing
from appliance.ntp.mru import ClientRecorder, MruTable
from appliance.ntp.packet import (
    HEADER_LEN,
    LEAP_UNSYNC,
    MAX_DATAGRAM,
    MODE_ACTIVE,
    MODE_CLIENT,
    MODE_CONTROL,
    MODE_PASSIVE,
    MODE_PRIVATE,
    MODE_RESERVED,
    MODE_SERVER,
    PacketError,
    parse_trailer,
    refid_from_text,
)
from appliance.ntp.ratelimit import LIMITED_KOD, PASS, RateLimiter
from appliance.state import STRATUM_UNSYNC, UNSYNCHRONISED, SystemState
from appliance.timebase import NS_PER_S, ntp64_from_ns, short_from_ns

_PREFIX = struct.Struct("!BBBbII4sQ")  # li_vn_mode .. reference timestamp: 24 octets
_TS = struct.Struct("!Q")
NTP_PORT = 123
_RATE = refid_from_text("RATE")
_CRYPTO_NAK = b"\0\0\0\0"


@dataclass(frozen=True, slots=True)
class Interleave:
    """The tail of a reply to a request that may be interleaved (:mod:`appliance.ntp.interleave`).

    ``receive`` is the reply's (marked) receive timestamp: the I/O layer has the kernel stamp the reply as
    it leaves and gives that time to :meth:`NtpServer.transmitted` under it. ``transmit``, when the request
    was interleaved, is the earlier reply's kept transmit time, sent instead of a clock reading; ``tail``
    is what follows the transmit timestamp, as in a basic reply (``b""``, a crypto-NAK or a :class:`Key`).
    """

    receive: int
    transmit: int | None
    tail: bytes | Key


@dataclass(slots=True)
class ServerCounters:
    """What the server did with each datagram, by outcome. Plain ints: cheap on the hot path."""

    received: int = 0
    served: int = 0
    kod_sent: int = 0
    control: int = 0
    #: Time replies signed with a trusted key (counted in ``served`` too).
    authenticated: int = 0
    #: Time replies that were a crypto-NAK: the request's MAC was not a trusted key's (in ``served`` too).
    crypto_nak: int = 0
    #: Time replies in interleaved mode, with an earlier reply's kernel transmit time (in ``served`` too).
    interleaved: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class NtpServer:
    """Answers NTP requests from the current :class:`SystemState`.

    ``peers`` is the set of addresses configured with ``peer`` lines (a name's
    addresses once resolved): their symmetric-active requests are answered,
    ``nopeer`` or not; anybody else's are dropped. ``system_variables`` is called by mode 6 to read the
    state as name/value pairs; it may be None.
    """

    def __init__(
        self,
        access: acl.AccessTable,
        limiter: RateLimiter,
        *,
        peers: frozenset[str] = frozenset(),
        state: SystemState = UNSYNCHRONISED,
        control: mode6.ControlHandler | None = None,
        mru: ClientRecorder | None = None,
        keys: KeyRing | None = None,
        transmits: TransmitTable | None = None,
    ) -> None:
        self.access = access
        #: Transmit times of replies that an interleaved request may name next (RFC 9769).
        self.transmits = transmits if transmits is not None else TransmitTable()
        #: The symmetric keys (``keys``, ``trustedkey``): a request with a MAC of a trusted key is answered
        #: with a MAC of that key; one with any other MAC with a crypto-NAK. Replaced whole on a reload.
        self.keys = keys if keys is not None else KeyRing()
        self.limiter = limiter
        self.mru = mru if mru is not None else MruTable()
        self.peers = peers
        self.counters = ServerCounters()
        self.control = control or mode6.ControlHandler()
        self._state = state
        self._cache: dict[tuple[int, int, bool], bytes] = {}
        self._cache_second = -1
        self._listeners: list[Callable[[], object]] = []
        self._config_listeners: list[Callable[[], object]] = []

    @property
    def state(self) -> SystemState:
        return self._state

    def set_state(self, state: SystemState) -> None:
        """Serve ``state`` from now on."""
        self._state = state
        self._cache.clear()
        for listener in self._listeners:
            listener()

    def reconfigure(self, access: acl.AccessTable, limiter: RateLimiter, peers: frozenset[str] | None = None) -> None:
        """Serve with a new access table and rate limiter (a configuration reload); ``peers`` too, if given.

        Config listeners are told (the compiled data plane takes the new
        table and limiter from here).
        """
        self.access = access
        self.limiter = limiter
        if peers is not None:
            self.peers = peers
        for listener in list(self._config_listeners):
            listener()

    def add_config_listener(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` after every :meth:`reconfigure`."""
        self._config_listeners.append(listener)

    def remove_config_listener(self, listener: Callable[[], object]) -> None:
        """Stop calling ``listener`` (a socket being closed)."""
        if listener in self._config_listeners:
            self._config_listeners.remove(listener)

    def add_state_listener(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` after every :meth:`set_state` (the compiled data plane drops its cached headers)."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: Callable[[], object]) -> None:
        """Stop calling ``listener`` (a socket being closed)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def handle(
        self, data: bytes, ip: str, port: int, rx_ns: int
    ) -> tuple[bytes, bytes | Key | Interleave | None] | None:
        """Return ``(head, tail)`` for one datagram, or None to send nothing.

        ``rx_ns`` is the receive time (POSIX ns, the kernel's timestamp where
        there is one). When ``tail`` is None, ``head`` is the whole reply (for
        mode 6, the answer's fragments back to back: :func:`mode6.datagrams`
        cuts them into the datagrams to send).
        Otherwise the reply is ``head``, then the transmit timestamp, then
        ``tail``: :func:`finish_reply` joins them with a clock reading taken
        just before the send.
        """
        c = self.counters
        c.received += 1
        if not data:
            c.drop("short")
            return None
        if len(data) > MAX_DATAGRAM:
            c.drop("oversize")
            return None
        b0 = data[0]
        version = (b0 >> 3) & 7
        mode = b0 & 7
        if version < 1 or version > 4:
            c.drop("version")
            return None
        restriction = self.access.lookup(ip, port)
        flags = restriction.flags
        if flags & acl.IGNORE:
            c.drop("ignore")
            return None
        self.mru.record(ip, port, rx_ns, b0, flags)
        if mode == MODE_CLIENT or (mode == MODE_RESERVED and version == 1 and port != NTP_PORT):
            return self._time_request(data, version, MODE_SERVER, restriction, ip, rx_ns)
        if mode == MODE_ACTIVE:
            # a configured peer is answered whatever 'nopeer' says: nopeer refuses symmetric packets "when a
            # configured association does not exist" (NTPsec's accopt; ntpd's ntp_acc(5)), and stratum1 makes
            # no associations for the others (no ephemeral peers), so they are dropped either way
            if ip not in self.peers:
                c.drop("peer")
                return None
            return self._time_request(data, version, MODE_PASSIVE, restriction, ip, rx_ns)
        if mode == MODE_CONTROL:
            if flags & acl.NOQUERY:
                c.drop("noquery")
                return None
            c.control += 1
            state = UNSYNCHRONISED if self._told_unsync(restriction.is_default) else self._state
            limited, nonces = self.control.rate_limited, self.control.bad_nonces
            reply = self.control.handle(data, flags, state, rx_ns, ip, self.mru)
            if reply is None:
                if self.control.rate_limited != limited:
                    c.drop("control-rate")  # the asker's mode 6 bucket is empty
                elif self.control.bad_nonces != nonces:
                    c.drop("control-nonce")  # an MRU list request with a nonce not given to that address
                else:
                    c.drop("control")  # malformed, or a request ntpq never sends
                return None
            return reply, None
        if mode == MODE_PRIVATE:
            c.drop("mode7")
            return None
        c.drop("mode")
        return None

    def _time_request(
        self, data: bytes, version: int, reply_mode: int, r: acl.Restriction, ip: str, rx_ns: int
    ) -> tuple[bytes, bytes | Key | Interleave | None] | None:
        c = self.counters
        n = len(data)
        if n < HEADER_LEN:
            c.drop("short")
            return None
        mac = None
        key = None
        if n > HEADER_LEN:
            try:
                _, mac = parse_trailer(data, version)
            except PacketError as e:
                c.drop(e.reason)
                return None
            if mac is not None and self.keys.trusted:
                key = self.keys.check(data[: n - len(mac)], mac, ip)
        flags = r.flags
        if flags & acl.NOSERVE:
            c.drop("noserve")
            return None
        if flags & acl.VERSION and version != 4:
            c.drop("version-restricted")
            return None
        if flags & acl.NOTRUST and key is None:
            c.drop("notrust")
            return None
        if flags & acl.LIMITED:
            verdict = self.limiter.check(ip, rx_ns, bool(flags & acl.KOD))
            if verdict != PASS:
                if verdict == LIMITED_KOD:
                    c.kod_sent += 1
                    return _kiss(data, version, reply_mode, self.limiter.kod_poll), None
                c.drop("rate")
                return None
        c.served += 1
        prefix = self.reply_prefix(version, reply_mode, data[2], r.is_default, rx_ns)
        receive = mark_receive(ntp64_from_ns(rx_ns))
        origin = int.from_bytes(data[24:32], "big")
        earlier: int | None = None
        xleave = reply_mode == MODE_SERVER and may_interleave(origin, data[32:40], data[40:48])
        if xleave:
            earlier = self.transmits.transmit_for(origin)
            if earlier is None:
                self.transmits.counters.unknown_origin += 1
            else:
                self.transmits.counters.interleaved += 1
                c.interleaved += 1
            self.transmits.expect(receive)
        # interleaved: the request's receive field is the origin the client looks for (RFC 9769 section 2)
        head = prefix + (data[32:40] if earlier is not None else data[40:48]) + _TS.pack(receive)
        tail: bytes | Key = b""
        if key is not None:
            # signed after the transmit timestamp (finish_reply): as long as the request, never longer
            c.authenticated += 1
            tail = key
        elif mac is not None:
            # a MAC no trusted key made (or no keys at all): a crypto-NAK (RFC 5905 section 7.4), 4 octets,
            # shorter than the request's MAC
            c.crypto_nak += 1
            tail = _CRYPTO_NAK
        if xleave:
            return head, Interleave(receive, earlier, tail)
        return head, tail

    def transmitted(self, receive: int, tx_ns: int) -> bool:
        """The reply carrying ``receive`` (an :class:`Interleave`'s) left at ``tx_ns`` (POSIX ns on the served
        clock, as the kernel stamped it): kept for the client's next, interleaved, request. False when that
        reply was not expecting it (or was forgotten since)."""
        return self.transmits.captured(receive, ntp64_from_ns(tx_ns))

    def _told_unsync(self, is_default: bool) -> bool:
        """Whether a client matched only by a default entry is told "unsynchronised" now (public_unsync)."""
        return is_default and self._state.public_unsync

    def reply_prefix(self, version: int, mode: int, poll: int, is_default: bool, rx_ns: int) -> bytes:
        """Octets 0-23 of a reply (leap, version, mode .. reference timestamp) for the second of ``rx_ns``.

        Cached per second; the compiled data plane (:mod:`appliance.io.fastpath`) calls it too, so the
        state is turned into octets in one place only.
        """
        second = rx_ns // NS_PER_S
        if second != self._cache_second:
            self._cache.clear()
            self._cache_second = second
        public = self._told_unsync(is_default)
        key = (version << 3 | mode, poll, public)
        prefix = self._cache.get(key)
        if prefix is None:
            prefix = self._build_prefix(version, mode, poll, public, second * NS_PER_S)
            self._cache[key] = prefix
        return prefix

    def _build_prefix(self, version: int, mode: int, poll: int, public_unsync: bool, now_ns: int) -> bytes:
        s = self._state
        if public_unsync or not s.synchronised:
            leap, stratum, refid, ref_ts = LEAP_UNSYNC, STRATUM_UNSYNC, b"INIT", 0
            delay = disp = 0
        else:
            leap, stratum, refid = s.leap, s.stratum, s.refid
            ref_ts = ntp64_from_ns(s.reference_ns) if s.reference_ns is not None else 0
            delay = short_from_ns(s.root_delay_ns)
            # One second of extra growth covers the cache's one-second granularity.
            disp = short_from_ns(s.root_dispersion_at(now_ns + NS_PER_S))
        return _PREFIX.pack((leap << 6) | (version << 3) | mode, stratum, poll, s.precision, delay, disp, refid, ref_ts)


def finish_reply(head: bytes, tail: bytes | Key | Interleave | None, tx_ns: int) -> bytes:
    """Join a reply from :meth:`NtpServer.handle` with the transmit timestamp (POSIX ns, read just before the
    send; marked as a transmit timestamp); a :class:`~appliance.ntp.keys.Key` as the tail signs the whole
    with that key's MAC; an :class:`Interleave` sends its earlier transmit time instead, if it has one."""
    if tail is None:
        return head
    if isinstance(tail, Interleave):
        transmit = tail.transmit if tail.transmit is not None else mark_transmit(ntp64_from_ns(tx_ns))
        tail = tail.tail
    else:
        transmit = mark_transmit(ntp64_from_ns(tx_ns))
    body = head + _TS.pack(transmit)
    if isinstance(tail, Key):
        return body + tail.mac(body)
    return body + tail


def _kiss(data: bytes, version: int, mode: int, min_poll: int) -> bytes:
    """A RATE Kiss-o'-Death for a request (RFC 5905 section 7.4): no usable time in it.

    Its poll is the client's, or ``min_poll`` (the ``discard average``) if that is longer: what ntpd sends,
    the interval the client should poll at from now on.
    """
    xmt = data[40:48]
    asked = data[2] - 256 if data[2] > 127 else data[2]
    poll = max(asked, min_poll) & 0xFF
    head = _PREFIX.pack((LEAP_UNSYNC << 6) | (version << 3) | mode, 0, poll, 0, 0, 0, _RATE, 0)
    # reference, origin, receive and transmit all carry the client's own transmit timestamp (as ntpd does)
    return head[:16] + xmt + xmt + xmt + xmt
