"""The discipline and the whole timekeeper on virtual time: a simulated clock, GPS and servers, hours in seconds.

Two levels:

- :func:`run` / :func:`play`: the bare discipline loop fed by
  :class:`SampleSource` values (``bench/discipline.py`` and
  ``tests/sim/test_sim_discipline.py`` measure the loop with it);
- :func:`run_system`: the daemon's :class:`~appliance.sources.timekeeper.Timekeeper`
  (GPS pairing, selection, fallback chain, discipline), built by the daemon's
  builder (:mod:`appliance.build`) from the config lines the scenario
  writes (:func:`config_text`) with simulated backends, on a
  :class:`SystemScenario`: a simulated GPS HAT (:class:`ReceiverSpec`: the
  shipped :class:`~appliance.fakes.gps.FakeGps` and
  :class:`~appliance.fakes.pps.FakePps`, the same fakes ``serve --simulate``
  runs, read through the daemon's ``NmeaStream`` and ``NmeaRefclock``
  pairing; verbs at chosen times unplug it, slip a second or jump 1024
  weeks) and simulated upstream NTP
  servers (:class:`ServerSpec`: their own clock error, network delay and
  asymmetry, losses), reached through the real
  :class:`~appliance.sources.client.Upstreams` state machine (iburst, poll
  adaptation, origin check) with real NTP packets. It returns a
  :class:`SystemTrace`.

The rest of this docstring is about the first level.

:func:`run` plays a :class:`Scenario`: a :class:`~appliance.clock.simulated.SimulatedClock`
(frequency error, random-walk wander, temperature steps), sources that hand
:class:`~appliance.refclock.sample.Sample` values to the
:class:`~appliance.clock.discipline.Discipline`, and the clock operations
the discipline returns applied to the clock, the way the daemon wires them.
It returns a :class:`Trace`: the clock's true time error once per second.

Sources implement :class:`SampleSource`: "when is your next sample due (true
time)?" and "take it now". :class:`PpsSource` is a GPS PPS paired with its
NMEA second: at each true second edge it reads the local clock, adds
Gaussian timestamping jitter and reports the edge as the reference time.
An upstream NTP server would be another source, due at its poll interval.

Everything random comes from ``random.Random`` instances seeded from the
scenario's seed (one per component), so a seed gives the same trace on any
machine.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import random
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.build import Edge, Loop, Running, build_timekeeper, start_refclocks
from appliance.clock.allan import PI_CRYSTAL_WANDER_PPB
from appliance.clock.base import apply
from appliance.clock.discipline import Discipline, DisciplineConfig, DisciplineStatus
from appliance.clock.simulated import DEFAULT_START_NS, FrequencyStep, Oscillator, SimulatedClock
from appliance.clock.slew import SlewModel
from appliance.config.parser import parse_config
from appliance.fakes.gps import FakeGps, ReceiverModel
from appliance.fakes.pps import FakePps, FakePpsDevice
from appliance.nmea.epoch import Fix
from appliance.nmea.stream import NmeaStream
from appliance.ntp.packet import MODE_SERVER, NtpPacket, refid_from_text
from appliance.refclock.gps import Convention, NmeaRefclock
from appliance.refclock.sample import Sample
from appliance.refclock.setup import RefclockLine, refclock_lines
from appliance.sources.client import RESPONSE_TIMEOUT_NS, Association
from appliance.sources.timekeeper import Basis, TimekeeperCounters, TimekeeperStatus
from appliance.timebase import NS_PER_S, ntp64_from_ns, short_from_ns


class SampleSource(Protocol):
    """A source of samples on virtual time."""

    def next_due_ns(self) -> int | None:
        """The true time (POSIX ns) of the next sample, or None when there will be none."""
        ...

    def take(self, clock: SimulatedClock) -> Sample | None:
        """Take the sample due now (``clock.true_ns == next_due_ns()``); None if it is missing."""
        ...


class PpsSource:
    """A PPS edge every ``interval_ns`` of true time, paired with its second (a perfect NMEA lock).

    The local timestamp is the clock's reading at the edge plus Gaussian
    jitter of ``jitter_ns`` (1 sigma). No pulses during ``outages``
    (half-open [start, end) intervals of true time, POSIX ns).
    """

    def __init__(
        self,
        rng: random.Random,
        jitter_ns: float,
        first_ns: int,
        *,
        interval_ns: int = NS_PER_S,
        outages: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self._rng = rng
        self._jitter_ns = jitter_ns
        self._next = first_ns
        self._interval = interval_ns
        self._outages = outages

    def next_due_ns(self) -> int | None:
        return self._next

    def take(self, clock: SimulatedClock) -> Sample | None:
        edge = self._next
        self._next += self._interval
        noise = round(self._rng.gauss(0.0, self._jitter_ns)) if self._jitter_ns > 0 else 0
        if any(start <= edge < end for start, end in self._outages):
            return None
        return Sample(local_ns=clock.now_ns() + noise, reference_ns=edge)


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """The simulated clock both kinds of scenario start from (see :class:`Scenario` for the fields)."""

    seed: int = 1
    duration_ns: int = 3600 * NS_PER_S
    frequency_error_ppb: float = 25_000.0
    wander_ppb_per_sqrt_s: float = PI_CRYSTAL_WANDER_PPB
    frequency_steps: tuple[FrequencyStep, ...] = ()
    initial_offset_ns: int = 0


@dataclass(frozen=True, slots=True)
class Scenario(ClockSpec):
    """What to simulate. Times in ``frequency_steps`` and ``pps_outages`` count from the start (ns).

    - ``frequency_error_ppb``: the oscillator's initial error (+: fast);
      ``wander_ppb_per_sqrt_s`` its random-walk FM (default: a Pi crystal);
      ``frequency_steps``: temperature steps.
    - ``initial_offset_ns``: the clock's error at the start (clock minus true).
    - ``pps_jitter_ns``: 1-sigma timestamping jitter of the PPS.
    - ``drift_ppb``: a drift file's frequency applied at start, or None (cold start).
    - ``slew``: the clock's slew model (default: 500 ppm rate-limited).
    """

    pps_jitter_ns: float = 1_000.0
    pps_outages: tuple[tuple[int, int], ...] = ()
    drift_ppb: float | None = None
    config: DisciplineConfig = field(default_factory=DisciplineConfig)
    slew: SlewModel | None = None
    start_ns: int = DEFAULT_START_NS


@dataclass(frozen=True, slots=True)
class Trace:
    """One point per second of true time from ``start_ns``: index ``i`` is ``start_ns + i`` seconds.

    ``time_error_ns``: clock minus true time (ns), read just before that
    second's sample is processed; ``est_error_ns``: the discipline's own
    error estimate then; ``frequency_ppb``: the clock's frequency correction.
    """

    start_ns: int
    time_error_ns: array[float]
    est_error_ns: array[float]
    frequency_ppb: array[float]
    final: DisciplineStatus

    def index(self, since_start_ns: int) -> int:
        """The index of the point ``since_start_ns`` after the start."""
        return since_start_ns // NS_PER_S


def run(scenario: Scenario) -> Trace:
    """Play ``scenario`` on virtual time and return its trace."""
    start = scenario.start_ns
    oscillator = Oscillator(
        frequency_error_ppb=scenario.frequency_error_ppb,
        wander_ppb_per_sqrt_s=scenario.wander_ppb_per_sqrt_s,
        steps=tuple(FrequencyStep(start + s.at_ns, s.delta_ppb) for s in scenario.frequency_steps),
    )
    clock = SimulatedClock(
        random.Random(f"clock:{scenario.seed}"),
        oscillator,
        start_ns=start,
        initial_offset_ns=scenario.initial_offset_ns,
        slew=scenario.slew,
    )
    discipline = Discipline(scenario.config, frequency_ppb=scenario.drift_ppb)
    if scenario.drift_ppb is not None:
        clock.set_frequency_ppb(scenario.drift_ppb)  # as the daemon does when it reads the drift file
    outages = tuple((start + a, start + b) for a, b in scenario.pps_outages)
    sources: list[SampleSource] = [
        PpsSource(random.Random(f"pps:{scenario.seed}"), scenario.pps_jitter_ns, start + NS_PER_S, outages=outages)
    ]
    return play(clock, discipline, sources, start, start + scenario.duration_ns)


def play(clock: SimulatedClock, discipline: Discipline, sources: list[SampleSource], start: int, end: int) -> Trace:
    """Run ``discipline`` on ``clock`` with ``sources`` from true time ``start`` to ``end`` (ns).

    The daemon's wiring: each sample goes to :meth:`Discipline.update` with
    the clock's pending slew, and its operations are applied to the clock; a
    second without a sample (or a passed :meth:`Discipline.deadline_ns`)
    runs :meth:`Discipline.tick`. The clock must stand at ``start``.
    """
    errors: array[float] = array("d")
    estimates: array[float] = array("d")
    frequencies: array[float] = array("d")
    next_point = start
    while True:
        dues = [d for d in (s.next_due_ns() for s in sources) if d is not None]
        now = min([next_point, *dues])
        if now >= end:
            break
        clock.advance_to(now)
        point = now == next_point
        if point:
            errors.append(clock.time_error_ns())
            estimates.append(float(discipline.error_estimate_ns(clock.now_ns())))
            frequencies.append(clock.frequency_ppb())
            next_point += NS_PER_S
        sampled = False
        for source in sources:
            if source.next_due_ns() == now:
                sample = source.take(clock)
                if sample is not None:
                    apply(clock, discipline.update(sample, clock.offset_correction_ns()))
                    sampled = True
        deadline = discipline.deadline_ns()
        if point and not sampled or deadline is not None and clock.now_ns() >= deadline:
            # the daemon's once-a-second timer when no sample came
            apply(clock, discipline.tick(clock.now_ns()))
    return Trace(start, errors, estimates, frequencies, discipline.status(clock.now_ns()))


# --- the whole timekeeper: GPS, upstream servers and the local clock ------------------------------


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """The shipped fake receiver (:class:`~appliance.fakes.gps.FakeGps`, as ``serve --simulate`` runs it), virtually.

    Its NMEA bytes reach an :class:`~appliance.nmea.stream.NmeaStream` when their first byte is due (as
    :class:`~appliance.fakes.gps.PtyWriter` writes them), on the simulated clock; its PPS (the shipped
    :class:`~appliance.fakes.pps.FakePps`) marks each true second with ``pps_jitter_ns`` (1 sigma) of
    timestamping jitter, read :data:`PULSE_LATENCY_NS` after the edge. ``model``: a name from
    :data:`~appliance.fakes.gps.MODELS` or a :class:`~appliance.fakes.gps.ReceiverModel`. ``actions``:
    at ``at`` (from the start, ns) call ``verb(receiver, pps)`` (``FakeGps.go_silent``, ``jump_weeks``,
    ``slip_seconds``, ``send_garbage``; ``FakePps.stop``, ``resume``...).
    """

    model: str | ReceiverModel = "ublox-m8"
    pps_jitter_ns: float = 1_000.0
    actions: tuple[tuple[int, Callable[[FakeGps, FakePps], None]], ...] = ()


#: The simulated receiver's source name (``refclock nmea unit 0``).
GPS_SOURCE = "NMEA(0)"
#: A PPS timestamp is read this long after the edge (the daemon's PPS poller: a few ms).
PULSE_LATENCY_NS = 1_000_000
#: 1024 GPS weeks in ns: the week-number rollover period.
WEEKS_1024_NS = 1024 * 7 * 86_400 * NS_PER_S


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A simulated upstream NTP server at ``address`` (numeric; it names the source).

    - ``clock_error_ns``: its clock minus true time (it believes it is right);
    - ``delay_ns``: the network round trip without jitter; ``asymmetry_ns``:
      outbound minus return delay (the offset error it causes is half of it);
    - ``delay_jitter_ns``: mean of an exponential queueing delay added to each way;
    - ``stratum``, ``root_delay_ns``, ``root_dispersion_ns``: what it says about itself;
    - ``outages``: half-open ``[start, end)`` intervals (from the start, ns) when it does not answer.
    """

    address: str
    clock_error_ns: int = 0
    delay_ns: int = 2_000_000
    asymmetry_ns: int = 0
    delay_jitter_ns: float = 50_000.0
    stratum: int = 1
    root_delay_ns: int = 0
    root_dispersion_ns: int = 100_000
    outages: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SystemScenario(ClockSpec):
    """What :func:`run_system` simulates (times from the start, ns).

    The clock: as :class:`Scenario`. ``gps``: the receiver, or None.
    ``servers``: upstream NTP servers, polled with ``server_options`` (an
    ntp.conf ``server`` line's options). ``local_stratum``: ``server
    127.127.1.0`` with ``fudge ... stratum N``, or None. ``tick_ns``: how
    often the timekeeper's :meth:`~appliance.sources.timekeeper.Timekeeper.tick`
    runs and the trace takes a point (the daemon ticks every second; long
    scenarios without a GPS may tick less often).
    """

    receiver: ReceiverSpec | None = None
    servers: tuple[ServerSpec, ...] = ()
    server_options: str = "iburst minpoll 4 maxpoll 6"
    local_stratum: int | None = None
    holdover_bound_ns: int = 1_000_000
    tick_ns: int = NS_PER_S
    start_ns: int = DEFAULT_START_NS


