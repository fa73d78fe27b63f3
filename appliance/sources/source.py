"""One time source, whatever it is: a reference clock, an upstream NTP server, or the local clock (pure).

A :class:`Source` is what selection sees of one configured source. Drivers
and the NTP client hand it :class:`SourceSample` values; it keeps

- the clock filter (:mod:`appliance.sources.filter`, RFC 5905 section 10);
- the *reach* register (RFC 5905 section 9.2): 8 bits, shifted left at every
  poll (:meth:`Source.polled`), bit 0 set by a sample. For an NTP server a
  poll is a request; for a refclock, which hands up a sample every second,
  the owner calls :meth:`Source.polled` every poll interval (2**minpoll s)
  and any sample in between sets the bit. After three polls in a row without
  a sample a dummy stage is shifted into the filter;
- what the source last said about itself: stratum, leap, reference ID, root
  delay and root dispersion (an NTP server's header fields; for a refclock
  its configured stratum, normally 0, and code such as ``PPS``).

:meth:`Source.estimate` freezes all of it at a given time into a
:class:`SourceEstimate`, with the *root distance* (RFC 5905 section 11.2.1,
``root_dist``)::

    lambda = max(MINDIST, root_delay + delay) / 2 + root_dispersion
             + dispersion + jitter

where ``dispersion`` has grown at PHI since the filter last ran. A source is
*usable* for selection when it has a sample (an NTP server:
:data:`MIN_SERVER_SAMPLES` of them), its reach is not 0, its stratum
is below 16, its leap indicator is not 3 (unsynchronised), lambda is below
MAXDIST (1.5 s), and it has not been disabled (an NTP server that sent a DENY
or RSTR Kiss-o'-Death). MINDIST is ntpd's ``tos mindist`` default (1 ms),
which keeps a refclock's correctness interval from shrinking to nothing.

An NTP server's filter counts only the samples it has in its dispersion
(chrony's way, not RFC 5905's empty stages at MAXDISP, see
:mod:`appliance.sources.filter`), and the server is selectable from its
third sample, as chrony is (its regression needs three): at 128 s at a 64 s
poll rather than 192 s, at 4 s with ``iburst``. Three samples give the loop
an offset and a frequency to start from, and their spread a jitter.

The LOCAL kind (ntpd's ``server 127.127.1.0``) measures nothing: its
estimate is always "offset 0, usable", at its configured stratum. It is
polled when first asked for an estimate and every 64 s after, as ntpd's
LOCAL driver: its reach fills from 1 (never 377 before it existed) and its
last update is its latest poll. Selection uses it only when nothing else
survives.

Offsets are reference minus local, in ns: positive means the local clock is
behind and must move forwards.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from appliance.ntp.packet import LEAP_NONE, LEAP_UNSYNC
from appliance.refclock.sample import Sample
from appliance.sources.filter import MAXDISP_NS, ClockFilter
from appliance.state import STRATUM_UNSYNC
from appliance.timebase import NS_PER_S

#: Root distance above which a source is not used (RFC 5905 "MAXDIST", 1.5 s).
MAXDIST_NS = 3 * NS_PER_S // 2
#: Floor of the delay term of the root distance (ntpd's ``tos mindist`` default, 1 ms).
MINDIST_NS = NS_PER_S // 1000
#: The reach register's width and the value of a register full of answers.
REACH_BITS = 8
REACH_FULL = (1 << REACH_BITS) - 1
#: An NTP server is selectable once its filter holds this many samples (chrony's minimum for its regression).
MIN_SERVER_SAMPLES = 3
#: The local clock source's reference time advances in these steps (ntpd's LOCAL driver polls every 64 s).
LOCAL_UPDATE_NS = 64 * NS_PER_S


class SourceKind(enum.Enum):
    """What a source is: it decides the system stratum and reference ID when it is the system peer."""

    REFCLOCK = "refclock"
    SERVER = "server"
    LOCAL = "local"


def precision_ns(log2_s: int) -> int:
    """Return 2**log2_s seconds in ns (at least 1): a precision as a duration."""
    return max(1, NS_PER_S << log2_s if log2_s >= 0 else NS_PER_S >> -log2_s)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """How one source is configured.

    ``name`` must be unique among the sources given to selection (an
    address for an NTP server, ``PPS(0)``-like for a refclock). ``refid`` is
    the 4-octet code of a refclock or the local clock (NUL padded);
    ``stratum`` the stratum the source serves us (0 for a refclock, the
    fudged stratum for the local clock; an NTP server's comes from its
    replies). ``address`` is an NTP server's numeric address. ``precision``
    is the local clock's, log2 s: the floor of the jitter.
    """

    name: str
    kind: SourceKind
    refid: bytes = b"\0\0\0\0"
    stratum: int = 0
    prefer: bool = False
    noselect: bool = False
    minpoll: int = 6
    maxpoll: int = 10
    address: str | None = None
    precision: int = -20
    #: The key an NTP server's replies must be signed with (``key N``); 0: none.
    keyid: int = 0


@dataclass(frozen=True, slots=True)
class SourceSample:
    """One measurement for a source, all times and durations int ns.

    ``time_ns`` is the local time of the measurement (T4 for NTP, the
    refclock's local timestamp); ``offset_ns`` reference minus local;
    ``delay_ns`` the round trip (0 for refclocks); ``dispersion_ns`` the
    sample's own error bound. The rest is what the server stated (root
    delay and dispersion, stratum, leap, refid); None keeps the source's
    configured stratum and refid.
    """

    time_ns: int
    offset_ns: int
    delay_ns: int = 0
    dispersion_ns: int = 0
    root_delay_ns: int = 0
    root_dispersion_ns: int = 0
    stratum: int | None = None
    leap: int = LEAP_NONE
    refid: bytes | None = None

    @classmethod
    def from_refclock(cls, sample: Sample) -> SourceSample:
        """The source sample of a refclock driver's :class:`~appliance.refclock.sample.Sample`."""
        return cls(
            time_ns=sample.local_ns,
            offset_ns=sample.offset_ns,
            dispersion_ns=sample.dispersion_ns,
            leap=sample.leap,
        )


