"""The timekeeper's pieces that the simulation scenarios do not isolate: steps restate samples, status text."""

from __future__ import annotations

import random

from appliance.clock.simulated import SimulatedClock
from appliance.config import parse_config
from appliance.ntp.packet import MODE_SERVER, NtpPacket, refid_from_text
from appliance.refclock.local import LocalClock
from appliance.sources.client import Association, Upstreams
from appliance.sources.filter import ClockFilter
from appliance.sources.source import SourceSample
from appliance.sources.timekeeper import LOCAL_NAME, Basis, Timekeeper
from appliance.timebase import NS_PER_S, ntp64_from_ns

T0 = 1_795_000_000 * NS_PER_S
MS = 1_000_000


def test_a_step_restates_the_filter_instead_of_forgetting_it() -> None:
    f = ClockFilter()
    for i in range(4):
        f.add(T0 + i * NS_PER_S, 200 * MS + i, 1000, 10)
    before = f.output
    assert before is not None
    f.shift(200 * MS)  # the clock jumped forwards by the offset it had
    after = f.output
    assert after is not None and after.offset_ns == before.offset_ns - 200 * MS
    assert [s.offset_ns for s in f.stages] == [3, 2, 1, 0]
    assert after.sample_ns == before.sample_ns + 200 * MS and after.jitter_ns == before.jitter_ns
    assert not f.add(T0 + 200 * MS + 4 * NS_PER_S, 5, 5000, 10)  # a worse (longer) path does not win


def reply(a: Association, request: bytes, t2: int) -> bytes:
    return NtpPacket(
        mode=MODE_SERVER,
        stratum=1,
        precision=-20,
        refid=refid_from_text("GPS"),
        reference=ntp64_from_ns(t2 - NS_PER_S),
        origin=NtpPacket.decode(request).transmit,
        receive=ntp64_from_ns(t2),
        transmit=ntp64_from_ns(t2),
    ).encode()


def test_a_reply_in_flight_across_a_step_is_dropped_and_counts_as_an_answer() -> None:
    a = Association("192.0.2.1", 0, rng=random.Random(1))
    q = a.request(0)
    a.sent(T0)
    a.clock_stepped(-150 * MS)
    r = a.receive(reply(a, q, T0 + MS), T0 + 2 * MS - 150 * MS)
    assert (r.outcome, r.reason, r.answered) == ("dropped", "stepped", True)
    assert a.counters.dropped == {"stepped": 1} and a.missed == 0 and not a.waiting
    q = a.request(NS_PER_S)
    a.sent(T0)
    assert a.receive(reply(a, q, T0 + MS), T0 + 2 * MS).outcome == "sample"  # the next one counts again


def test_local_clock_only_and_the_status_text() -> None:
    config = parse_config("server 127.127.1.0\nfudge 127.127.1.0 stratum 7\n", "t.conf")
    clock = SimulatedClock(random.Random(1), start_ns=T0)
    tk = Timekeeper(clock, precision=-20, local=LocalClock.from_config(config))
    state = tk.state(clock.now_ns())
    assert (tk.basis, state.stratum, state.refid) == (Basis.LOCAL, 7, refid_from_text("LOCL"))
    status = tk.status()
    assert status.system_peer == LOCAL_NAME and status.falsetickers == ()
    assert status.summary().startswith("local: stratum 7, refid LOCL, system peer LOCAL(0)")
    assert status.source_lines()[0].startswith("*LOCAL(0)")


def test_nothing_configured_is_unsynchronised_and_the_leap_hook_is_only_used_when_synchronised() -> None:
    clock = SimulatedClock(random.Random(1), start_ns=T0)
    calls: list[tuple[int, int]] = []

    def leap(now_ns: int, selected: int) -> int:
        calls.append((now_ns, selected))
        return 1

    tk = Timekeeper(clock, precision=-20, leap=leap)
    assert tk.state(clock.now_ns()).stratum == 16 and tk.basis is Basis.UNSYNCHRONISED and calls == []
    tk.tick()
    assert not clock.leap_pending()  # unsynchronised: nothing armed
    local = Timekeeper(clock, precision=-20, leap=leap, local=LocalClock())
    assert local.state(clock.now_ns()).leap == 1 and calls == [(clock.now_ns(), 0)]
    local.tick()  # the served insert is armed on the clock, for the kernel to execute at midnight
    assert clock.leap_pending()