@dataclass(frozen=True, slots=True)
class Change:
    """The basis changed at ``at_ns`` (from the start): what the timekeeper said then."""

    at_ns: int
    basis: Basis
    summary: str


@dataclass(frozen=True, slots=True)
class SystemTrace:
    """One point per tick (``tick_ns`` apart from the first tick at ``tick_ns``).

    ``time_error_ns``: clock minus true time; ``stratum`` / ``refid`` /
    ``root_dispersion_ns``: the state served; ``basis``: the timekeeper's
    basis (a :class:`Basis` value string). ``changes``: every basis change
    with the status summary; ``final``: the status at the end.
    """

    tick_ns: int
    time_error_ns: array[float]
    stratum: array[int]
    refid: tuple[bytes, ...]
    root_dispersion_ns: array[float]
    basis: tuple[str, ...]
    changes: tuple[Change, ...]
    final: TimekeeperStatus
    counters: TimekeeperCounters
    #: With a :class:`ReceiverSpec`: the pairing's NMEA delay (ns) and lock breaks, the stream's counters.
    receiver: Mapping[str, int | None] = field(default_factory=dict)

    def at(self, since_start_ns: int) -> int:
        """The index of the last point at or before ``since_start_ns``."""
        return max(0, since_start_ns // self.tick_ns - 1)

    def bases(self) -> list[str]:
        """The bases in the order they were taken (consecutive repeats folded)."""
        out: list[str] = []
        for b in self.basis:
            if not out or out[-1] != b:
                out.append(b)
        return out


def _within(t: int, intervals: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= t < b for a, b in intervals)


class _Sim:
    """The event queue of :func:`run_system`; true time is the scheduling clock.

    The appliance is built as the daemon builds it, by :mod:`appliance.build`
    (:func:`~appliance.build.build_timekeeper` from the scenario's config
    lines, :func:`~appliance.build.start_refclocks` for the receiver's
    ``refclock nmea`` line), with simulated backends: the
    :class:`~appliance.clock.simulated.SimulatedClock`, a :class:`_VirtualLoop`
    for the drivers' timers, the fake receiver's bytes as its serial port
    (:class:`_VirtualSerial`) and the fake PPS as its PPS device. The
    upstream servers' network is simulated here (:meth:`request`).
    """

    def __init__(self, scenario: SystemScenario) -> None:
        sc = self.scenario = scenario
        self.start = start = sc.start_ns
        oscillator = Oscillator(
            frequency_error_ppb=sc.frequency_error_ppb,
            wander_ppb_per_sqrt_s=sc.wander_ppb_per_sqrt_s,
            steps=tuple(FrequencyStep(start + s.at_ns, s.delta_ppb) for s in sc.frequency_steps),
        )
        self.clock = SimulatedClock(
            random.Random(f"clock:{sc.seed}"), oscillator, start_ns=start, initial_offset_ns=sc.initial_offset_ns
        )
        self.queue: list[tuple[int, int, Callable[[int], None]]] = []
        self.seq = 0
        self.sent: dict[Association, int] = {}
        self.wake_at: int | None = None  # when the NTP client's one timer is due
        self.net_rng = random.Random(f"net:{sc.seed}")
        self.by_address = {s.address: s for s in sc.servers}
        config = parse_config(config_text(sc), "<simulation>")
        self.tk = build_timekeeper(config, self.clock, precision=-20, now_ns=start, rng=random.Random(f"ntp:{sc.seed}"))
        self.upstreams = self.tk.upstreams
        self.fake: FakeGps | None = None
        self.serial: _VirtualSerial | None = None
        self.running: Running | None = None
        if sc.receiver is not None:
            fake = self.fake = FakeGps(sc.receiver.model, start_ns=start, seed=sc.seed)
            self.pps = FakePps(
                lambda: self.clock.true_ns,
                self.clock.now_ns,
                jitter_ns=sc.receiver.pps_jitter_ns,
                rng=random.Random(f"gps:{sc.seed}"),
            )
            convention = Convention.NEXT if fake.model.labels == "next" else Convention.CURRENT
            edge = Edge(
                _VirtualLoop(self, PULSE_LATENCY_NS),
                self.tk,
                open_pps=lambda _path, _to_clock: FakePpsDevice(self.pps),
                open_serial=self.open_serial,
                pps_poll_s=1.0,  # each edge read PULSE_LATENCY_NS after it, as the daemon's poller reads it
                # the firmware of this simulation was built a month before it starts
                build_date_ns=start - 30 * 86_400 * NS_PER_S,
            )
            lines = tuple(_with_convention(line, convention) for line in refclock_lines(config))
            self.running = start_refclocks(edge, lines)
            self.nmea: NmeaRefclock = self.running.parts[GPS_SOURCE]

    def at(self, true_ns: int, action: Callable[[int], None]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (true_ns, self.seq, action))

    # -- the shipped fake receiver: the serial port's backend ----------------------------------

    def open_serial(
        self,
        loop: Loop,
        path: str,
        stream: NmeaStream,
        on_fix: Callable[[Fix], Any],
        *,
        baud: int,
        autobaud: bool,
        now_ns: Callable[[], int],
    ) -> _VirtualSerial:
        """The NMEA line's serial port (:class:`appliance.build.SerialOpener`): the fake receiver's bytes."""
        self.serial = _VirtualSerial(self, stream, on_fix, now_ns)
        return self.serial

    # -- the servers ----------------------------------------------------------------

    def wake(self, now: int) -> None:
        """The NTP client's timer: send the requests due, then sleep until the next one (one timer pending)."""
        upstreams = self.upstreams
        assert upstreams is not None
        if self.wake_at is not None and self.wake_at != now:
            return  # a timer that an earlier one replaced
        self.wake_at = None
        self.send_due(now)

    def send_due(self, now: int) -> None:
        upstreams = self.upstreams
        assert upstreams is not None
        for a in upstreams.due(now):
            self.request(a, now)
        self.sleep(now)

    def sleep(self, now: int) -> None:
        """Wake at the next request due (after ``now``), unless a timer already pending comes first."""
        upstreams = self.upstreams
        assert upstreams is not None
        nxt = upstreams.next_wakeup_ns()
        if nxt is None:
            return
        when = max(nxt, now + 1)
        if self.wake_at is not None and now <= self.wake_at <= when:
            return
        self.wake_at = when
        self.at(when, self.wake)

    def request(self, a: Association, now: int) -> None:
        data = a.request(now)
        a.sent(self.clock.now_ns())
        self.seq += 1
        token = self.sent[a] = self.seq
        self.at(now + RESPONSE_TIMEOUT_NS, lambda _t: self.expire(a, token))
        spec = self.by_address.get(a.address)
        if spec is None or _within(now - self.start, spec.outages):
            return
        out = (spec.delay_ns + spec.asymmetry_ns) // 2 + round(self.net_rng.expovariate(1 / spec.delay_jitter_ns))
        back = (spec.delay_ns - spec.asymmetry_ns) // 2 + round(self.net_rng.expovariate(1 / spec.delay_jitter_ns))
        t2 = now + out + spec.clock_error_ns
        t3 = t2 + 20_000
        reply = NtpPacket(
            mode=MODE_SERVER,
            stratum=spec.stratum,
            poll=a.poll,
            precision=-20,
            root_delay=short_from_ns(spec.root_delay_ns),
            root_dispersion=short_from_ns(spec.root_dispersion_ns),
            refid=refid_from_text("GPS") if spec.stratum == 1 else bytes([192, 0, 2, 99]),
            reference=ntp64_from_ns(t3 - 16 * NS_PER_S),
            origin=NtpPacket.decode(data).transmit,
            receive=ntp64_from_ns(t2),
            transmit=ntp64_from_ns(t3),
        ).encode()
        self.at(now + out + 20_000 + back, lambda _t: self.answer(a, reply))

    def answer(self, a: Association, data: bytes) -> None:
        reply = a.receive(data, self.clock.now_ns())
        if reply.answered:
            self.sent.pop(a, None)
        if reply.sample is not None:
            self.tk.on_upstream(a.name, reply.sample)
        self.send_due(self.clock.true_ns)  # the reply may make the next request due (iburst)

    def expire(self, a: Association, token: int) -> None:
        if self.sent.get(a) == token and a.waiting:
            del self.sent[a]
            a.timed_out()

    # -- the run ------------------------------------------------------------------

    def run(self) -> SystemTrace:
        sc = self.scenario
        end = self.start + sc.duration_ns
        errors: array[float] = array("d")
        strata: array[int] = array("i")
        dispersions: array[float] = array("d")
        refids: list[bytes] = []
        bases: list[str] = []
        changes: list[Change] = []

        def tick(now: int) -> None:
            self.at(now + sc.tick_ns, tick)
            self.tk.tick()
            state = self.tk.state(self.clock.now_ns())
            errors.append(self.clock.time_error_ns())
            strata.append(state.stratum)
            refids.append(state.refid)
            dispersions.append(float(state.root_dispersion_ns))
            basis = self.tk.basis
            if not bases or bases[-1] != basis.value:
                changes.append(Change(now - self.start, basis, self.tk.status().summary()))
            bases.append(basis.value)

        if sc.receiver is not None and self.fake is not None:
            self.at((self.start // NS_PER_S + 1) * NS_PER_S, self.stamp_pulses)
            for at, verb in sc.receiver.actions:
                self.at(self.start + at, functools.partial(_act, verb, self.fake, self.pps))
        self.at(self.start + sc.tick_ns, tick)
        if self.upstreams is not None:
            self.at(self.start, self.wake)
        while self.queue and self.queue[0][0] < end:
            when, _, action = heapq.heappop(self.queue)
            self.clock.advance_to(when)
            action(when)
        if self.running is not None:
            self.running.close()  # the drivers stop, as the daemon's do at the end
        return SystemTrace(
            sc.tick_ns,
            errors,
            strata,
            tuple(refids),
            dispersions,
            tuple(bases),
            tuple(changes),
            self.tk.status(),
            self.tk.counters,
            self._receiver_figures(),
        )

    def stamp_pulses(self, now: int) -> None:
        """The kernel stamps each edge as it happens: true time stands at the edge, so the fake's stamp is the
        clock's reading then (the PPS poller fetches it :data:`PULSE_LATENCY_NS` later; stamped by that fetch,
        the fake would extrapolate back at the slewing clock's rate, 83 us wrong at 83,333 ppm)."""
        self.at(now + NS_PER_S, self.stamp_pulses)
        self.pps.tick()

    def _receiver_figures(self) -> dict[str, int | None]:
        if self.fake is None or self.serial is None:
            return {}
        c = self.serial.stream.counters
        return {
            "nmea_delay_ns": self.nmea.gps.nmea_delay_ns,
            "lock_breaks": self.nmea.gps.counters.lock_breaks,
            "garbage_bytes": c.garbage_bytes,
            "fixes": self.nmea.gps.counters.fixes,
        }


def _act(verb: Callable[[FakeGps, FakePps], None], fake: FakeGps, pps: FakePps, _true_ns: int) -> None:
    verb(fake, pps)


class _VirtualSerial:
    """The receiver's serial port on virtual time: the fake's bytes reach ``stream`` when their first byte is due.

    As :class:`~appliance.fakes.gps.PtyWriter` writes them into the pty for
    ``serve --simulate``; the time they arrived is the simulated clock's.
    """

    def __init__(self, sim: _Sim, stream: NmeaStream, on_fix: Callable[[Fix], Any], now_ns: Callable[[], int]) -> None:
        self.sim = sim
        self.stream = stream
        self.on_fix = on_fix
        self.now_ns = now_ns
        self.running = False

    def start(self) -> None:
        self.running = True
        self.sim.at(self.sim.start, self.receiver_tick)

    def stop(self) -> None:
        self.running = False

    def receiver_tick(self, now: int) -> None:
        fake = self.sim.fake
        if fake is None or not self.running:
            return
        for chunk in fake.tick(now):
            self.sim.at(max(now, chunk.at_ns), functools.partial(self.received, chunk.data))
        self.sim.at(max(fake.next_due_ns(), now + 1), self.receiver_tick)

    def received(self, data: bytes, _true_ns: int) -> None:
        for fix in self.stream.handed(data, self.now_ns()):
            self.on_fix(fix)


class _VirtualTimer:
    """A :class:`_VirtualLoop` timer: :meth:`cancel` stops it."""

    __slots__ = ("callback", "interval_ns", "cancelled")

    def __init__(self, callback: Callable[[], Any], interval_ns: int | None) -> None:
        self.callback = callback
        self.interval_ns = interval_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _VirtualLoop:
    """The drivers' timers (:class:`appliance.build.Loop`) on the simulation's queue, in true time.

    Each timer runs ``lag_ns`` after its due time (the PPS poller reads an
    edge that long after it). Nothing is read from descriptors on virtual
    time: the backends hand their data in themselves.
    """

    def __init__(self, sim: _Sim, lag_ns: int) -> None:
        self.sim = sim
        self.lag_ns = lag_ns

    def call_every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None) -> _VirtualTimer:
        timer = _VirtualTimer(callback, round(interval * NS_PER_S))
        self._schedule(timer, round((interval if first is None else first) * NS_PER_S))
        return timer

    def call_later(self, delay: float, callback: Callable[[], Any]) -> _VirtualTimer:
        timer = _VirtualTimer(callback, None)
        self._schedule(timer, round(delay * NS_PER_S))
        return timer

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> None:
        raise NotImplementedError("no descriptors on virtual time: pass the driver a simulated backend")

    def remove_reader(self, fileobj: Any) -> None:
        raise NotImplementedError("no descriptors on virtual time")

    def _schedule(self, timer: _VirtualTimer, delay_ns: int) -> None:
        self.sim.at(self.sim.clock.true_ns + delay_ns + self.lag_ns, functools.partial(self._fire, timer))

    def _fire(self, timer: _VirtualTimer, now: int) -> None:
        if timer.cancelled:
            return
        if timer.interval_ns is not None:
            self.sim.at(now + timer.interval_ns, functools.partial(self._fire, timer))
        timer.callback()


def config_text(scenario: SystemScenario) -> str:
    """The ntp.conf lines ``scenario`` describes: its servers, local clock, holdover bound and receiver.

    >>> print(config_text(SystemScenario(receiver=ReceiverSpec(), servers=(ServerSpec("192.0.2.1"),))), end="")
    server 192.0.2.1 iburst minpoll 4 maxpoll 6
    holdover 0.001000000
    refclock nmea unit 0 ppspath /dev/pps0
    """
    sc = scenario
    lines = [f"server {s.address} {sc.server_options}" for s in sc.servers]
    if sc.local_stratum is not None:
        # as the shipped ntp.conf: the local clock waits for the first synchronisation
        lines += ["server 127.127.1.0", f"fudge 127.127.1.0 stratum {sc.local_stratum}", "localclock start wait"]
    lines.append(f"holdover {sc.holdover_bound_ns / NS_PER_S:.9f}")
    if sc.receiver is not None:
        lines.append("refclock nmea unit 0 ppspath /dev/pps0")  # the fake receiver and its PPS stand in for both
    return "\n".join(lines) + "\n"


def _with_convention(line: RefclockLine, convention: Convention) -> RefclockLine:
    """An NMEA line whose receiver labels its pulses as ``convention`` says (the fake model's)."""
    if line.gps is None:
        return line
    return dataclasses.replace(line, gps=dataclasses.replace(line.gps, convention=convention))


def run_system(scenario: SystemScenario) -> SystemTrace:
    """Play ``scenario`` with the daemon's timekeeper on virtual time; see the module docstring."""
    return _Sim(scenario).run()
