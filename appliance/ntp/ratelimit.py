"""Per-client rate limiting and Kiss-o'-Death pacing (ntpd's ``limited`` and ``kod``), sans I/O.

The server calls :meth:`RateLimiter.check` for every request from a client
whose restriction has ``limited``; the answer is :data:`PASS` (serve it),
:data:`LIMITED` (drop it silently) or :data:`LIMITED_KOD` (drop it, but send a
RATE Kiss-o'-Death, RFC 5905 section 7.4, now). Times are int ns
(:mod:`appliance.timebase`), passed in; nothing here reads a clock.

What ``discard`` means
----------------------
ntpd's ``discard average A minimum M`` asks clients to keep their requests at
least 2**A seconds apart on average and never closer than M seconds
(ntp_acc(5), ntp_mon(5)). ntpd checks each packet's headway against the
minimum and a leaky bucket of eight increments against the average, per MRU
entry, so a client whose 2 s ``iburst`` packets come a little early can be
limited. stratum1 keeps the meaning and tolerates honest timing:

- the *average*: a token bucket of ``discard.burst`` tokens (default 8, one
  ``iburst``) that refills one token every 2**``average_log2`` s (default 8 s);
- the *minimum*: a token bucket of :data:`SHORT_TERM_BURST` (3) tokens that
  refills one token every ``minimum_s`` s (default 2 s). A client sending one
  request per ``minimum_s`` never empties it even when every spacing is 0.3 s
  short for a whole ``iburst``; a stream faster than that is cut to one
  request per ``minimum_s`` after at most three;
- a request passes when both buckets hold a token, and then takes one from
  each. A refused request takes nothing, so a client that floods is still
  answered at the configured average rate (one per 2**A s), and one that
  stops is served again at most 2**A s later, with its full burst back after
  ``burst`` * 2**A s.

Both buckets are kept as a *theoretical arrival time* (GCRA, ITU-T I.371):
one integer per bucket, the time at which the bucket would be empty, pushed
on by the refill interval at every passed request. With refill interval T
and capacity B a request at ``now`` conforms when ``tat - now <= (B-1)*T``,
where ``tat`` is ``max(tat, now)``. No floats, no per-request division.

What a compliant client looks like (all are served, tests show it): the NTP
Pool monitor (3 requests 2 s apart every 2-15 minutes), ntpd's ``iburst`` (8
requests 2 s apart, then one per 64 s), chrony's (4 requests 2 s apart, then
64 s).

Kiss-o'-Death
-------------
For a client whose restriction has ``kod``, a limited request returns
:data:`LIMITED_KOD` at most once per 2**``average_log2`` s for that client,
as ntpd paces it; and all KoDs together are capped by one global token bucket
(``kod_per_second``, burst ``kod_burst``), so that a flood of requests with
forged sources from many addresses cannot turn the server into a reflector.
Every other limited request is dropped silently.

The client table
----------------
chrony's clientlog is the model: a table of ``slots`` entries allocated up
front (one ``array`` of int64, four per entry), split into sets of ``ways``
entries. A new key (the client's address as text) takes the entry of the set
chosen by ``hash(key)`` that was seen least recently (Python's string hash is
salted per process, so an attacker cannot aim at one set); a dict from key to
entry, never holding more than ``slots`` keys, finds it again in one step.
Memory is therefore fixed whatever the number of clients: the array never
grows, and only the keys of the at most ``slots`` clients held are kept. A
forgotten client starts again with full buckets, which is harmless: a
flooder is never the least recently seen of its set.

The daemon uses the same table compiled to C where it was built
(:class:`appliance.io.fastpath.FastRateLimiter`: the numbers from
:func:`limits`, a keyed hash for the sets, the tests of this module run
against both).

``discard monitor`` (ntpd's MRU discard probability) has no meaning here and
is ignored.

The times passed in may go back a little (packets from several sockets
handled out of order): that only makes the buckets stricter for a moment.
If they go back by more than :data:`STEP_SLACK_NS` beyond what a bucket can
hold (a clock step), an entry whose state lies impossibly far in the future
is reset rather than limited until the clock catches up.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from appliance.config.model import Discard
from appliance.timebase import NS_PER_S

PASS = 0
LIMITED = 1
LIMITED_KOD = 2

#: Capacity of the short-term (``minimum``) bucket, in requests.
SHORT_TERM_BURST = 3

#: Default global cap on KoD replies: rate (per second) and burst.
KOD_PER_SECOND = 100.0
KOD_BURST = 10

_NEVER = -(1 << 62)  # a time before any real time: an empty slot, a fresh bucket
_MAX_SPAN = 1 << 60  # ns; a bucket's span, so that now + span stays in an int64
#: How far back the time passed in may go before it counts as a clock step (ns).
STEP_SLACK_NS = NS_PER_S

# Layout of one entry in RateLimiter._state: last seen (offset 0), then:
_AVG = 1  # theoretical arrival time of the average bucket
_MIN = 2  # theoretical arrival time of the minimum bucket
_KOD = 3  # when the client was last sent a KoD
_STRIDE = 4


def _interval_ns(log2_s: int) -> int:
    """Return 2**log2_s seconds in ns (log2_s may be negative)."""
    return NS_PER_S << log2_s if log2_s >= 0 else NS_PER_S >> -log2_s


@dataclass(frozen=True, slots=True)
class Limits:
    """The buckets of :class:`RateLimiter` in ns: refill interval and tolerance ((capacity-1) * interval)."""

    avg_ns: int
    avg_tau: int
    min_ns: int
    min_tau: int
    kod_ns: int
    kod_tau: int


def limits(
    discard: Discard,
    *,
    slots: int = 65536,
    ways: int = 8,
    kod_per_second: float = KOD_PER_SECOND,
    kod_burst: int = KOD_BURST,
) -> Limits:
    """Check :class:`RateLimiter`'s parameters and return its buckets; ValueError names what is wrong.

    Shared with the compiled table (:class:`appliance.io.fastpath.FastRateLimiter`), so both
    implementations limit with the same numbers.
    """
    if ways < 1 or ways & (ways - 1):
        raise ValueError(f"ways must be a power of two, not {ways}")
    if slots < ways or slots & (slots - 1):
        raise ValueError(f"slots must be a power of two and at least ways ({ways}), not {slots}")
    if discard.burst < 1:
        raise ValueError(f"discard burst must be at least 1, not {discard.burst}")
    if discard.minimum_s < 0:
        raise ValueError(f"discard minimum must not be negative, not {discard.minimum_s}")
    if not -30 <= discard.average_log2 <= 30:
        raise ValueError(f"discard average must be 2**-30 .. 2**30 s, not 2**{discard.average_log2}")
    if discard.burst * _interval_ns(discard.average_log2) > _MAX_SPAN or (
        SHORT_TERM_BURST * discard.minimum_s * NS_PER_S > _MAX_SPAN
    ):
        raise ValueError("discard burst, average or minimum out of range (buckets over 36 years)")
    if not kod_per_second > 0 or kod_burst < 1:
        raise ValueError("kod_per_second must be positive and kod_burst at least 1")
    avg_ns = _interval_ns(discard.average_log2)
    min_ns = discard.minimum_s * NS_PER_S
    kod_ns = max(1, round(NS_PER_S / kod_per_second))
    if kod_burst * kod_ns > _MAX_SPAN:
        raise ValueError("kod_per_second too small or kod_burst too large (KoD bucket over 36 years)")
    return Limits(
        avg_ns=avg_ns,
        avg_tau=(discard.burst - 1) * avg_ns,
        min_ns=min_ns,
        min_tau=(SHORT_TERM_BURST - 1) * min_ns,
        kod_ns=kod_ns,
        kod_tau=(kod_burst - 1) * kod_ns,
    )


class RateLimiter:
    """Fixed-size per-client token buckets for ``restrict ... limited [kod]``.

    ``discard`` gives the limits (see the module docstring). ``slots`` (a
    power of two, at least ``ways``) is the number of clients remembered;
    ``ways`` (a power of two) the size of a set. ``kod_per_second`` and
    ``kod_burst`` cap the KoD replies of all clients together.

    Counters (plain ints, never reset here): ``passed``; ``limited`` (every
    request not passed, including those answered with a KoD); ``kod_sent``;
    ``kod_suppressed`` (limited requests of ``kod`` clients that got no KoD,
    by the per-client pacing or the global cap); ``evictions`` (clients
    forgotten to make room).
    """

    __slots__ = (
        "_index",
        "_keys",
        "_state",
        "_set_mask",
        "_ways",
        "_avg_ns",
        "_avg_tau",
        "_min_ns",
        "_min_tau",
        "_kod_ns",
        "_kod_tau",
        "_kod_tat",
        "_avg_step",
        "_min_step",
        "_kod_step",
        "kod_poll",
        "passed",
        "limited",
        "kod_sent",
        "kod_suppressed",
        "evictions",
    )

    def __init__(
        self,
        discard: Discard,
        *,
        slots: int = 65536,
        ways: int = 8,
        kod_per_second: float = KOD_PER_SECOND,
        kod_burst: int = KOD_BURST,
    ) -> None:
        p = limits(discard, slots=slots, ways=ways, kod_per_second=kod_per_second, kod_burst=kod_burst)
        # key -> offset of its entry in _state; never more than `slots` keys
        self._index: dict[str, int] = {}
        # entry number -> key, None while the entry is free
        self._keys: list[str | None] = [None] * slots
        # _STRIDE int64 per entry: last seen, average TAT, minimum TAT, last KoD
        self._state = array("q", [_NEVER]) * (slots * _STRIDE)
        self._set_mask = slots // ways - 1
        self._ways = ways
        self._avg_ns = p.avg_ns
        self._avg_tau = p.avg_tau
        self._min_ns = p.min_ns
        self._min_tau = p.min_tau
        self._kod_ns = p.kod_ns
        self._kod_tau = p.kod_tau
        self._kod_tat = _NEVER
        # beyond these, a TAT ahead of now means the clock stepped back
        self._avg_step = self._avg_tau + self._avg_ns + STEP_SLACK_NS
        self._min_step = self._min_tau + self._min_ns + STEP_SLACK_NS
        self._kod_step = self._kod_tau + self._kod_ns + STEP_SLACK_NS
        #: a RATE Kiss-o'-Death's poll field is at least this (log2 s), as ntpd's: the client's own poll, or
        #: the average spacing ``discard average`` allows if that is longer
        self.kod_poll = discard.average_log2
        self.passed = 0
        self.limited = 0
        self.kod_sent = 0
        self.kod_suppressed = 0
        self.evictions = 0

    @property
    def slots(self) -> int:
        """The number of clients the table remembers."""
        return len(self._keys)

    def check(self, key: str, now_ns: int, kod: bool = False) -> int:
        """Account one request from ``key`` received at ``now_ns``; return PASS, LIMITED or LIMITED_KOD.

        ``kod`` says whether the client's restriction has ``kod``; without it
        the answer is never LIMITED_KOD. LIMITED_KOD means: send a RATE KoD
        now. ``now_ns`` must lie within +-2**62 (POSIX ns: years 1824 to 2116).
        """
        j = self._index.get(key)
        if j is None:
            j = self._claim(key)
        state = self._state
        state[j] = now_ns
        tat_avg = state[j + _AVG]
        if tat_avg < now_ns:
            tat_avg = now_ns
        tat_min = state[j + _MIN]
        if tat_min < now_ns:
            tat_min = now_ns
        if tat_avg - now_ns <= self._avg_tau and tat_min - now_ns <= self._min_tau:
            state[j + _AVG] = tat_avg + self._avg_ns
            state[j + _MIN] = tat_min + self._min_ns
            self.passed += 1
            return PASS
        return self._refuse(j, now_ns, kod, tat_avg, tat_min)

    def _claim(self, key: str) -> int:
        """Give ``key`` the least recently seen entry of its set, with full buckets; return its offset."""
        state = self._state
        base = (hash(key) & self._set_mask) * self._ways
        seen = state[base * _STRIDE : (base + self._ways) * _STRIDE : _STRIDE]  # last seen, per way
        entry = base + seen.index(min(seen))
        old = self._keys[entry]
        if old is not None:
            del self._index[old]
            self.evictions += 1
        self._keys[entry] = key
        j = entry * _STRIDE
        self._index[key] = j
        state[j + _AVG] = _NEVER
        state[j + _MIN] = _NEVER
        state[j + _KOD] = _NEVER
        return j

    def _refuse(self, j: int, now_ns: int, kod: bool, tat_avg: int, tat_min: int) -> int:
        """The request of the entry at ``j`` does not conform: decide between silence and a KoD."""
        state = self._state
        if (
            tat_avg - now_ns > self._avg_step
            or tat_min - now_ns > self._min_step
            or state[j + _KOD] > now_ns + STEP_SLACK_NS
        ):
            # Only reachable when time went backwards: start the client afresh.
            state[j + _AVG] = now_ns + self._avg_ns
            state[j + _MIN] = now_ns + self._min_ns
            state[j + _KOD] = _NEVER
            self.passed += 1
            return PASS
        self.limited += 1
        if not kod:
            return LIMITED
        if now_ns - state[j + _KOD] < self._avg_ns:
            self.kod_suppressed += 1
            return LIMITED
        tat = self._kod_tat
        if tat < now_ns or tat - now_ns > self._kod_step:
            tat = now_ns  # the budget is full (idle), or the clock stepped back
        if tat - now_ns > self._kod_tau:
            self.kod_suppressed += 1
            return LIMITED
        self._kod_tat = tat + self._kod_ns
        state[j + _KOD] = now_ns
        self.kod_sent += 1
        return LIMITED_KOD

    def __contains__(self, key: object) -> bool:
        """Whether the table remembers client ``key`` now."""
        return key in self._index

    def clients(self) -> int:
        """The number of clients remembered now (at most :attr:`slots`)."""
        return len(self._index)
