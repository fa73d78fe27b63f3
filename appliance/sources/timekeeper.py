"""Keeping time: reference clocks, upstream NTP servers and the local clock as one system (pure; the time is passed in).

The :class:`Timekeeper` joins parts that know nothing of each other:

- the reference clocks, each a
  :class:`~appliance.refclock.source.RefclockSource` built from one config
  line (``refclock NAME ...`` or ``server 127.127.t.u`` + ``fudge``) and
  seen by selection as one :class:`~appliance.sources.source.Source` of
  kind REFCLOCK under the line's name (``NMEA(0)``, ``PPS(1)``,
  ``SHM(0)``...). Drivers hand their samples to :meth:`Timekeeper.on_sample`
  and their bare pulses to :meth:`Timekeeper.on_pulse`; the refclock source
  filters them and, once per poll interval (``2**poll`` s, the line's
  ``minpoll``), hands up one filtered sample, which goes to the selection
  source. A pulse of a line with ``lock`` is numbered by the locked
  source's last sample; without it (ntpd's ATOM) by whatever the system is
  synchronised to, while its root distance is under 0.5 s. A driver may
  also say why it is unusable now (``why_unusable``: an NMEA receiver
  without lock) and be told of clock steps (``stepped``);
- the upstream NTP servers (:class:`~appliance.sources.client.Upstreams`,
  whose sockets :mod:`appliance.io.ntpclient` runs): their associations'
  estimates;
- the local clock (``server 127.127.1.0`` + ``fudge 127.127.1.0 stratum
  10``), a source of kind LOCAL that selection uses only when nothing
  else survives;
- the discipline loop (:class:`~appliance.clock.discipline.Discipline`:
  samples in, clock operations out) and the clock behind
  :class:`~appliance.clock.base.Clock` (kernel, soft or simulated).

**Selection** (RFC 5905 section 11, :func:`~appliance.sources.selection.select`)
runs over all of them after every refclock update, every upstream sample
(:meth:`Timekeeper.on_upstream`) and every :meth:`Timekeeper.tick`:
truechimers are chosen, falsetickers marked (a receiver that disagrees
with three upstream servers, by a second or by 1024 weeks, is a
falseticker and never steers the clock), ``prefer`` and ``noselect`` are
honoured. The outcome is a :class:`Basis`, the reason for the time served:

1. ``REFCLOCK``: a reference clock is the system peer. Its updates go to
   the discipline. Served: stratum = the refclock's (0 unless the line
   says otherwise) + 1, its refid (``PPS`` for the pulses of an NMEA
   receiver, ``GPS`` for its serial time alone, ``SHM``...), root
   dispersion as :func:`~appliance.sources.system.system_state` computes
   it, plus the discipline's error estimate.
2. ``HOLDOVER``: a reference clock was the basis and is now lost (or
   outvoted), and the discipline's estimated error (1 sigma, growing
   without samples) is still under ``holdover_bound_ns``. The clock runs on
   with the frequency the refclock trained; nothing steers it, so there is
   no system peer, though the local clock or a server may have been chosen
   (:func:`~appliance.sources.selection.stood_aside`). Served: the
   last refclock stratum and refid, root dispersion = that error estimate
   plus the last sample's dispersion (and PHI times the age, which the
   server adds).
3. ``UPSTREAM``: an NTP server is the system peer. Each fresh sample of
   the system peer goes to the discipline, moved by what the other
   survivors say (:meth:`Timekeeper.on_upstream`; at most one every 16 s,
   weighed down by its delay above the lowest, and the first loop starts
   from the peer's earlier samples, their frequency included). Served: stratum = the
   peer's + 1, refid = its IPv4 address (or the MD5 code of an IPv6 one).
   When every server is lost and no local clock is configured, the last
   upstream state is kept while its root distance, growing at PHI, stays
   under MAXDIST (:mod:`appliance.sources.system`).
4. ``LOCAL``: only the local clock survives: served at its fudged stratum,
   refid ``LOCL``; nothing steers the clock.
5. ``UNSYNCHRONISED``: nothing: leap 3, stratum 16.

**One loop per kind of source.** A discipline measures its samples' jitter
from their own history, so refclock samples (a microsecond) and network
offsets (tens of microseconds and more) must not share one: when the
samples switch from one kind to the other, a new :class:`Discipline` takes
over, warm-started with the frequency the old one estimated (its phase
slew, if any, is ended first). :attr:`Timekeeper.discipline` is always the
loop in use (the one a drift file should record).

**Steps.** When the discipline steps the clock, every source's stored
samples are restated on the new scale
(:meth:`~appliance.sources.source.Source.shift` and
:meth:`~appliance.refclock.source.RefclockSource.clock_stepped`, chrony's
way) and each driver that asked is told: an NMEA receiver's pairing restates
the pulses and epochs it holds, and a PPS device read on the stepped clock
(:meth:`add_step_listener`) restates the edge it stamped before the step.

**Leap.** ``leap(now_ns, selected_leap)``, when given (the leap-second
table: :func:`appliance.leap.leap_to_serve`), says what the served leap
indicator is while synchronised; without it the selection's leap (the
refclock's own, or the upstream servers' majority) is served. Every
:meth:`Timekeeper.tick` arms the clock's leap second from the served
indicator (:meth:`~appliance.clock.base.Clock.set_leap`; the kernel then
inserts or deletes the second at midnight UTC).

:meth:`Timekeeper.status` returns a :class:`TimekeeperStatus` for the
daemon's log and status pages: the basis, the system peer, each source's
tally code (ntpq's ``*``, ``o``, ``+``, ``x``...) and why.

Times: ``now_ns`` arguments and sample times are readings of the
disciplined clock (POSIX ns); offsets are reference minus local (positive:
the clock is behind).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from appliance.clock.base import Clock, SetFrequency, Step, apply
from appliance.clock.discipline import Discipline, DisciplineConfig, Mode
from appliance.leap import leap_to_arm
from appliance.ntp.packet import LEAP_NONE, refid_from_text
from appliance.refclock.local import LocalClock
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.refclock.source import RefclockSource, RefclockUpdate, SystemSync, Verdict
from appliance.sources.client import POLL_GATE, Upstreams
from appliance.sources.selection import Selection, select, stood_aside
from appliance.sources.source import Source, SourceConfig, SourceEstimate, SourceKind, SourceSample
from appliance.sources.system import system_state
from appliance.state import SystemState
from appliance.timebase import NS_PER_S

#: Holdover keeps stratum 1 while the estimated error is below this (1 ms: an NTP client cannot tell).
DEFAULT_HOLDOVER_BOUND_NS = 1_000_000
#: A first upstream loop starts from the peer's earlier samples only if they fix the frequency this well (ppb, 1
#: sigma): two samples a 64 s poll apart do (1-2 ppm at 50-100 us of jitter), an ``iburst``'s 2 s apart do not.
PRIME_MAX_FREQUENCY_SD_PPB = 5_000.0
#: Upstream samples steer the loop at most this often: a burst's samples (2 s apart) would teach it their network
#: jitter as frequency (50 us over 2 s is 25 ppm); they choose the server, the first steers, the next a poll later.
UPSTREAM_MIN_SPACING_NS = 16 * NS_PER_S
#: The local clock's source name (ntpd's LOCAL driver).
LOCAL_NAME = "LOCAL(0)"
#: A discipline fed with network offsets assumes this jitter until it has measured it.
UPSTREAM_INITIAL_JITTER_NS = 100_000.0
#: An upstream sample steers the clock only this soon after it arrived (the loop takes samples as they happen).
UPSTREAM_FRESH_NS = 4 * NS_PER_S
#: A loop that takes over never starts more certain of the frequency than this (ppb, 1 sigma).
MIN_FREQUENCY_SD_PPB = 5.0

#: A refclock whose poll interval passed this long (in intervals) without a poll is polled as empty.
_POLL_GRACE = 1.5
#: Why a driver's source is unusable now, or None (an NMEA receiver without lock).
WhyUnusable = Callable[[int], str | None]


class Basis(enum.Enum):
    """Why the time is served as it is (see the module docstring)."""

    REFCLOCK = "refclock"
    HOLDOVER = "holdover"
    UPSTREAM = "upstream"
    LOCAL = "local"
    UNSYNCHRONISED = "unsynchronised"


@dataclass(slots=True)
class TimekeeperCounters:
    refclock_samples: int = 0
    refclock_updates: int = 0
    upstream_updates: int = 0
    upstream_queued: int = 0
    upstream_spaced: int = 0
    clock_steps: int = 0
    basis_changes: int = 0
    disciplines: int = 1


@dataclass(frozen=True, slots=True)
class TimekeeperStatus:
    """The timekeeper at one moment: what is served and why.

    ``error_ns`` is the discipline's estimated error (1 sigma, ns);
    ``selection`` the last selection, with every source's estimate and tally.
    """

    time_ns: int
    basis: Basis
    state: SystemState
    error_ns: int
    selection: Selection

    @property
    def system_peer(self) -> str | None:
        return self.selection.system_peer

    @property
    def falsetickers(self) -> tuple[str, ...]:
        return self.selection.falsetickers

    def summary(self) -> str:
        """One line for the log: the basis, stratum and refid served, and any falsetickers."""
        s = self.state
        if self.basis is Basis.UPSTREAM:
            refid = ".".join(str(b) for b in s.refid)
        else:
            refid = s.refid.rstrip(b"\0").decode("ascii", "replace")
        line = f"{self.basis.value}: stratum {s.stratum}, refid {refid}"
        if self.system_peer is not None:
            line += f", system peer {self.system_peer}"
        line += f", estimated error {self.error_ns / 1000:.1f} us"
        if self.falsetickers:
            line += "; falsetickers (outvoted): " + ", ".join(self._describe(n) for n in self.falsetickers)
        return line

    def source_lines(self) -> list[str]:
        """One line per source, ntpq ``peers``-like: tally, name, stratum, reach, offset, distance, why not."""
        out = []
        for e in self.selection.estimates:
            why = f"  ({e.why_unusable})" if e.why_unusable else ""
            out.append(
                f"{self.selection.tally_code(e.name)}{e.name:<24} st {e.stratum:>2} reach {e.reach:03o}"
                f" offset {e.offset_ns / 1e6:+.6f} ms distance {e.distance_ns / 1e6:.3f} ms{why}"
            )
        return out

    def _describe(self, name: str) -> str:
        for e in self.selection.estimates:
            if e.name == name:
                return f"{name} (offset {e.offset_ns / NS_PER_S:+.6f} s)"
        return name


class _Refclock:
    """One reference clock as the timekeeper holds it: the filter, the selection source, the driver's hooks."""

    __slots__ = ("filter", "source", "why_unusable", "stepped", "next_poll_ns", "pulse_refid")

    def __init__(
        self,
        rs: RefclockSource,
        precision: int,
        why_unusable: WhyUnusable | None,
        stepped: Callable[[int], None] | None,
        pulse_refid: str | None,
    ) -> None:
        s = rs.settings
        self.filter = rs
        self.source = Source(
            SourceConfig(
                name=s.name,
                kind=SourceKind.REFCLOCK,
                refid=refid_from_text(s.refid),
                stratum=s.stratum,
                prefer=s.prefer,
                noselect=s.noselect,
                minpoll=s.poll,
                maxpoll=s.poll,
                precision=precision,
            )
        )
        self.why_unusable = why_unusable
        self.stepped = stepped
        self.next_poll_ns: int | None = None
        self.pulse_refid = refid_from_text(pulse_refid) if pulse_refid else None


