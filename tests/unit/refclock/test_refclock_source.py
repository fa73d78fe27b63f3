"""The generic refclock source: offsets, sample checks, pulses with and without lock, chrony's median filter."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.ntp.packet import LEAP_INSERT, LEAP_UNSYNC
from appliance.refclock.driver import DRIVERS, driver_info, offsets_ns
from appliance.refclock.sample import Pulse, Sample, SampleKind
from appliance.refclock.source import (
    RefclockSettings,
    RefclockSource,
    SystemSync,
    Verdict,
    combine,
    select,
)
from appliance.timebase import NS_PER_S

T0 = 1_800_000_000 * NS_PER_S
MS = 1_000_000


def source(**kw: object) -> RefclockSource:
    base: dict[str, object] = {"name": "TEST(0)", "refid": "TEST", "poll": 4, "precision": -30}
    base.update(kw)
    return RefclockSource(RefclockSettings(**base))  # type: ignore[arg-type]


def feed(src: RefclockSource, offsets: list[int], *, start: int = T0, kind: SampleKind = SampleKind.TIME) -> int:
    """One sample a second with the given offsets; returns the time of the last."""
    t = start
    for i, off in enumerate(offsets):
        t = start + i * NS_PER_S
        assert src.add_sample(Sample(t, t + off, kind=kind), now_ns=t) is Verdict.ACCEPTED
    return t


# -- settings --------------------------------------------------------------------------------------


def test_capacity_is_capped_by_the_driver_polls_of_one_interval() -> None:
    assert RefclockSettings("A", poll=4, driver_poll=0).capacity == 16
    assert RefclockSettings("A", poll=4, driver_poll=0, filter_length=5).capacity == 5
    assert RefclockSettings("A", poll=0, driver_poll=0).capacity == 1
    assert RefclockSettings("A", poll=0).needed == 1
    assert RefclockSettings("A", poll=6).needed == 4


@pytest.mark.parametrize(
    "kw",
    [
        {"poll": 2, "driver_poll": 3},
        {"filter_length": 0},
        {"stratum": 16},
        {"combine_percent": 101},
        {"kinds": frozenset()},
    ],
)
def test_bad_settings_are_refused_with_the_name(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="SHM"):
        RefclockSettings("SHM(0)", **kw)  # type: ignore[arg-type]


# -- samples ---------------------------------------------------------------------------------------


def test_time1_and_time2_go_to_their_own_kind() -> None:
    src = source(pulse_offset_ns=7_000, time_offset_ns=-300 * MS)
    src.add_sample(Sample(T0, T0, kind=SampleKind.TIME), now_ns=T0)
    src.add_sample(Sample(T0 + NS_PER_S, T0 + NS_PER_S, kind=SampleKind.PULSE), now_ns=T0 + NS_PER_S)
    time_s, pulse_s = src.pending
    assert time_s.offset_ns == -300 * MS
    assert pulse_s.offset_ns == 7_000
    assert time_s.local_ns == T0  # the local time is the driver's; only the offset moves


def test_precision_is_added_to_the_dispersion() -> None:
    src = source(precision=-10)
    src.add_sample(Sample(T0, T0, dispersion_ns=5), now_ns=T0)
    assert src.pending[0].dispersion_ns == 5 + (NS_PER_S >> 10)


@pytest.mark.parametrize(
    ("sample", "now", "verdict"),
    [
        (Sample(T0 + 1, T0), T0, Verdict.FUTURE),
        (Sample(T0 - 33 * NS_PER_S, T0), T0, Verdict.STALE),  # poll 4: two intervals are 32 s
        (Sample(T0, T0, leap=LEAP_UNSYNC), T0, Verdict.UNSYNCHRONISED),
    ],
)
def test_bad_samples_are_dropped_and_counted(sample: Sample, now: int, verdict: Verdict) -> None:
    src = source()
    assert src.add_sample(sample, now_ns=now) is verdict
    assert getattr(src.counters, verdict.value) == 1
    assert src.counters.accepted == 0 and src.pending == ()


def test_a_sample_not_after_the_last_is_dropped() -> None:
    src = source()
    assert src.add_sample(Sample(T0, T0), now_ns=T0) is Verdict.ACCEPTED
    assert src.add_sample(Sample(T0, T0 + 5), now_ns=T0 + 1) is Verdict.NOT_NEWER
    assert src.add_sample(Sample(T0 - 1, T0), now_ns=T0 + 1) is Verdict.NOT_NEWER
    assert src.counters.not_newer == 2 and len(src.pending) == 1


def test_not_newer_is_judged_per_kind() -> None:
    """gpsd's serial time of second N may arrive before the edge that began N: both are taken."""
    src = source()
    assert src.add_sample(Sample(T0 + 100 * MS, T0), now_ns=T0 + 100 * MS) is Verdict.ACCEPTED
    assert src.add_sample(Sample(T0, T0, kind=SampleKind.PULSE), now_ns=T0 + 110 * MS) is Verdict.ACCEPTED
    assert src.add_sample(Sample(T0 + 50 * MS, T0), now_ns=T0 + 120 * MS) is Verdict.NOT_NEWER