def test_upstream_samples_steer_only_the_system_peer_and_only_fresh() -> None:
    config = parse_config("server 192.0.2.1 iburst\n", "t.conf")
    clock = SimulatedClock(random.Random(1), start_ns=T0)
    ups = Upstreams(config.servers, 0, rng=random.Random(2))
    tk = Timekeeper(clock, precision=-20, upstreams=ups)
    (a,) = ups.associations
    for i in range(4):
        q = a.request(i * 2 * NS_PER_S)
        a.sent(clock.now_ns())
        clock.advance(MS)
        r = a.receive(reply(a, q, clock.now_ns() + 5 * MS), clock.now_ns() + MS)
        assert r.sample is not None
        tk.on_upstream(a.name, r.sample)
        clock.advance(2 * NS_PER_S)
    assert tk.basis is Basis.UPSTREAM and tk.counters.upstream_updates >= 1
    state = tk.state(clock.now_ns())
    assert state.stratum == 2 and state.refid == bytes([192, 0, 2, 1])
    updates = tk.counters.upstream_updates
    stale = SourceSample(time_ns=clock.now_ns() - 60 * NS_PER_S, offset_ns=0, delay_ns=MS)
    tk.on_upstream(a.name, stale)
    tk.on_upstream("192.0.2.99", SourceSample(time_ns=clock.now_ns(), offset_ns=0, delay_ns=MS))
    assert tk.counters.upstream_updates == updates


def test_a_server_that_loses_its_sync_is_unfit_at_once_and_fit_again_when_it_recovers() -> None:
    a = Association("192.0.2.1", 0, rng=random.Random(1))
    for i in range(4):
        q = a.request(i)
        a.sent(T0 + i * NS_PER_S)
        assert a.receive(reply(a, q, T0 + i * NS_PER_S + MS), T0 + i * NS_PER_S + 2 * MS).outcome == "sample"
    assert a.estimate(T0 + 5 * NS_PER_S).usable
    q = a.request(5)
    a.sent(T0 + 5 * NS_PER_S)
    unsync = NtpPacket.decode(reply(a, q, T0 + 5 * NS_PER_S + MS))
    data = NtpPacket(
        leap=3,
        mode=MODE_SERVER,
        stratum=16,
        precision=-20,
        origin=unsync.origin,
        receive=unsync.receive,
        transmit=unsync.transmit,
    ).encode()
    r = a.receive(data, T0 + 5 * NS_PER_S + 2 * MS)
    assert (r.outcome, r.reason) == ("dropped", "unsynchronised")
    e = a.estimate(T0 + 6 * NS_PER_S)
    assert not e.usable and e.why_unusable.startswith(("stratum 16", "unsynchronised"))
    q = a.request(6)
    a.sent(T0 + 6 * NS_PER_S)
    assert a.receive(reply(a, q, T0 + 6 * NS_PER_S + MS), T0 + 6 * NS_PER_S + 2 * MS).outcome == "sample"
    assert a.estimate(T0 + 7 * NS_PER_S).usable