class Timekeeper:
    """Reference clocks, upstream servers, local clock, selection, discipline and clock; see the module docstring.

    ``refclocks`` are the configured reference clocks (more, with hooks,
    through :meth:`add_refclock`); ``discipline`` the loop to start with
    (None: a cold one with ``discipline_config``; pass one warm-started
    from a drift file). ``upstreams`` is shared with the I/O edge that polls
    them (None: no servers). ``precision`` is log2 s.
    """

    def __init__(
        self,
        clock: Clock,
        discipline: Discipline | None = None,
        *,
        precision: int,
        refclocks: Iterable[RefclockSource] = (),
        local: LocalClock | None = None,
        upstreams: Upstreams | None = None,
        holdover_bound_ns: int = DEFAULT_HOLDOVER_BOUND_NS,
        leap: Callable[[int, int], int] | None = None,
        discipline_config: DisciplineConfig | None = None,
    ) -> None:
        self.clock = clock
        self._config = discipline_config or DisciplineConfig()
        self.discipline = discipline if discipline is not None else Discipline(self._config)
        self.precision = precision
        self.local = local
        self.upstreams = upstreams
        self.holdover_bound_ns = holdover_bound_ns
        self.leap = leap
        self.counters = TimekeeperCounters()
        self._refclocks: dict[str, _Refclock] = {}
        self.local_source = self._local_source(local)
        self._fed_by: Basis | None = None  # the kind of samples the current discipline has taken
        self._held_stratum = 1  # what holdover serves: the last refclock basis's stratum, refid and time
        self._held_refid = refid_from_text("INIT")
        self._held_reference_ns: int | None = None
        self._step_listeners: list[Callable[[int], None]] = []
        self._held_dispersion_ns = 0
        self._synchronised_once = False  # a refclock or a server has been the basis since the start
        self._basis = Basis.UNSYNCHRONISED
        self._selection: Selection = select([], 0)
        self._state = SystemState(precision=precision)
        self._error_ns = self.discipline.error_estimate_ns(0)
        self._time_ns = 0
        for rs in refclocks:
            self.add_refclock(rs)

    def add_refclock(
        self,
        source: RefclockSource,
        *,
        why_unusable: WhyUnusable | None = None,
        stepped: Callable[[int], None] | None = None,
        pulse_refid: str | None = None,
    ) -> None:
        """Select among the sources the reference clock ``source`` too (its name must be new).

        ``why_unusable(now_ns)`` says why its driver cannot be used now (None:
        it can); ``stepped(step_ns)`` is called when the clock is stepped;
        ``pulse_refid`` replaces the line's refid on updates made of pulses
        (an NMEA receiver with PPS: ``PPS`` for its pulses, ``GPS`` for its
        serial time alone).
        """
        if source.name in self._refclocks or source.name == LOCAL_NAME:
            raise ValueError(f"two sources named {source.name}")
        self._refclocks[source.name] = _Refclock(source, self.precision, why_unusable, stepped, pulse_refid)

    @property
    def refclocks(self) -> dict[str, RefclockSource]:
        """The reference clocks by name, in the order they were added."""
        return {name: r.filter for name, r in self._refclocks.items()}

    def _local_source(self, local: LocalClock | None) -> Source | None:
        if local is None:
            return None
        return Source(
            SourceConfig(
                name=LOCAL_NAME,
                kind=SourceKind.LOCAL,
                refid=refid_from_text(local.refid),
                stratum=local.stratum,
                precision=self.precision,
            )
        )

    def set_local(self, local: LocalClock | None) -> None:
        """Serve the local clock a reloaded configuration describes (None: no local clock any more).

        The source is made anew only when its stratum or refid changed;
        ``localclock public`` takes effect at the next selection either way.
        """
        old = self.local
        self.local = local
        if local is None or old is None or (old.stratum, old.refid) != (local.stratum, local.refid):
            self.local_source = self._local_source(local)

    @property
    def basis(self) -> Basis:
        """The basis of the last selection."""
        return self._basis

    # -- input: the refclock drivers call these --------------------------------

    def clock_trusted(self, now_ns: int) -> bool:
        """Whether the clock is known to within 0.1 s now (a driver may then number a pulse by it)."""
        return self.discipline.mode(now_ns) is not Mode.UNSYNCHRONISED and (
            self.discipline.error_estimate_ns(now_ns) < 100_000_000
        )

    def on_sample(self, name: str, sample: Sample) -> Verdict:
        """Refclock ``name``'s driver handed up ``sample`` (local time on the disciplined clock)."""
        r = self._refclocks[name]
        now = self.clock.now_ns()
        verdict = r.filter.add_sample(sample, now)
        if verdict is Verdict.ACCEPTED:
            self.counters.refclock_samples += 1
            self._poll_if_full(r, now)
        return verdict

    def on_pulse(self, name: str, pulse: Pulse) -> Verdict:
        """Refclock ``name``'s driver saw a bare PPS edge: number it by its ``lock`` source or by the system."""
        r = self._refclocks[name]
        now = self.clock.now_ns()
        lock = r.filter.settings.lock
        if lock is not None:
            locked = self._refclocks.get(lock)
            verdict = r.filter.add_pulse(pulse, now, lock_sample=locked.filter.last_sample if locked else None)
        else:
            st = self._state
            sync = SystemSync(
                synchronised=st.synchronised and self._basis is not Basis.LOCAL,
                root_distance_ns=st.root_delay_ns // 2 + st.root_dispersion_ns,
                leap=st.leap,
            )
            verdict = r.filter.add_pulse(pulse, now, system=sync)
        if verdict is Verdict.ACCEPTED:
            self.counters.refclock_samples += 1
            self._poll_if_full(r, now)
        return verdict

    # -- input: the NTP client's edge calls this ----------------------------------

    def on_upstream(self, name: str, sample: SourceSample) -> None:
        """Upstream server ``name`` gave ``sample`` (already in its association): select again, maybe steer.

        While the servers are the basis, a fresh sample of the system peer
        steers the clock: its own offset, moved by what the other combined
        survivors say (the combined offset minus the peer's filtered one, both
        restated to now: :meth:`_restated`),
        unless its delay shows it queued: more than 4 jitters (RFC 5905's
        PGATE) above the lowest delay in the peer's filter, or it comes
        within :data:`UPSTREAM_MIN_SPACING_NS` of the last one that steered
        (a burst). Each measurement is used once, when it arrives; the first
        loop starts from the peer's earlier samples too.
        """
        now = self.clock.now_ns()
        self._reselect(now)
        peer = self._selection.peer
        if self._basis is not Basis.UPSTREAM or peer is None or peer.kind is not SourceKind.SERVER:
            return
        if peer.name != name or now - sample.time_ns > UPSTREAM_FRESH_NS:
            return
        if sample.delay_ns - peer.delay_ns > POLL_GATE * max(peer.jitter_ns, 1):
            self.counters.upstream_queued += 1
            return
        last = self.discipline.status(now).last_update_ns if self._fed_by is Basis.UPSTREAM else None
        if last is not None and sample.time_ns + sample.offset_ns - last < UPSTREAM_MIN_SPACING_NS:
            self.counters.upstream_spaced += 1
            return
        self.counters.upstream_updates += 1
        offset = sample.offset_ns + self._selection.offset_ns - peer.offset_ns
        steer = Sample(
            local_ns=sample.time_ns,
            reference_ns=sample.time_ns + offset,
            leap=self._selection.leap,
            dispersion_ns=peer.distance_ns,
        )
        # the part of the delay above the lowest in the filter may have moved the offset by up to half of it
        noise = max(0, sample.delay_ns - peer.delay_ns) / 2
        # the first loop starts from the peer's earlier samples, frequency included
        earlier = self._earlier_samples(name, peer, sample.time_ns) if self._fed_by is None else None
        self._discipline(Basis.UPSTREAM, steer, earlier, noise, self._queueing_jitter(name))
        self._reselect(self.clock.now_ns())

    # -- the clock -------------------------------------------------------------------

    def tick(self) -> None:
        """Run about once a second: the refclocks' polls that are due, the discipline's holdover, a new selection."""
        now = self.clock.now_ns()
        for r in self._refclocks.values():
            interval = r.filter.poll_interval_ns
            if r.next_poll_ns is None or now - r.next_poll_ns > 4 * interval + 4 * NS_PER_S:
                r.next_poll_ns = now + interval  # first tick, or the clock jumped
            elif now >= r.next_poll_ns:
                self._poll(r, now)
        apply(self.clock, self.discipline.tick(now))
        self._reselect(now)
        # arm (or disarm) the clock's leap second from what is served: the kernel inserts it at midnight
        self.clock.set_leap(leap_to_arm(self._state.leap))

    def _poll_if_full(self, r: _Refclock, now_ns: int) -> None:
        """A line that polls every second or faster is polled as soon as it holds the samples it needs."""
        rs = r.filter
        if rs.poll_interval_ns <= NS_PER_S and len(rs.pending) >= rs.settings.needed:
            self._poll(r, now_ns)

    def _poll(self, r: _Refclock, now_ns: int) -> None:
        """End refclock ``r``'s poll interval: its filtered sample (if any) to selection, maybe to the discipline."""
        interval = r.filter.poll_interval_ns
        # a poll that came with a sample: the next empty one is due a little later than one interval on
        r.next_poll_ns = now_ns + (interval if interval > NS_PER_S else int(interval * _POLL_GRACE))
        r.source.polled()
        update = r.filter.poll(now_ns)
        if update is None:
            return
        self._refclock_update(r, update)

    def _refclock_update(self, r: _Refclock, update: RefclockUpdate) -> None:
        sample = update.sample
        self.counters.refclock_updates += 1
        refid = r.pulse_refid if r.pulse_refid is not None and sample.kind is SampleKind.PULSE else None
        r.source.add(
            SourceSample(
                time_ns=sample.local_ns,
                offset_ns=sample.offset_ns,
                dispersion_ns=sample.dispersion_ns,
                leap=sample.leap,
                refid=refid if refid is not None else refid_from_text(update.refid),
            )
        )
        self._reselect(self.clock.now_ns())
        if self._basis is Basis.REFCLOCK and self._selection.system_peer == r.filter.name:
            self._held_dispersion_ns = sample.dispersion_ns
            self._discipline(Basis.REFCLOCK, sample)

    def _earlier_samples(self, name: str, peer: SourceEstimate, before_ns: int) -> list[Sample]:
        """Upstream server ``name``'s samples before ``before_ns`` still in its filter, oldest first, as
        discipline samples; those whose delay shows queueing (as :meth:`on_upstream` gates) left out."""
        if self.upstreams is None:
            return []
        for a in self.upstreams.associations:
            if a.source.name == name:
                gate = POLL_GATE * max(peer.jitter_ns, 1)
                stages = [
                    st
                    for st in a.source.filter.stages
                    if not st.dummy and st.time_ns < before_ns and st.delay_ns - peer.delay_ns <= gate
                ]
                stages.sort(key=lambda st: st.time_ns)
                return [Sample(st.time_ns, st.time_ns + st.offset_ns, LEAP_NONE, st.dispersion_ns) for st in stages]
        return []

    def _queueing_jitter(self, name: str) -> float | None:
        """The offset jitter upstream server ``name``'s delays imply: the RMS of half their excess over the
        lowest in its filter (a queue moves an offset by up to half the delay it adds), None with fewer than
        three samples. Unlike the filter's jitter it is not inflated by the free-running clock's drift
        between the samples, so a new loop can start from it before it has measured its own."""
        if self.upstreams is None:
            return None
        for a in self.upstreams.associations:
            if a.source.name == name:
                delays = [st.delay_ns for st in a.source.filter.stages if not st.dummy]
                if len(delays) < 3:
                    return None
                low = min(delays)
                return math.sqrt(sum(((d - low) / 2) ** 2 for d in delays) / (len(delays) - 1))
        return None

    def _discipline(
        self,
        kind: Basis,
        sample: Sample,
        earlier: list[Sample] | None = None,
        noise_ns: float = 0.0,
        jitter_ns: float | None = None,
    ) -> None:
        """Feed ``sample`` to the loop for ``kind`` of samples (a new loop if the kind changed).

        ``earlier``: samples of the same source before ``sample``, taken while
        nothing steered the clock, that a new loop starts from
        (:meth:`~appliance.clock.discipline.Discipline.prime`); ``noise_ns`` what
        ``sample`` may be off beyond the loop's jitter (its ``extra_noise_ns``); ``jitter_ns`` the
        jitter a new upstream loop assumes until it has measured its own (default
        :data:`UPSTREAM_INITIAL_JITTER_NS`)."""
        first_upstream = self._fed_by is None and kind is Basis.UPSTREAM
        if first_upstream or (self._fed_by is not None and self._fed_by is not kind):
            old = self.discipline
            self._restate_into_samples(old, self.clock.now_ns())
            if old.deadline_ns() is not None:
                apply(self.clock, [SetFrequency(old.frequency_ppb)])  # end the old loop's phase slew
            self.discipline = self._successor(old, kind, sample.local_ns, jitter_ns)
            self.counters.disciplines += 1
            if earlier and first_upstream:
                self.discipline.prime(earlier, PRIME_MAX_FREQUENCY_SD_PPB)
        self._fed_by = kind
        ops = self.discipline.update(sample, self.clock.offset_correction_ns(), noise_ns, self.clock.now_ns())
        steps = [op.offset_ns for op in ops if isinstance(op, Step)]
        apply(self.clock, ops)
        if steps:
            self._stepped(sum(steps))

    def _successor(self, old: Discipline, kind: Basis, now_ns: int, jitter_ns: float | None = None) -> Discipline:
        """A new loop for ``kind`` of samples, starting from ``old``'s frequency and its uncertainty now.

        The uncertainty is the old estimate's, grown by the wander since its
        last update (a random walk: variance ``wander**2`` per second).
        """
        config = self._config
        status = old.status(now_ns)
        age_s = 0.0 if status.last_update_ns is None else max(0, now_ns - status.last_update_ns) / NS_PER_S
        sd = math.sqrt(status.frequency_sd_ppb**2 + config.wander_ppb_per_sqrt_s**2 * age_s)
        config = replace(config, warm_frequency_sd_ppb=max(MIN_FREQUENCY_SD_PPB, sd))
        if kind is Basis.UPSTREAM:
            # network samples come a poll apart: the phase one shows is slewed away in a second (at most
            # maxslewrate), not spread over several
            config = replace(
                config,
                initial_jitter_ns=max(
                    config.initial_jitter_ns, UPSTREAM_INITIAL_JITTER_NS if jitter_ns is None else jitter_ns
                ),
                max_correction_ns=config.min_correction_ns,
                reweigh=False,  # the queueing varies: the early samples keep the weight of their own jitter
                cautious=True,  # one sample (an iburst's) and the next a poll later do not slew past zero
            )
        new = Discipline(config, frequency_ppb=old.frequency_ppb)
        new.follow_ticks(old)  # its fast slews end on the timer's ticks
        return new

    def _stepped(self, step_ns: int) -> None:
        """The clock jumped by ``step_ns``: restate every stored sample on the new scale."""
        self.counters.clock_steps += 1
        for r in self._refclocks.values():
            r.filter.clock_stepped(step_ns)
            r.source.shift(step_ns)
            if r.next_poll_ns is not None:
                r.next_poll_ns += step_ns
            if r.stepped is not None:
                r.stepped(step_ns)  # e.g. an NMEA pairing: pulses and epochs in flight carry the old scale
        if self.upstreams is not None:
            self.upstreams.clock_stepped(step_ns)
        if self._held_reference_ns is not None:
            self._held_reference_ns += step_ns
        for listener in self._step_listeners:
            listener(step_ns)

    def add_step_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(step_ns)`` after every step of the clock, once the sources are restated (the
        device readers whose edges are stamped on the stepped clock, such as ``/dev/ppsN`` read on the
        kernel clock)."""
        self._step_listeners.append(listener)

    # -- selection -------------------------------------------------------------------

    def estimates(self, now_ns: int) -> list[SourceEstimate]:
        """Every source's estimate at ``now_ns``: the refclocks, the upstream servers, the local clock."""
        out: list[SourceEstimate] = []
        for r in self._refclocks.values():
            e = self._restated(r.source.estimate(now_ns), now_ns)
            why = r.why_unusable(now_ns) if e.usable and r.why_unusable is not None else None
            out.append(replace(e, usable=False, why_unusable=why) if why else e)
        if self.upstreams is not None:
            out.extend(self._restated(e, now_ns) for e in self.upstreams.estimates(now_ns))
        if self.local_source is not None:
            e = self.local_source.estimate(now_ns)
            why = self._local_waits()
            out.append(replace(e, usable=False, why_unusable=why) if why else e)
        return out

    def _local_waits(self) -> str | None:
        """Why the local clock is not used yet (``localclock start wait``), or None.

        Until a refclock or a server has synchronised the clock once, the clock is where it was started
        from: on a Pi without a real-time clock, the time it was switched off (fake-hwclock), hours or days
        ago. Served as stratum 10, clients of the LAN would set themselves to it at every power cut. A local
        clock that is the only source has nothing to wait for.
        """
        local = self.local
        if local is None or not local.waits_for_sync or self._synchronised_once:
            return None
        if not self._refclocks and (self.upstreams is None or not self.upstreams.configured):
            return None
        return "waits for a source to synchronise the clock first (localclock start wait)"

    def _restated(self, e: SourceEstimate, now_ns: int) -> SourceEstimate:
        """A source's estimate with its offset as of ``now_ns``: less what the clock was slewed since its sample.

        The servers' filtered samples are minutes apart (up to eight polls old), and a fast slew moves the
        clock milliseconds in a second: compared or combined as measured, a server sampled before a slew and
        one sampled after disagree by the slew, and the combination steers by it. A refclock's estimate is a
        poll old, and a poll is long enough for a fast slew too. What loops before the current one slewed
        was restated into the stored samples when each loop ended (:meth:`_restate_into_samples`).
        """
        if e.sample_ns is None:
            return e
        moved = self.discipline.moved_ns(e.sample_ns, now_ns)
        return replace(e, offset_ns=e.offset_ns - moved) if moved else e

    def _restate_into_samples(self, loop: Discipline, now_ns: int) -> None:
        """``loop`` ends at ``now_ns``: what it slewed since each stored sample goes into that sample's offset.

        :meth:`_restated` counts only the current loop's slews (its successor starts with no record of
        them). Without this, at the start (servers first, then the GPS) every server sampled before the
        servers' loop closed its 0.1 s looked 0.1 s off, and three of them outvoted the GPS (for up to 108 s
        in the simulation, tests/sim/test_sim_fallback.py).
        """

        def moved(t: int) -> int:
            return loop.moved_ns(t, now_ns)

        for r in self._refclocks.values():
            r.source.slewed(moved)
        if self.upstreams is not None:
            self.upstreams.clock_slewed(moved)

    def _reselect(self, now_ns: int) -> None:
        sel = select(self.estimates(now_ns), now_ns, previous=self._selection.system_peer)
        error = self.discipline.error_estimate_ns(now_ns)
        basis = self._basis_for(sel, error)
        if basis is Basis.HOLDOVER:
            sel = stood_aside(sel)  # the local clock or a server was chosen, but nothing steers: no system peer
        if basis is not self._basis:
            self.counters.basis_changes += 1
        if basis in (Basis.REFCLOCK, Basis.UPSTREAM):
            self._synchronised_once = True  # the local clock may stand in from now on
        peer = sel.peer
        if basis is Basis.REFCLOCK and peer is not None:
            self._held_stratum = peer.stratum + 1
            self._held_refid = peer.refid
            self._held_reference_ns = peer.updated_ns
        previous = self._state if self._basis is Basis.UPSTREAM else None
        self._basis = basis
        self._selection = sel
        self._error_ns = error
        self._time_ns = now_ns
        self._state = self._serve(sel, basis, error, now_ns, previous)

    def _basis_for(self, sel: Selection, error_ns: int) -> Basis:
        peer = sel.peer
        if peer is not None and peer.kind is SourceKind.REFCLOCK:
            return Basis.REFCLOCK
        if (
            self._basis in (Basis.REFCLOCK, Basis.HOLDOVER)
            and self._fed_by is Basis.REFCLOCK
            and error_ns < self.holdover_bound_ns
        ):
            return Basis.HOLDOVER
        if peer is not None:
            return Basis.UPSTREAM if peer.kind is SourceKind.SERVER else Basis.LOCAL
        if self._basis is Basis.UPSTREAM and self._state.synchronised:
            return Basis.UPSTREAM  # lost every server: the last state ages (system.py's holdover)
        return Basis.UNSYNCHRONISED

    def _serve(
        self, sel: Selection, basis: Basis, error_ns: int, now_ns: int, previous: SystemState | None
    ) -> SystemState:
        if basis is Basis.HOLDOVER:
            state = SystemState(
                leap=LEAP_NONE,
                stratum=self._held_stratum,
                precision=self.precision,
                root_delay_ns=0,
                root_dispersion_ns=error_ns + self._held_dispersion_ns,
                refid=self._held_refid,
                reference_ns=self._held_reference_ns,
            )
        elif basis is Basis.UNSYNCHRONISED:
            state = SystemState(precision=self.precision)
        else:
            steered = basis in (Basis.REFCLOCK, Basis.UPSTREAM)
            state = system_state(
                sel,
                now_ns,
                self.precision,
                discipline_error_ns=error_ns if steered else 0,
                previous=previous,
            )
        if basis is Basis.LOCAL and self.local is not None:
            state = replace(state, public_unsync=self.local.public_unsync)  # config: localclock public
        if state.synchronised and self.leap is not None:
            state = replace(state, leap=self.leap(now_ns, state.leap))
        return state

    # -- output ------------------------------------------------------------------

    def state(self, now_ns: int) -> SystemState:
        """The system state to serve at ``now_ns`` (clock time): selects again, then follows the basis."""
        self._reselect(now_ns)
        return self._state

    def status(self) -> TimekeeperStatus:
        """The outcome of the last selection (see :class:`TimekeeperStatus`)."""
        return TimekeeperStatus(self._time_ns, self._basis, self._state, self._error_ns, self._selection)