@dataclass(frozen=True, slots=True)
class SourceEstimate:
    """A source frozen at one time, as selection and the status pages see it (ns throughout).

    ``dispersion_ns`` and ``distance_ns`` are as of the time the estimate was
    made; ``updated_ns`` is when the filter last ran (the newest sample),
    None before any sample; ``sample_ns`` the local time of the sample whose
    offset the estimate carries (a new value means a new measurement). ``refid`` is what an NTP server says its
    reference is (as ntpq's ``refid`` column), a refclock's code otherwise.
    ``why_unusable`` is empty when ``usable`` and says why not otherwise.
    """

    name: str
    kind: SourceKind
    offset_ns: int
    delay_ns: int
    dispersion_ns: int
    jitter_ns: int
    root_delay_ns: int
    root_dispersion_ns: int
    distance_ns: int
    stratum: int
    refid: bytes
    leap: int
    reach: int
    usable: bool
    prefer: bool = False
    noselect: bool = False
    updated_ns: int | None = None
    address: str | None = None
    poll: int = 6
    why_unusable: str = ""
    sample_ns: int | None = None
    keyid: int = 0


def root_distance(
    root_delay_ns: int, delay_ns: int, root_dispersion_ns: int, dispersion_ns: int, jitter_ns: int
) -> int:
    """RFC 5905's root distance lambda in ns (see the module docstring), MINDIST applied."""
    return max(MINDIST_NS, root_delay_ns + delay_ns) // 2 + root_dispersion_ns + dispersion_ns + jitter_ns