def test_a_line_that_takes_pulses_only_drops_time_samples() -> None:
    src = source(kinds=frozenset({SampleKind.PULSE}))
    assert src.add_sample(Sample(T0, T0), now_ns=T0) is Verdict.WRONG_KIND
    assert src.add_sample(Sample(T0, T0, kind=SampleKind.PULSE), now_ns=T0) is Verdict.ACCEPTED


def test_a_full_filter_lets_the_oldest_go() -> None:
    src = source(poll=2)  # capacity 4
    feed(src, [1, 2, 3, 4, 5, 6])
    assert [s.offset_ns for s in src.pending] == [3, 4, 5, 6]
    assert src.counters.overflowed == 2


# -- the poll --------------------------------------------------------------------------------------


def test_one_update_per_poll_from_the_middle_of_the_samples() -> None:
    src = source()
    offsets = [10, 12, 11, 900 * MS, 13, -700 * MS, 12, 11, 10, 12, 11, 13, 12, 11, 10, 12]
    t = feed(src, offsets)
    update = src.poll(t)
    assert update is not None
    assert update.samples_used == 10  # 16 samples, 3 dropped at each end: the middle 60 %
    assert 10 <= update.sample.offset_ns <= 13  # both outliers went
    assert update.name == "TEST(0)" and update.refid == "TEST" and update.reach == 1
    assert src.pending == ()
    assert src.poll(t + 16 * NS_PER_S) is None  # nothing new: no update, reach shifts in a 0
    assert src.reach == 0b10
    assert src.counters.polls == 2 and src.counters.updates == 1 and src.counters.too_few == 1


def test_too_few_samples_wait_for_the_next_poll_while_fresh() -> None:
    src = source()
    t = feed(src, [5, 5, 5])
    assert src.poll(t) is None
    t = feed(src, [5], start=t + NS_PER_S)
    update = src.poll(t)
    assert update is not None and update.samples_used == 2


def test_stale_samples_leave_the_filter_at_the_poll() -> None:
    src = source()
    t = feed(src, [5, 5, 5])
    assert src.poll(t + 40 * NS_PER_S) is None
    assert src.pending == ()


def test_prefer_noselect_stratum_travel_with_the_update() -> None:
    src = source(prefer=True, noselect=True, stratum=2, poll=0)
    src.add_sample(Sample(T0, T0 + 3), now_ns=T0)
    update = src.poll(T0)
    assert update is not None
    assert (update.prefer, update.noselect, update.stratum, update.sample.offset_ns) == (True, True, 2, 3)


def test_leap_is_the_newest_samples() -> None:
    src = source(poll=2)
    src.add_sample(Sample(T0, T0), now_ns=T0)
    src.add_sample(Sample(T0 + NS_PER_S, T0 + NS_PER_S, leap=LEAP_INSERT), now_ns=T0 + NS_PER_S)
    src.add_sample(Sample(T0 + 2 * NS_PER_S, T0 + 2 * NS_PER_S, leap=LEAP_INSERT), now_ns=T0 + 2 * NS_PER_S)
    src.add_sample(Sample(T0 + 3 * NS_PER_S, T0 + 3 * NS_PER_S, leap=LEAP_INSERT), now_ns=T0 + 3 * NS_PER_S)
    update = src.poll(T0 + 3 * NS_PER_S)
    assert update is not None and update.sample.leap == LEAP_INSERT