def test_a_pps_numbered_by_gpsd_shm_takes_over_from_it_as_the_pps_peer() -> None:
    """ntpd's SHM + ATOM pair: the SHM seconds are selected first, then the PPS they number leads (tally o)."""
    from appliance.refclock.sample import Pulse, Sample, SampleKind
    from appliance.refclock.source import RefclockSettings, RefclockSource

    clock = SimulatedClock(random.Random(1), start_ns=T0, initial_offset_ns=30 * MS)
    tk = Timekeeper(clock, precision=-20)
    tk.add_refclock(RefclockSource(RefclockSettings(name="SHM(0)", refid="GPS", poll=2, prefer=True)))
    pulses = frozenset({SampleKind.PULSE})
    tk.add_refclock(RefclockSource(RefclockSettings(name="PPS(0)", refid="PPS", poll=2, kinds=pulses)))
    rng = random.Random(2)
    peers = []
    for second in range(1, 121):
        true = T0 + second * NS_PER_S
        clock.advance_to(true)
        edge = clock.now_ns() + round(rng.gauss(0, 1_000))
        clock.advance_to(true + MS)  # the edge is read a little later
        tk.on_pulse("PPS(0)", Pulse(edge))
        clock.advance_to(true + 100 * MS)  # gpsd's NMEA receive time: 100 ms late (time1 calibrated), +- 50 us
        shm = clock.now_ns() + round(rng.gauss(0, 50_000))
        clock.advance_to(true + 101 * MS)
        tk.on_sample("SHM(0)", Sample(local_ns=shm, reference_ns=true + 100 * MS))
        tk.tick()
        peers.append(tk.status().system_peer)
    # first the seconds (the pulses are numbered only once the system is synchronised), then the PPS for good,
    # though SHM(0) is the previous peer and prefer
    assert [p for i, p in enumerate(peers) if p is not None and (i == 0 or peers[i - 1] != p)] == ["SHM(0)", "PPS(0)"]
    assert peers[-30:] == ["PPS(0)"] * 30
    status = tk.status()
    assert status.selection.tally_code("PPS(0)") == "o" and status.state.refid == refid_from_text("PPS")
    assert status.state.stratum == 1 and tk.basis is Basis.REFCLOCK
    pps = next(e for e in status.selection.estimates if e.name == "PPS(0)")
    assert status.selection.offset_ns == pps.offset_ns  # the edge's offset steers, not the SHM's


def gps_then_lost(*, local: bool, seconds: int = 120) -> tuple[Timekeeper, SimulatedClock]:
    """A GPS's seconds (ntpd's SHM + a local clock, as the shipped ntp.conf) for ``seconds``, then none for 30 s."""
    from appliance.refclock.sample import Sample
    from appliance.refclock.source import RefclockSettings, RefclockSource

    shipped = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nlocalclock start wait\n"
    config = parse_config(shipped if local else "", "t.conf")
    clock = SimulatedClock(random.Random(1), start_ns=T0, initial_offset_ns=3 * MS)
    tk = Timekeeper(clock, precision=-20, local=LocalClock.from_config(config) if local else None)
    tk.add_refclock(RefclockSource(RefclockSettings(name="SHM(0)", refid="GPS", poll=2)))
    rng = random.Random(2)
    for second in range(1, seconds + 1):
        true = T0 + second * NS_PER_S
        clock.advance_to(true + 100 * MS)
        tk.on_sample(
            "SHM(0)", Sample(local_ns=clock.now_ns() + round(rng.gauss(0, 20_000)), reference_ns=true + 100 * MS)
        )
        tk.tick()
    assert tk.basis is Basis.REFCLOCK and tk.status().system_peer == "SHM(0)"
    for second in range(seconds + 1, seconds + 31):
        clock.advance_to(T0 + second * NS_PER_S)
        tk.tick()
    return tk, clock


