"""The upstream NTP client, sans I/O: when to ask each server, what to send, what its replies mean.

RFC 5905 sections 8, 9 and 13 (client mode), RFC 9109 (port randomisation),
RFC 8633 (client best practices) and the NTP data-minimisation draft. The
caller (:mod:`appliance.io.ntpclient`) owns the sockets, the clocks and the
resolver; everything here takes the time as an argument. Two clocks are in
play and never mixed:

- *scheduling* times (``now_ns`` of :meth:`Association.request`, ``due_ns``,
  and everything of :class:`Upstreams`) are on any steady clock: the edge
  uses ``CLOCK_MONOTONIC``, so a step of the system clock does not stall or
  hurry the polls;
- *timestamps* (T1 given to :meth:`Association.sent`, T4 to
  :meth:`Association.receive`) are on the clock being disciplined, POSIX ns.

One :class:`Association` per server address:

- **Poll interval** ``2**poll`` s, ``minpoll <= poll <= maxpoll`` (defaults
  6 and 10: 64 s to 17 min), spread by +-1/32 at random so that many
  clients do not fall into step. It adapts as ntpd's does (RFC 5905 section
  12, the "jiggle" counter): a sample within 4 jitters (PGATE) of the
  filter's offset adds ``poll`` to a counter, any other subtracts
  ``2 * poll``; past +30 the poll goes up one, past -30 down one. A steady
  server is thus asked less and less often, down to once per ``maxpoll``;
  a jittery one (or a local clock that wanders) more often.
- **iburst**: the first :data:`BURST_PACKETS` (4) requests go 2 s apart,
  and again when an unreachable server answers once more. We follow
  chrony's 4 rather than ntpd's 8: three samples make a server selectable
  (:data:`~appliance.sources.source.MIN_SERVER_SAMPLES`), the fourth is
  one to spare for a lost or queued one, and half the packets is kinder to
  public servers. **burst** (for one's own servers only):
  every poll of a reachable server is a burst of 4 packets 2 s apart.
- **Reach**: the :class:`~appliance.sources.source.Source`'s register shifts
  at every request and a sample sets bit 0. A server is *unreachable* after
  :data:`UNREACH_POLLS` (8) requests in a row brought no answer; every
  further unanswered poll then doubles the interval, up to ``maxpoll``.
- **Kiss-o'-Death** (RFC 5905 section 7.4), honoured only when its origin
  timestamp matches our request: ``RATE`` raises the poll exponent to at
  least one more than the one that was refused (and the KoD's own poll
  field), makes that the new minimum, and ends any burst; ``DENY`` and
  ``RSTR`` stop the association for good (:attr:`Association.stopped` says
  why, the source is disabled); other codes are counted and ignored.
- **Replies** must answer the request in flight: the origin timestamp must
  be the transmit timestamp we sent. Replies to earlier requests are
  dropped as ``stale``, second copies as ``duplicate``, anything else as
  ``origin`` (bogus or spoofed); unsynchronised servers (leap 3, stratum 0
  or 16) and servers whose root distance exceeds 16 s give no sample (an
  unsynchronised reply also records its leap and stratum on the source,
  which makes it unfit for selection at once, as RFC 5905's ``packet()``
  does). A reply to a request sent before the clock was stepped is
  dropped as ``stepped`` (:meth:`Association.clock_stepped`).
- **The transmit timestamp** of a request is a random 64-bit number, not our
  clock (the data-minimisation draft, as chrony does): it tells nobody the
  time of this appliance, and an off-path attacker has 64 bits to guess
  before a forged reply passes the origin check. T1, the real send time,
  stays here and the offset is computed from it. Every other field of the
  request is zero except version, mode and poll.
- Each sample's own dispersion is the two precisions (server's and ours)
  plus PHI times the delay (RFC 5905 section 8).

:class:`Upstreams` holds the associations of every ``server``, ``pool`` and
``peer`` line (``peer`` lines are polled in client mode). A numeric address
gets its association at once. A name needs resolving: the edge reads
:meth:`Upstreams.resolutions_due`, resolves, and reports back with
:meth:`Upstreams.resolved` or :meth:`Upstreams.resolution_failed` (retried
with a doubling back-off). A ``pool`` keeps up to :data:`POOL_SIZE` (4)
servers: :meth:`Upstreams.retire` removes members that are unreachable or
sent DENY/RSTR (not re-added for an hour) and the pool then asks to be
resolved again. A ``server NAME`` whose server became unreachable is
resolved again (every 10 minutes at most) and moves if the name now gives
another address. :meth:`Upstreams.reconfigure` takes a reloaded
configuration's lines: unchanged lines keep their associations (and their
reach and filters), lines gone hand theirs to :meth:`Upstreams.retire`, new
lines start as at start-up.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from appliance.config.model import Location, ServerLine
from appliance.ntp.exchange import measure
from appliance.ntp.keys import Key, KeyRing
from appliance.ntp.packet import MODE_CLIENT, MODE_PASSIVE, MODE_SERVER, NtpPacket, PacketError
from appliance.sources.filter import MAXDISP_NS, phi_growth
from appliance.sources.source import (
    Source,
    SourceConfig,
    SourceEstimate,
    SourceKind,
    SourceSample,
    precision_ns,
)
from appliance.timebase import NS_PER_S, ntp64_from_ns

NTP_PORT = 123
DEFAULT_MINPOLL = 6
DEFAULT_MAXPOLL = 10
#: The poll exponents an association accepts (RFC 5905 allows 4..17; ntpd 3, NTPsec 0 as the lowest).
MIN_POLL = 0
MAX_POLL = 17
#: Requests in an iburst or burst, and their spacing.
BURST_PACKETS = 4
BURST_SPACING_NS = 2 * NS_PER_S
#: How long a request waits for its reply.
RESPONSE_TIMEOUT_NS = 3 * NS_PER_S // 2
#: Unanswered requests in a row after which a server is unreachable.
UNREACH_POLLS = 8
#: Poll adaptation: the counter's limit and the gate in jitters (RFC 5905 "LIMIT", "PGATE").
POLL_ADJUST_LIMIT = 30
POLL_GATE = 4
#: Servers a pool keeps.
POOL_SIZE = 4
#: Name resolution: first retry after a failure, the longest back-off, the least time between lookups
#: of one name while it is short of servers, and how long a retired pool address stays out.
RESOLVE_RETRY_NS = 16 * NS_PER_S
RESOLVE_RETRY_MAX_NS = 3600 * NS_PER_S
RESOLVE_REFRESH_NS = 600 * NS_PER_S
RETIRE_HOLD_NS = 3600 * NS_PER_S
_RECENT_REQUESTS = 8
_NOWHERE = Location("", 0)


def interval_ns(poll: int) -> int:
    """The poll interval 2**poll s in ns."""
    return NS_PER_S << poll if poll >= 0 else NS_PER_S >> -poll


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """One server's options (from its ``server``/``pool`` line); ``precision`` is the local clock's, log2 s."""

    minpoll: int = DEFAULT_MINPOLL
    maxpoll: int = DEFAULT_MAXPOLL
    iburst: bool = False
    burst: bool = False
    prefer: bool = False
    noselect: bool = False
    version: int = 4
    precision: int = -20
    #: ``key N``: every request carries this key's MAC, and only replies with a valid MAC of it are used.
    key: Key | None = None

    def __post_init__(self) -> None:
        if not MIN_POLL <= self.minpoll <= self.maxpoll <= MAX_POLL:
            raise ValueError(f"need {MIN_POLL} <= minpoll <= maxpoll <= {MAX_POLL}, not {self.minpoll}, {self.maxpoll}")
        if not 1 <= self.version <= 4:
            raise ValueError(f"NTP version {self.version}")

    @classmethod
    def from_line(cls, line: ServerLine, precision: int = -20, keys: KeyRing | None = None) -> ClientSettings:
        """The settings a config line asks for; a lone minpoll above the default maxpoll raises maxpoll too.

        ``key N`` takes key N from ``keys`` (the parser made sure it is there and trusted).
        """
        lo = line.minpoll if line.minpoll is not None else DEFAULT_MINPOLL
        hi = line.maxpoll if line.maxpoll is not None else max(DEFAULT_MAXPOLL, lo)
        lo = min(lo, hi)
        return cls(
            minpoll=lo,
            maxpoll=hi,
            iburst=line.iburst,
            burst=line.burst,
            prefer=line.prefer,
            noselect=line.noselect,
            version=line.version if line.version is not None else 4,
            precision=precision,
            key=keys.trusted_key(line.key) if keys is not None and line.key is not None else None,
        )


@dataclass(slots=True)
class ClientCounters:
    """What one association did: requests sent, datagrams received, and their fates."""

    requests: int = 0
    received: int = 0
    samples: int = 0
    timeouts: int = 0
    kod: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """What :meth:`Association.receive` made of a datagram.

    ``outcome`` is ``"sample"`` (``sample`` holds it), ``"kod"`` (``reason``
    is the kiss code) or ``"dropped"`` (``reason`` says why: ``origin``,
    ``stale``, ``duplicate``, ``unsynchronised``...). ``answered`` is True
    when the datagram answered the request in flight, which is then over:
    the edge may close its socket.
    """

    outcome: str
    reason: str = ""
    sample: SourceSample | None = None
    answered: bool = False


@dataclass(slots=True)
class _Pending:
    xmt: int
    sent_at: int
    t1_ns: int | None = None
    stepped: bool = False  # the clock was stepped while it was in flight: T1 and T4 differ in scale


class Association:
    """The client side of one server address; see the module docstring.

    ``now_ns`` (scheduling clock) is when it was made: the first request is
    due at once. ``host`` is the name it came from (for display). ``rng``
    draws the transmit timestamps and the poll spread; the default is the
    system's cryptographic generator.
    """

    def __init__(
        self,
        address: str,
        now_ns: int,
        settings: ClientSettings | None = None,
        *,
        port: int = NTP_PORT,
        host: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        s = settings or ClientSettings()
        self.address = address
        self.port = port
        self.host = host or address
        self.settings = s
        self.rng = rng or random.SystemRandom()
        name = address if port == NTP_PORT else (f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
        self.source = Source(
            SourceConfig(
                name=name,
                kind=SourceKind.SERVER,
                prefer=s.prefer,
                noselect=s.noselect,
                minpoll=s.minpoll,
                maxpoll=s.maxpoll,
                address=address,
                precision=s.precision,
                keyid=s.key.keyid if s.key is not None else 0,
            )
        )
        self.counters = ClientCounters()
        #: The poll bounds in force (a RATE KoD raises them).
        self.minpoll = s.minpoll
        self.maxpoll = s.maxpoll
        #: When the next request is due (scheduling clock), None once stopped.
        self.due_ns: int | None = now_ns
        #: Why the association stopped for good (a DENY/RSTR KoD), None while it runs.
        self.stopped: str | None = None
        #: Requests in a row that brought no answer.
        self.missed = 0
        self._adjust = 0
        self._burst_left = BURST_PACKETS - 1 if s.iburst else 0
        self._in_burst = s.iburst
        self._pending: _Pending | None = None
        self._recent: deque[int] = deque(maxlen=_RECENT_REQUESTS)
        self._answered: int | None = None

    # -- what the edge reads --------------------------------------------------

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def poll(self) -> int:
        """The poll exponent in use (log2 s)."""
        return self.source.poll

    @poll.setter
    def poll(self, value: int) -> None:
        self.source.poll = value

    @property
    def reach(self) -> int:
        return self.source.reach

    @property
    def unreachable(self) -> bool:
        """True after UNREACH_POLLS requests in a row without an answer."""
        return self.missed >= UNREACH_POLLS

    @property
    def waiting(self) -> bool:
        """True while a request is in flight."""
        return self._pending is not None

    def estimate(self, now_ns: int) -> SourceEstimate:
        """The source's estimate at ``now_ns`` (disciplined clock, POSIX ns)."""
        return self.source.estimate(now_ns)

    # -- the exchange ---------------------------------------------------------

    def request(self, now_ns: int) -> bytes:
        """Start a request at ``now_ns`` (scheduling clock); return the datagram to send.

        Call it when ``due_ns`` has come; then call :meth:`sent` with T1. A
        request still in flight counts as unanswered. Raises RuntimeError
        once the association has stopped.
        """
        if self.stopped is not None:
            raise RuntimeError(self.stopped)
        if self._pending is not None:
            self._unanswered()
        self.source.polled()
        if not self._in_burst and self.settings.burst and self.reach:
            self._burst_left = BURST_PACKETS - 1
        xmt = self.rng.getrandbits(64) or 1
        self._pending = _Pending(xmt, now_ns)
        self._recent.append(xmt)
        self.counters.requests += 1
        self._schedule(now_ns)
        request = NtpPacket(version=self.settings.version, mode=MODE_CLIENT, poll=self.poll, transmit=xmt).encode()
        key = self.settings.key
        return request if key is None else request + key.mac(request)

    def sent(self, t1_ns: int) -> None:
        """Record T1 (disciplined clock, POSIX ns), read just before the request left."""
        if self._pending is not None and self._pending.t1_ns is None:
            self._pending.t1_ns = t1_ns

    def timed_out(self) -> None:
        """No reply came for the request in flight (the edge's timeout, RESPONSE_TIMEOUT_NS)."""
        if self._pending is not None:
            self._unanswered()

    def clock_stepped(self, step_ns: int) -> None:
        """The disciplined clock was stepped by ``step_ns`` (positive: forwards).

        The stored samples are restated on the new scale
        (:meth:`~appliance.sources.source.Source.shift`); a reply to the
        request in flight, whose T1 was read before the step, is dropped as
        ``stepped`` (it still counts as an answer).
        """
        self.source.shift(step_ns)
        if self._pending is not None:
            self._pending.stepped = True

    def receive(self, data: bytes, t4_ns: int) -> Reply:
        """Take a datagram received at ``t4_ns`` (disciplined clock, POSIX ns); see :class:`Reply`."""
        self.counters.received += 1
        try:
            p = NtpPacket.decode(data)
        except PacketError as e:
            return self._drop(e.reason)
        if p.mode not in (MODE_SERVER, MODE_PASSIVE):
            return self._drop("mode")
        key = self.settings.key
        if key is not None:
            # authenticated: a reply no MAC of our key signs is not from the server we share the key with
            if not key.allows(self.address):  # the key file limits the key to other addresses (ntpd's list)
                return self._drop("key-address")
            if p.mac is None or len(p.mac) <= 4:
                return self._drop("crypto-nak" if p.mac is not None else "unauthenticated")
            if not key.signed(data[: len(data) - len(p.mac)], p.mac):
                return self._drop("bad-mac")
        pending = self._pending
        if pending is None or p.origin != pending.xmt:
            if p.origin == self._answered:
                return self._drop("duplicate")
            if p.origin in self._recent:
                return self._drop("stale")
            return self._drop("origin")
        if pending.t1_ns is None:
            return self._drop("unsent")
        self._pending = None
        self._answered = pending.xmt
        was_unreachable = self.unreachable
        self.missed = 0
        kiss = p.kiss_code
        if kiss is not None:
            return self._kiss(kiss, p, pending)
        if pending.stepped:
            return self._drop("stepped", answered=True)
        # The reply's origin is our random transmit timestamp (matched above); the offset needs T1.
        try:
            m = measure(p, ntp64_from_ns(pending.t1_ns), t4_ns)
        except PacketError as e:
            return self._drop(e.reason, answered=True)
        if not m.synchronised:
            # RFC 5905 packet(): the peer's leap and stratum are taken before this check, so a server
            # that lost its own sync is unfit for selection at once, not only once its reach runs out
            self.source.leap = m.leap
            self.source.stratum = m.stratum if 0 < m.stratum < 16 else 16
            self.source.says_unsynchronised = True
            return self._drop("unsynchronised", answered=True)
        if m.root_delay_ns // 2 + m.root_dispersion_ns >= MAXDISP_NS:
            return self._drop("distance", answered=True)
        delay = max(0, m.delay_ns)
        sample = SourceSample(
            time_ns=t4_ns,
            offset_ns=m.offset_ns,
            delay_ns=delay,
            dispersion_ns=precision_ns(m.precision) + precision_ns(self.settings.precision) + phi_growth(delay),
            root_delay_ns=m.root_delay_ns,
            root_dispersion_ns=m.root_dispersion_ns,
            stratum=m.stratum,
            leap=m.leap,
            refid=m.refid,
        )
        before = self.source.filter.output
        self.source.add(sample)
        self.counters.samples += 1
        if was_unreachable:
            self._recovered(pending)
        elif before is not None:
            self._adapt(sample.offset_ns - before.offset_ns, before.jitter_ns)
        return Reply("sample", sample=sample, answered=True)

    # -- internals ------------------------------------------------------------

    def _drop(self, reason: str, *, answered: bool = False) -> Reply:
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + 1
        return Reply("dropped", reason, answered=answered)

    def _unanswered(self) -> None:
        self._pending = None
        self.missed += 1
        self.counters.timeouts += 1

    def _schedule(self, now_ns: int) -> None:
        """Set ``due_ns`` after a request at ``now_ns``: the burst spacing, or the (backed-off) poll interval."""
        if self._burst_left > 0:
            self._burst_left -= 1
            self._in_burst = True
            self.due_ns = now_ns + min(BURST_SPACING_NS, interval_ns(self.maxpoll))
            return
        self._in_burst = False
        if self.unreachable:
            self.poll = min(self.poll + 1, self.maxpoll)
        base = interval_ns(self.poll)
        spread = base // 32
        self.due_ns = now_ns + base + self.rng.randint(-spread, spread)

    def _adapt(self, deviation_ns: int, jitter_ns: int) -> None:
        """The jiggle counter of RFC 5905 section 12 (see the module docstring)."""
        if abs(deviation_ns) <= POLL_GATE * max(jitter_ns, self.source.filter.jitter_floor_ns):
            self._adjust += self.poll
            if self._adjust > POLL_ADJUST_LIMIT:
                self._adjust = POLL_ADJUST_LIMIT
                if self.poll < self.maxpoll:
                    self._adjust = 0
                    self.poll += 1
        else:
            self._adjust -= 2 * self.poll
            if self._adjust < -POLL_ADJUST_LIMIT:
                self._adjust = -POLL_ADJUST_LIMIT
                if self.poll > self.minpoll:
                    self._adjust = 0
                    self.poll -= 1

    def _recovered(self, pending: _Pending) -> None:
        """An unreachable server answered again: back to minpoll, with an iburst if configured."""
        self.poll = self.minpoll
        self._adjust = 0
        if self.settings.iburst:
            self._burst_left = BURST_PACKETS - 1
            self._in_burst = True
            self.due_ns = pending.sent_at + min(BURST_SPACING_NS, interval_ns(self.maxpoll))
        else:
            self.due_ns = pending.sent_at + interval_ns(self.poll)

    def _kiss(self, code: str, p: NtpPacket, pending: _Pending) -> Reply:
        self.counters.kod[code] = self.counters.kod.get(code, 0) + 1
        if code == "RATE":
            new = min(MAX_POLL, max(self.poll, p.poll) + 1)
            self.minpoll = max(self.minpoll, new)
            self.maxpoll = max(self.maxpoll, self.minpoll)
            self.poll = self.minpoll
            self._burst_left = 0
            self._in_burst = False
            self._adjust = 0
            self.due_ns = pending.sent_at + interval_ns(self.poll)
        elif code in ("DENY", "RSTR"):
            self.stopped = (
                f"{self.host} ({self.address}) sent a {code} Kiss-o'-Death: access denied, not polled any more"
            )
            self.due_ns = None
            self.source.disable(self.stopped)
        return Reply("kod", code, answered=True)