def test_a_spread_above_maxdispersion_drops_the_poll() -> None:
    src = source(poll=2, max_dispersion_ns=1 * MS)
    t = feed(src, [0, 10 * MS, 20 * MS, 30 * MS])
    assert src.poll(t) is None
    assert src.counters.too_dispersed == 1


def test_a_step_restates_the_stored_local_times() -> None:
    src = source(poll=2)
    t = feed(src, [100 * MS] * 4)
    src.clock_stepped(100 * MS)  # the clock was 100 ms behind and was stepped forwards
    assert [s.offset_ns for s in src.pending] == [0] * 4
    assert src.last_sample is not None and src.last_sample.offset_ns == 0
    update = src.poll(t + 100 * MS)
    assert update is not None and update.sample.offset_ns == 0


# -- the filter itself -----------------------------------------------------------------------------

offsets_st = st.lists(st.integers(-10 * MS, 10 * MS), min_size=1, max_size=64)


@given(offsets_st)
def test_combined_offset_lies_within_the_samples(offsets: list[int]) -> None:
    samples = [Sample(T0 + i * NS_PER_S, T0 + i * NS_PER_S + o) for i, o in enumerate(offsets)]
    used = select(samples)
    sample, spread = combine(used)
    assert min(offsets) <= sample.offset_ns <= max(offsets)
    assert samples[0].local_ns <= sample.local_ns <= samples[-1].local_ns
    assert spread >= 0 and sample.dispersion_ns >= spread
    # the ones left out are never between the ones kept
    kept = sorted(s.offset_ns for s in used)
    dropped = sorted(offsets)
    for k in kept:
        dropped.remove(k)
    assert all(d <= kept[0] or d >= kept[-1] for d in dropped)