def test_in_holdover_no_source_is_the_system_peer_though_the_local_clock_was_chosen() -> None:
    """The shipped config has a local clock: selection chooses it once the GPS is lost, but holdover serves.

    ntpq must not show ``*LOCAL(0)`` beside stratum 1 and refid GPS, nor mode 6 a system peer (the display
    reads holdover from a satellite clock source with ``peer=0``)."""
    from appliance.ntp.server import ServerCounters
    from appliance.status.collect import AssocIds, snapshot_from

    for local in (True, False):
        tk, clock = gps_then_lost(local=local)
        status = tk.status()
        assert status.basis is Basis.HOLDOVER and status.state.stratum == 1
        assert status.state.refid == refid_from_text("GPS")
        assert status.system_peer is None and status.selection.peer is None
        assert "system peer" not in status.summary()
        tallies = {line[1:].split()[0]: line[0] for line in status.source_lines()}
        assert tallies == ({"SHM(0)": " ", LOCAL_NAME: "#"} if local else {"SHM(0)": " "})
        snap = snapshot_from(
            tk, ServerCounters(), clock.now_ns(), ids=AssocIds(), started_ns=T0, version="t", precision=-20
        )
        assert (snap.system.basis, snap.system.peer, snap.system_peer) == ("holdover", 0, None)


def test_holdover_ends_on_the_local_clock_as_the_system_peer() -> None:
    tk, clock = gps_then_lost(local=True)
    bound_s = 0
    while tk.basis is Basis.HOLDOVER:
        bound_s += 60
        clock.advance_to(clock.now_ns() + 60 * NS_PER_S)
        tk.tick()
        assert bound_s < 30 * 86400, "holdover never ended"
    status = tk.status()
    assert (status.basis, status.system_peer, status.state.stratum) == (Basis.LOCAL, LOCAL_NAME, 10)
    assert status.source_lines()[-1].startswith("*LOCAL(0)")


def test_the_local_clock_waits_for_the_first_synchronisation_when_there_are_other_sources() -> None:
    """A Pi without an RTC starts from the time it was switched off: not served as stratum 10 before a real
    source has set the clock (``localclock start wait``, the shipped ntp.conf's); afterwards it stands in as
    before. Without the line (an ntp.conf written for ntpd) it is served from the start, as ntpd does."""
    from appliance.refclock.source import RefclockSettings, RefclockSource

    local = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"
    for extra, waits in (("localclock start wait\n", True), ("", False), ("localclock start serve\n", False)):
        config = parse_config(local + extra, "t.conf")
        clock = SimulatedClock(random.Random(1), start_ns=T0, initial_offset_ns=-3 * 86_400 * NS_PER_S)
        tk = Timekeeper(clock, precision=-20, local=LocalClock.from_config(config))
        tk.add_refclock(RefclockSource(RefclockSettings(name="SHM(0)", refid="GPS", poll=2)))
        state = tk.state(clock.now_ns())
        if waits:
            assert tk.basis is Basis.UNSYNCHRONISED and state.stratum == 16 and state.leap == 3
            line = next(x for x in tk.status().source_lines() if "LOCAL(0)" in x)
            assert "waits for a source to synchronise the clock first" in line
        else:
            assert tk.basis is Basis.LOCAL and state.stratum == 10  # ntpd's and chrony's way
    # once the GPS has been the basis, the local clock is the last resort again (after holdover)
    tk, clock = gps_then_lost(local=True)
    while tk.basis is Basis.HOLDOVER:
        clock.advance_to(clock.now_ns() + 60 * NS_PER_S)
        tk.tick()
    assert tk.basis is Basis.LOCAL and tk.state(clock.now_ns()).stratum == 10


def test_a_local_clock_that_is_the_only_source_is_served_from_the_start() -> None:
    config = parse_config("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nlocalclock start wait\n", "t.conf")
    clock = SimulatedClock(random.Random(1), start_ns=T0)
    tk = Timekeeper(clock, precision=-20, local=LocalClock.from_config(config))
    assert tk.state(clock.now_ns()).stratum == 10 and tk.basis is Basis.LOCAL  # nothing to wait for
    upstreams = Upstreams(parse_config("server 192.0.2.1 iburst\n", "t.conf").servers, now_ns=0)
    tk = Timekeeper(clock, precision=-20, local=LocalClock.from_config(config), upstreams=upstreams)
    assert tk.state(clock.now_ns()).stratum == 16 and tk.basis is Basis.UNSYNCHRONISED  # a server may set it
