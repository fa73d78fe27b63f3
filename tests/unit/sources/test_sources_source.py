"""One source: the reach register, the root distance, and when it is usable."""

from __future__ import annotations

from appliance.ntp.packet import LEAP_INSERT, LEAP_UNSYNC, refid_from_text
from appliance.refclock.sample import Sample
from appliance.sources.filter import NSTAGES
from appliance.sources.source import (
    LOCAL_UPDATE_NS,
    MAXDIST_NS,
    MIN_SERVER_SAMPLES,
    MINDIST_NS,
    REACH_FULL,
    Source,
    SourceConfig,
    SourceKind,
    SourceSample,
    root_distance,
)
from appliance.timebase import NS_PER_S

MS = 1_000_000
US = 1_000
T0 = 1_795_000_000 * NS_PER_S


def server(name: str = "192.0.2.1") -> Source:
    return Source(SourceConfig(name, SourceKind.SERVER, address=name))


def sample(t: int, offset: int = 0, **kw: int) -> SourceSample:
    return SourceSample(time_ns=t, offset_ns=offset, delay_ns=kw.pop("delay", 2 * MS), stratum=2, **kw)  # type: ignore[arg-type]


def fill(src: Source, n: int = NSTAGES, offset: int = 0) -> None:
    for i in range(n):
        src.polled()
        src.add(sample(T0 + i * NS_PER_S, offset))


def test_reach_register_shifts_at_each_poll_and_a_sample_sets_bit_0() -> None:
    src = server()
    pattern = [True, False, True, True, False, False, False, True]
    for i, answered in enumerate(pattern):
        src.polled()
        if answered:
            src.add(sample(T0 + i * NS_PER_S))
    assert src.reach == 0b10110001
    for _ in range(8):
        src.polled()
    assert src.reach == 0


def test_reach_register_full_after_eight_answered_polls() -> None:
    src = server()
    fill(src)
    assert src.reach == REACH_FULL == 0o377


def test_a_source_without_answers_for_eight_polls_is_unusable() -> None:
    src = server()
    fill(src)
    now = T0 + NSTAGES * NS_PER_S
    assert src.estimate(now).usable
    for _ in range(8):
        src.polled()
    e = src.estimate(now)
    assert not e.usable and e.reach == 0 and "unreachable" in e.why_unusable


def test_three_silent_polls_shift_a_dummy_into_the_filter() -> None:
    src = server()
    fill(src)
    now = T0 + NSTAGES * NS_PER_S
    quiet = src.estimate(now).dispersion_ns
    for _ in range(3):
        src.polled()
    assert src.estimate(now).dispersion_ns == quiet  # three polls may still be waiting for their answers
    src.polled()
    assert src.estimate(now).dispersion_ns > quiet + 60 * MS  # a MAXDISP stage at the 8th place: 16 s / 256


def test_root_distance_formula() -> None:
    # lambda = max(MINDIST, root delay + delay) / 2 + root dispersion + dispersion + jitter
    assert root_distance(10 * MS, 4 * MS, 3 * MS, 2 * MS, 1 * MS) == 7 * MS + 3 * MS + 2 * MS + 1 * MS
    assert root_distance(0, 0, 0, 0, 0) == MINDIST_NS // 2


def test_estimate_carries_the_root_distance_of_its_fields() -> None:
    src = server()
    for i in range(NSTAGES):
        src.polled()
        src.add(sample(T0 + i * NS_PER_S, 100 * US * (i % 2), root_delay_ns=20 * MS, root_dispersion_ns=5 * MS))
    now = T0 + 100 * NS_PER_S
    e = src.estimate(now)
    assert e.distance_ns == (20 * MS + e.delay_ns) // 2 + 5 * MS + e.dispersion_ns + e.jitter_ns
    assert e.root_delay_ns == 20 * MS and e.root_dispersion_ns == 5 * MS
    assert e.stratum == 2 and e.usable and e.updated_ns == T0 + 7 * NS_PER_S


def test_unusable_when_stratum_16_leap_3_or_too_far() -> None:
    now = T0 + NSTAGES * NS_PER_S
    for kw, why in (
        ({"stratum": 16}, "stratum 16"),
        ({"leap": LEAP_UNSYNC}, "leap 3"),
        ({"root_dispersion_ns": MAXDIST_NS}, "root distance"),
    ):
        src = server()
        for i in range(NSTAGES):
            src.polled()
            src.add(SourceSample(**{"time_ns": T0 + i * NS_PER_S, "offset_ns": 0, "stratum": 2, **kw}))  # type: ignore[arg-type]
        e = src.estimate(now)
        assert not e.usable and why in e.why_unusable