@given(offsets_st)
def test_selection_keeps_the_middle_sixty_percent(offsets: list[int]) -> None:
    samples = [Sample(T0 + i, T0 + i + o) for i, o in enumerate(offsets)]
    n = len(samples)
    used = select(samples)
    if n <= 2:
        assert len(used) == n
    else:
        cut = min(max(1, n * 40 // 200), (n - 1) // 2)
        assert len(used) == n - 2 * cut
    assert [s.local_ns for s in used] == sorted(s.local_ns for s in used)  # oldest first


@given(st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=40))
def test_spread_is_the_sample_standard_deviation(offsets: list[int]) -> None:
    samples = [Sample(T0 + i, T0 + i + o) for i, o in enumerate(offsets)]
    _, spread = combine(samples)
    assert abs(spread - statistics.stdev(offsets)) <= 1 + statistics.stdev(offsets) * 1e-9


def test_high_dispersion_samples_are_left_out_when_enough_remain() -> None:
    good = [Sample(T0 + i, T0 + i + 10, dispersion_ns=1_000) for i in range(5)]
    bad = [Sample(T0 + 10 + i, T0 + 10 + i + 5 * MS, dispersion_ns=2_000) for i in range(3)]
    assert all(s.offset_ns == 10 for s in select(good + bad))


# -- pulses ----------------------------------------------------------------------------------------


def lock_and_pps(**kw: object) -> tuple[RefclockSource, RefclockSource]:
    shm = source(name="SHM(0)", refid="SHM", poll=4)
    pps = source(name="PPS(0)", refid="PPS", poll=4, lock="SHM(0)", kinds=frozenset({SampleKind.PULSE}), **kw)
    return shm, pps


@given(
    true_offset=st.integers(-400 * MS, 400 * MS),
    serial_error=st.integers(-50 * MS, 50 * MS),
    second=st.integers(0, 10_000),
)
@settings(max_examples=200)
def test_a_locked_pulse_takes_its_second_from_the_lock_source(true_offset: int, serial_error: int, second: int) -> None:
    """The local clock is ``true_offset`` behind; the serial time is off by up to 50 ms; the pulse is exact."""
    shm, pps = lock_and_pps()
    edge_true = T0 + second * NS_PER_S
    edge_local = edge_true - true_offset
    serial_local = edge_local + 120 * MS
    shm.add_sample(Sample(serial_local, edge_true + 120 * MS + serial_error), now_ns=serial_local)
    now = serial_local + MS
    assert pps.add_pulse(Pulse(edge_local), now, lock_sample=shm.last_sample) is Verdict.ACCEPTED
    (got,) = pps.pending
    assert got.kind is SampleKind.PULSE
    assert got.reference_ns == edge_true  # the right second, to the nanosecond
    assert got.offset_ns == true_offset


def test_pulse_without_a_lock_sample_is_refused() -> None:
    _, pps = lock_and_pps()
    assert pps.add_pulse(Pulse(T0), T0, lock_sample=None) is Verdict.NO_LOCK_SAMPLE
    assert pps.counters.no_lock_sample == 1


def test_pulse_far_from_the_lock_sample_is_refused() -> None:
    shm, pps = lock_and_pps()
    shm.add_sample(Sample(T0, T0), now_ns=T0)
    assert (
        pps.add_pulse(Pulse(T0 + 2 * NS_PER_S), T0 + 2 * NS_PER_S, lock_sample=shm.last_sample) is Verdict.LOCK_TOO_OLD
    )


def test_pulse_that_disagrees_with_the_lock_is_refused() -> None:
    shm, pps = lock_and_pps()
    shm.add_sample(Sample(T0, T0 + 300 * MS), now_ns=T0)  # serial says the clock is 300 ms behind
    # the edge at local T0 + 0.5 s says 500 ms: a 200 ms disagreement
    assert pps.add_pulse(Pulse(T0 + 500 * MS), T0 + 600 * MS, lock_sample=shm.last_sample) is Verdict.LOCK_MISMATCH


def test_locked_pulse_carries_the_lock_sources_leap() -> None:
    shm, pps = lock_and_pps()
    shm.add_sample(Sample(T0 + 100 * MS, T0 + 100 * MS, leap=LEAP_INSERT), now_ns=T0 + 100 * MS)
    pps.add_pulse(Pulse(T0 + NS_PER_S), T0 + NS_PER_S, lock_sample=shm.last_sample)
    assert pps.pending[0].leap == LEAP_INSERT


def test_pulse_offset_moves_the_edge() -> None:
    shm, pps = lock_and_pps(pulse_offset_ns=3_000)
    shm.add_sample(Sample(T0 + 100 * MS, T0 + 100 * MS), now_ns=T0 + 100 * MS)
    pps.add_pulse(Pulse(T0 + NS_PER_S), T0 + NS_PER_S, lock_sample=shm.last_sample)
    assert pps.pending[0].offset_ns == 3_000


def test_unlocked_pulse_is_numbered_by_a_synchronised_system() -> None:
    pps = source(name="PPS(1)", kinds=frozenset({SampleKind.PULSE}))
    synced = SystemSync(synchronised=True, root_distance_ns=20 * MS)
    assert pps.add_pulse(Pulse(T0 - 2_000), T0, system=synced) is Verdict.ACCEPTED
    assert pps.add_pulse(Pulse(T0 + NS_PER_S + 3_000), T0 + NS_PER_S + MS, system=synced) is Verdict.ACCEPTED
    assert [s.offset_ns for s in pps.pending] == [2_000, -3_000]


@pytest.mark.parametrize(
    "system",
    [
        None,
        SystemSync(synchronised=False, root_distance_ns=0),
        SystemSync(synchronised=True, root_distance_ns=NS_PER_S // 2),
    ],
)
def test_unlocked_pulse_without_a_good_system_is_refused_and_the_poll_forgotten(system: SystemSync | None) -> None:
    pps = source(name="PPS(1)", kinds=frozenset({SampleKind.PULSE}))
    pps.add_pulse(Pulse(T0), T0, system=SystemSync(True, 0))
    assert pps.add_pulse(Pulse(T0 + NS_PER_S), T0 + NS_PER_S, system=system) is Verdict.SYSTEM_UNSYNCHRONISED
    assert pps.pending == ()
    assert pps.counters.system_unsynchronised == 1


def test_a_shm_and_a_locked_pps_make_one_update_each() -> None:
    """Sixteen seconds of gpsd: serial time 100 ms late with 5 ms of jitter, pulses exact, clock 2 ms behind."""
    shm, pps = lock_and_pps()
    behind = 2 * MS
    for i in range(16):
        edge_true = T0 + i * NS_PER_S
        edge_local = edge_true - behind
        jitter = (i * 7919) % 11 - 5
        serial_local = edge_local + 100 * MS + jitter * MS
        shm.add_sample(Sample(serial_local, edge_true), now_ns=serial_local)
        pps.add_pulse(Pulse(edge_local + i), serial_local + MS, lock_sample=shm.last_sample)
    end = T0 + 16 * NS_PER_S
    u_shm, u_pps = shm.poll(end), pps.poll(end)
    assert u_shm is not None and u_pps is not None
    assert abs(u_shm.sample.offset_ns - (behind - 100 * MS)) < 3 * MS  # the serial delay is time2's job
    assert abs(u_pps.sample.offset_ns - behind) < 20
    assert u_pps.sample.kind is SampleKind.PULSE and u_shm.sample.kind is SampleKind.TIME


# -- the driver table ------------------------------------------------------------------------------


def test_driver_table_matches_the_config_model() -> None:
    from appliance.config.model import REFCLOCK_TYPES

    for info in DRIVERS.values():
        assert REFCLOCK_TYPES[info.ntpd_type] == info.name
        assert driver_info(info.ntpd_type) is info is driver_info(info.name)


def test_unknown_driver_names_those_that_exist() -> None:
    with pytest.raises(KeyError, match=r"generic.*shm \(28\)"):
        driver_info("generic")


def test_time2_of_shm_is_not_an_offset() -> None:
    assert offsets_ns(DRIVERS["shm"], None, 5 * NS_PER_S) == (0, 0)
    assert offsets_ns(DRIVERS["nmea"], 1, 2) == (1, 2)


events = st.lists(
    st.tuples(
        st.sampled_from(["sample", "pulse", "poll", "step"]),
        st.integers(-40 * NS_PER_S, 3 * NS_PER_S),  # local time relative to now
        st.integers(-NS_PER_S, NS_PER_S),  # offset, or the step
        st.sampled_from(list(SampleKind)),
        st.integers(0, 3),  # leap
        st.integers(0, 2 * NS_PER_S),  # time passing
    ),
    max_size=80,
)


@given(events)
@settings(max_examples=150)
def test_every_sample_and_pulse_is_accounted_for(evs: list[tuple[str, int, int, SampleKind, int, int]]) -> None:
    """Whatever comes, each input is accepted or dropped under one reason, and updates come only from polls."""
    src = source(poll=2, lock="LOCK(0)")
    lock = Sample(T0, T0)
    now = T0
    updates = 0
    for what, rel, value, kind, leap, dt_ns in evs:
        now += dt_ns
        if what == "sample":
            src.add_sample(Sample(now + rel, now + rel + value, leap=leap, kind=kind), now_ns=now)
        elif what == "pulse":
            lock = Sample(now + rel, now + rel + value)
            src.add_pulse(Pulse(now + rel + NS_PER_S // 10), now, lock_sample=lock)
        elif what == "poll":
            update = src.poll(now)
            updates += update is not None
            if update is not None:
                assert update.samples_used >= 1 and update.reach & 1
        else:
            src.clock_stepped(value)
        assert len(src.pending) <= src.settings.capacity
    c = src.counters
    dropped = sum(getattr(c, v.value) for v in Verdict if v is not Verdict.ACCEPTED)
    assert c.samples + c.pulses == c.accepted + dropped
    assert c.updates == updates and c.polls == c.updates + c.too_few + c.too_dispersed
    assert 0 <= src.reach <= 0xFF