@dataclass(frozen=True, slots=True)
class Resolution:
    """A name the edge is asked to resolve: into at most ``count`` addresses of ``family`` (4, 6, None: any)."""

    key: int
    host: str
    port: int
    family: int | None
    count: int


@dataclass(slots=True)
class _Entry:
    key: int
    line: ServerLine
    settings: ClientSettings
    port: int
    pool: bool
    want: int
    numeric: bool
    members: list[Association] = field(default_factory=list)
    next_resolve_ns: int | None = None
    backoff_ns: int = RESOLVE_RETRY_NS
    retired: dict[str, int] = field(default_factory=dict)


class Upstreams:
    """The associations of every configured server and pool; see the module docstring.

    ``lines`` are the config's server lines (refclock pseudo-addresses are
    skipped); ``now_ns`` is on the scheduling clock; ``precision`` the local
    clock's (log2 s).
    """

    def __init__(
        self,
        lines: Iterable[ServerLine],
        now_ns: int,
        *,
        precision: int = -20,
        pool_size: int = POOL_SIZE,
        rng: random.Random | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.rng = rng or random.SystemRandom()
        self.keys = keys if keys is not None else KeyRing()
        self.precision = precision
        self.pool_size = pool_size
        self._entries: list[_Entry] = []
        self._removed: list[Association] = []
        self._next_key = 0
        for line in _client_lines(lines):
            self._add(line, now_ns)

    def _add(self, line: ServerLine, now_ns: int) -> None:
        """Start polling what ``line`` says: at once for an address, after a lookup for a name."""
        numeric = _numeric(line.host)
        pool = line.kind == "pool"
        e = _Entry(
            key=self._next_key,
            line=line,
            settings=ClientSettings.from_line(line, self.precision, self.keys),
            port=line.port or NTP_PORT,
            pool=pool,
            want=self.pool_size if pool else 1,
            numeric=bool(numeric) and not pool,
        )
        self._next_key += 1
        self._entries.append(e)
        if e.numeric and (numeric, e.port) not in self._in_use():
            e.members.append(self._associate(e, numeric, now_ns))
        elif not e.numeric:
            e.next_resolve_ns = now_ns

    def reconfigure(
        self, lines: Iterable[ServerLine], now_ns: int, keys: KeyRing | None = None
    ) -> tuple[list[str], list[str]]:
        """Follow a reloaded configuration's server lines; return the hosts (added, removed).

        A line that says the same as before (wherever it stands now) keeps
        its entry and associations; the associations of lines gone are
        handed out by the next :meth:`retire`, so the edge closes their
        sockets; new lines start as at start-up. ``keys`` (the key file read
        again): kept associations with ``key N`` sign and check with its new
        secret from now on.
        """
        if keys is not None:
            self.keys = keys
            for entry in self._entries:
                if entry.line.key is not None:
                    entry.settings = ClientSettings.from_line(entry.line, self.precision, keys)
                    for a in entry.members:
                        a.settings = entry.settings
        old = {_line_key(e.line): e for e in self._entries}
        kept: list[_Entry] = []
        fresh: list[ServerLine] = []
        for line in _client_lines(lines):
            e = old.pop(_line_key(line), None)
            if e is None:
                fresh.append(line)
            else:
                e.line = line
                kept.append(e)
        for gone in old.values():
            for a in gone.members:
                a.stopped = a.stopped or "its line is gone from the configuration"
            self._removed.extend(gone.members)
        self._entries = kept
        for line in fresh:
            self._add(line, now_ns)
        return [line.host for line in fresh], [e.line.host for e in old.values()]

    @property
    def associations(self) -> list[Association]:
        """Every association in use, in config order."""
        return [a for e in self._entries for a in e.members]

    def estimates(self, now_ns: int) -> list[SourceEstimate]:
        """The estimates of every association at ``now_ns`` (disciplined clock)."""
        return [a.estimate(now_ns) for a in self.associations]

    def clock_stepped(self, step_ns: int) -> None:
        """The disciplined clock was stepped by ``step_ns``: see :meth:`Association.clock_stepped`."""
        for a in self.associations:
            a.clock_stepped(step_ns)

    @property
    def configured(self) -> bool:
        """Whether any ``server``, ``pool`` or ``peer`` line is configured (resolved or not)."""
        return bool(self._entries)

    def clock_slewed(self, moved_ns: Callable[[int], int]) -> None:
        """The disciplined clock's phase was slewed: every association's stored offsets are restated
        (:meth:`~appliance.sources.source.Source.slewed`)."""
        for a in self.associations:
            a.source.slewed(moved_ns)

    def next_wakeup_ns(self) -> int | None:
        """The earliest time (scheduling clock) something is due: a request or a name lookup."""
        times = [a.due_ns for a in self.associations if a.due_ns is not None]
        times += [e.next_resolve_ns for e in self._entries if e.next_resolve_ns is not None and self._wanted(e)]
        return min(times) if times else None

    def due(self, now_ns: int) -> list[Association]:
        """The associations whose request is due at ``now_ns``."""
        return [a for a in self.associations if a.due_ns is not None and a.due_ns <= now_ns]

    def resolutions_due(self, now_ns: int) -> list[Resolution]:
        """The names to resolve now; each must be answered by :meth:`resolved` or :meth:`resolution_failed`."""
        out = []
        for e in self._entries:
            want = self._wanted(e)
            if want and e.next_resolve_ns is not None and e.next_resolve_ns <= now_ns:
                e.next_resolve_ns = now_ns + e.backoff_ns
                out.append(Resolution(e.key, e.line.host, e.port, e.line.family, want))
        return out

    def _entry(self, key: int) -> _Entry | None:
        return next((e for e in self._entries if e.key == key), None)

    def resolved(self, key: int, addresses: Iterable[str], now_ns: int) -> list[Association]:
        """Take the addresses a name gave; return the associations made for them (already due).

        An entry a reload removed meanwhile takes nothing.
        """
        e = self._entry(key)
        if e is None:
            return []
        e.backoff_ns = RESOLVE_RETRY_NS
        e.next_resolve_ns = now_ns + RESOLVE_REFRESH_NS
        in_use = self._in_use()
        new = []
        for raw in addresses:
            addr = _numeric(raw) or raw
            if e.retired.get(addr, now_ns) > now_ns:
                continue
            if not e.pool and e.members:
                current = e.members[0]
                if addr == current.address or not current.unreachable or (addr, e.port) in in_use:
                    break  # still the same server, or it works: keep it
                e.members.remove(current)
                self._removed.append(current)
            if len(e.members) >= e.want:
                break
            if (addr, e.port) in in_use:
                continue
            a = self._associate(e, addr, now_ns)
            e.members.append(a)
            new.append(a)
            in_use.add((addr, e.port))
        return new

    def resolution_failed(self, key: int, now_ns: int) -> None:
        """The lookup of an entry's name failed: try again later, backing off up to an hour."""
        e = self._entry(key)
        if e is None:
            return
        e.next_resolve_ns = now_ns + e.backoff_ns
        e.backoff_ns = min(2 * e.backoff_ns, RESOLVE_RETRY_MAX_NS)

    def retire(self, now_ns: int) -> list[Association]:
        """Remove pool members that are unreachable or refused us, and servers replaced; return them.

        A pool that lost members asks to be resolved again (at most every
        RESOLVE_RETRY_NS after the last lookup).
        """
        removed, self._removed = self._removed, []
        for e in self._entries:
            e.retired = {a: t for a, t in e.retired.items() if t > now_ns}
            if not e.pool:
                continue
            for a in list(e.members):
                if a.stopped is not None or a.unreachable:
                    e.members.remove(a)
                    e.retired[a.address] = now_ns + RETIRE_HOLD_NS
                    removed.append(a)
                    soon = now_ns + RESOLVE_RETRY_NS
                    e.next_resolve_ns = soon if e.next_resolve_ns is None else min(e.next_resolve_ns, soon)
        return removed

    def _wanted(self, e: _Entry) -> int:
        if e.numeric:
            return 0
        if not e.pool and e.members:
            return 1 if e.members[0].unreachable else 0
        return max(0, e.want - len(e.members))

    def _in_use(self) -> set[tuple[str, int]]:
        return {(a.address, a.port) for a in self.associations}

    def _associate(self, e: _Entry, address: str, now_ns: int) -> Association:
        return Association(address, now_ns, e.settings, port=e.port, host=e.line.host, rng=self.rng)


def _client_lines(lines: Iterable[ServerLine]) -> list[ServerLine]:
    """The lines the client polls: ``server``, ``pool`` and ``peer``, not reference clocks."""
    return [line for line in lines if line.refclock is None and line.kind in ("server", "pool", "peer")]


def _line_key(line: ServerLine) -> ServerLine:
    """What a line says, without where it stands (a reload compares lines by this)."""
    return replace(line, location=_NOWHERE)


def _numeric(host: str) -> str:
    """The normalised numeric address ``host`` is, or "" for a name (a ``%scope`` is kept)."""
    base, _, scope = host.partition("%")
    try:
        ip = ipaddress.ip_address(base)
    except ValueError:
        return ""
    return f"{ip}%{scope}" if scope else str(ip)