def test_a_fresh_source_is_unusable_until_its_filter_fills_a_little() -> None:
    src = server()
    src.polled()
    assert src.estimate(T0).why_unusable == "no samples yet"
    src.add(sample(T0))
    assert not src.estimate(T0).usable  # seven empty stages at 16 s: epsilon is about 8 s
    for i in range(1, 4):
        src.polled()
        src.add(sample(T0 + i))
    assert src.estimate(T0 + 4).usable  # four samples: the iburst


def test_disabled_source_says_why() -> None:
    src = server()
    fill(src)
    src.disable("sent DENY")
    e = src.estimate(T0 + NSTAGES * NS_PER_S)
    assert not e.usable and e.why_unusable == "sent DENY"


def test_refclock_samples_keep_the_configured_stratum_and_refid() -> None:
    src = Source(SourceConfig("PPS(0)", SourceKind.REFCLOCK, refid=refid_from_text("PPS"), stratum=0, prefer=True))
    for i in range(NSTAGES):
        src.polled()
        s = Sample(
            local_ns=T0 + i * NS_PER_S + 3 * US, reference_ns=T0 + i * NS_PER_S, leap=LEAP_INSERT, dispersion_ns=US
        )
        src.add(SourceSample.from_refclock(s))
    e = src.estimate(T0 + 8 * NS_PER_S)
    assert e.offset_ns == -3 * US  # local ahead of the reference: negative
    assert (e.stratum, e.refid, e.leap, e.prefer, e.kind) == (0, b"PPS\0", LEAP_INSERT, True, SourceKind.REFCLOCK)
    assert e.usable and e.delay_ns == 0


def test_local_clock_is_always_usable_at_offset_zero() -> None:
    src = Source(SourceConfig("LOCAL(0)", SourceKind.LOCAL, refid=refid_from_text("LOCL"), stratum=10))
    now = T0 + 100 * NS_PER_S + 7
    e = src.estimate(now)
    assert e.usable and e.offset_ns == 0 and e.stratum == 10


def test_local_clock_reach_fills_from_its_first_poll_as_ntpds() -> None:
    """ntpq showed LOCAL(0) with reach 377 and a last update 25 s before the daemon started: the estimate was
    "reach 377, updated on the 64 s grid" whenever asked. It is polled from its first estimate on."""
    src = Source(SourceConfig("LOCAL(0)", SourceKind.LOCAL, refid=refid_from_text("LOCL"), stratum=10))
    start = T0 + 100 * NS_PER_S + 7
    first = src.estimate(start)
    assert first.reach == 1 and first.updated_ns == start and first.usable
    later = src.estimate(start + LOCAL_UPDATE_NS + 5)
    assert later.reach == 0b11 and later.updated_ns == start + LOCAL_UPDATE_NS
    full = src.estimate(start + 20 * LOCAL_UPDATE_NS)
    assert full.reach == REACH_FULL and full.updated_ns == start + 20 * LOCAL_UPDATE_NS


def test_reset_forgets_samples_but_not_reach() -> None:
    src = server()
    fill(src)
    src.reset()
    e = src.estimate(T0)
    assert e.reach == REACH_FULL and not e.usable and e.why_unusable == "no samples yet"


def test_a_server_is_selectable_from_its_third_sample_not_its_fourth() -> None:
    """chrony's rule, not RFC 5905's empty stages at MAXDISP (which would need the fourth, 192 s at a 64 s poll)."""
    src = server()
    for i in range(MIN_SERVER_SAMPLES):
        e = src.estimate(T0 + i * 64 * NS_PER_S)
        assert not e.usable
        assert "samples" in e.why_unusable
        src.polled()
        src.add(sample(T0 + i * 64 * NS_PER_S, 100 * US))
    e = src.estimate(T0 + (MIN_SERVER_SAMPLES - 1) * 64 * NS_PER_S)
    assert MIN_SERVER_SAMPLES == 3
    assert e.usable, e.why_unusable
    assert e.distance_ns < 20 * MS  # from the samples' own dispersion, not 16 s per empty stage