class Source:
    """The filter, reach register and stated state of one source; see the module docstring."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.filter = ClockFilter(precision_ns(config.precision), count_empty=config.kind is not SourceKind.SERVER)
        self.reach = 0
        #: The poll exponent in use (log2 s); the owner (NTP client, refclock driver) keeps it current.
        self.poll = config.minpoll
        self.stratum = config.stratum
        self.refid = config.refid
        self.leap = LEAP_NONE if config.kind is not SourceKind.SERVER else LEAP_UNSYNC
        self.root_delay_ns = 0
        self.root_dispersion_ns = 0
        self.samples = 0
        self.disabled: str | None = None
        #: The last reply (an NTP server's) said the server has no time itself: leap 3 or stratum 0/16+.
        #: Cleared by the next sample; until then the estimate says so instead of "no samples yet".
        self.says_unsynchronised = False
        self._polls_since_sample = 0
        self._local_since_ns: int | None = None  # the LOCAL kind: when it was first polled

    @property
    def name(self) -> str:
        return self.config.name

    def add(self, sample: SourceSample) -> bool:
        """Take one sample: set reach bit 0, remember what it states, run the filter.

        Returns True when the filter took a new best sample (the estimate's
        offset changed).
        """
        self.reach |= 1
        self.samples += 1
        self.says_unsynchronised = False
        self._polls_since_sample = 0
        if sample.stratum is not None:
            self.stratum = sample.stratum
        if sample.refid is not None:
            self.refid = sample.refid
        self.leap = sample.leap
        self.root_delay_ns = max(0, sample.root_delay_ns)
        self.root_dispersion_ns = max(0, sample.root_dispersion_ns)
        return self.filter.add(sample.time_ns, sample.offset_ns, sample.delay_ns, sample.dispersion_ns)

    def polled(self) -> None:
        """A poll interval begins: shift the reach register; a dummy stage after 3 empty polls."""
        self.reach = (self.reach << 1) & REACH_FULL
        self._polls_since_sample += 1
        if self._polls_since_sample > 3 and self.filter.output is not None:
            # polls 1..3 after the last sample still wait for it; from the 4th on, three whole
            # intervals went by without one (RFC 5905: the low three reach bits are zero)
            self.filter.add_dummy()

    def disable(self, reason: str) -> None:
        """Never use this source again (a DENY/RSTR Kiss-o'-Death); ``reason`` shows in the estimate."""
        self.disabled = reason

    def reset(self) -> None:
        """Forget the samples (after the clock was stepped); the reach register stays."""
        self.filter.clear()

    def shift(self, step_ns: int) -> None:
        """The local clock was stepped by ``step_ns`` (positive: forwards): restate the stored samples."""
        self.filter.shift(step_ns)

    def slewed(self, moved_ns: Callable[[int], int]) -> None:
        """The clock's phase was slewed: restate the stored offsets (:meth:`ClockFilter.slewed`)."""
        self.filter.slewed(moved_ns)

    def estimate(self, now_ns: int) -> SourceEstimate:
        """The source as it stands at ``now_ns`` (see :class:`SourceEstimate`)."""
        c = self.config
        if c.kind is SourceKind.LOCAL:
            return self._local_estimate(now_ns)
        out = self.filter.output
        if out is None:
            offset = delay = jitter = 0
            dispersion = MAXDISP_NS
            updated = sampled = None
        else:
            offset, delay, jitter = out.offset_ns, out.delay_ns, out.jitter_ns
            dispersion = out.dispersion_at(now_ns)
            updated = out.run_ns
            sampled = out.sample_ns
        distance = root_distance(self.root_delay_ns, delay, self.root_dispersion_ns, dispersion, jitter)
        why = self._why_unusable(out is not None, distance)
        return SourceEstimate(
            name=c.name,
            kind=c.kind,
            offset_ns=offset,
            delay_ns=delay,
            dispersion_ns=dispersion,
            jitter_ns=jitter,
            root_delay_ns=self.root_delay_ns,
            root_dispersion_ns=self.root_dispersion_ns,
            distance_ns=distance,
            stratum=self.stratum,
            refid=self.refid,
            leap=self.leap,
            reach=self.reach,
            usable=not why,
            prefer=c.prefer,
            noselect=c.noselect,
            updated_ns=updated,
            address=c.address,
            poll=self.poll,
            keyid=c.keyid,
            why_unusable=why,
            sample_ns=sampled,
        )

    def _why_unusable(self, has_sample: bool, distance_ns: int) -> str:
        if self.disabled:
            return self.disabled
        if not has_sample:
            if self.says_unsynchronised:
                return f"its replies say it is unsynchronised itself (leap {self.leap}, stratum {self.stratum})"
            return "no samples yet"
        if self.config.kind is SourceKind.SERVER and self.filter.valid_samples < MIN_SERVER_SAMPLES:
            return f"{self.filter.valid_samples} of the {MIN_SERVER_SAMPLES} samples needed"
        if self.reach == 0:
            return "unreachable (reach 0)"
        if self.stratum >= STRATUM_UNSYNC:
            return f"stratum {self.stratum}"
        if self.leap == LEAP_UNSYNC:
            return "unsynchronised (leap 3)"
        if distance_ns >= MAXDIST_NS:
            return f"root distance {distance_ns / NS_PER_S:.3f} s is over {MAXDIST_NS / NS_PER_S} s"
        return ""

    def _local_estimate(self, now_ns: int) -> SourceEstimate:
        c = self.config
        floor = self.filter.jitter_floor_ns
        if self._local_since_ns is None or now_ns < self._local_since_ns:
            self._local_since_ns = now_ns  # the first poll (again after the clock went back past it)
        polls = 1 + (now_ns - self._local_since_ns) // LOCAL_UPDATE_NS
        return SourceEstimate(
            name=c.name,
            kind=c.kind,
            offset_ns=0,
            delay_ns=0,
            dispersion_ns=0,
            jitter_ns=floor,
            root_delay_ns=0,
            root_dispersion_ns=0,
            distance_ns=root_distance(0, 0, 0, 0, floor),
            stratum=self.stratum,
            refid=self.refid,
            leap=LEAP_NONE,
            reach=(1 << min(polls, REACH_BITS)) - 1,
            usable=self.disabled is None,
            prefer=c.prefer,
            noselect=c.noselect,
            updated_ns=self._local_since_ns + (polls - 1) * LOCAL_UPDATE_NS,
            address=None,
            poll=self.poll,
            why_unusable=self.disabled or "",
        )
