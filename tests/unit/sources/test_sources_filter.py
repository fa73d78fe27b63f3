"""The clock filter (RFC 5905 section 10): lowest delay wins, dispersion grows with age, jitter is RMS."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.sources.filter import MAXDISP_NS, NSTAGES, ClockFilter, phi_growth
from appliance.timebase import NS_PER_S

MS = 1_000_000
US = 1_000
T0 = 1_795_000_000 * NS_PER_S


def empty_stages_epsilon(filled: int) -> int:
    """What the empty stages after ``filled`` real ones add to epsilon."""
    return sum(MAXDISP_NS >> (i + 1) for i in range(filled, NSTAGES))


def test_the_lowest_delay_sample_is_chosen() -> None:
    f = ClockFilter()
    assert f.add(T0, 3 * MS, 30 * MS, 0)
    assert f.add(T0 + NS_PER_S, 1 * MS, 10 * MS, 0)
    assert not f.add(T0 + 2 * NS_PER_S, 2 * MS, 20 * MS, 0)  # the best is still the 10 ms one
    out = f.output
    assert out is not None
    assert (out.offset_ns, out.delay_ns, out.sample_ns) == (1 * MS, 10 * MS, T0 + NS_PER_S)


def test_a_sample_is_used_once_and_never_an_older_one() -> None:
    f = ClockFilter()
    f.add(T0, 1 * MS, 5 * MS, 0)
    # seven newer samples with longer delays: the old best stays, its offset is not reused as "new"
    for i in range(1, NSTAGES):
        assert not f.add(T0 + i * NS_PER_S, 9 * MS, 50 * MS, 0)
    # the eighth pushes the 5 ms sample out: the best is now one of the 50 ms ones, the newest of them
    assert f.add(T0 + NSTAGES * NS_PER_S, 9 * MS, 50 * MS, 0)
    out = f.output
    assert out is not None and out.delay_ns == 50 * MS and out.sample_ns == T0 + NSTAGES * NS_PER_S


def test_equal_delays_prefer_the_newest_sample() -> None:
    f = ClockFilter()
    for i in range(4):
        assert f.add(T0 + i * NS_PER_S, i * US, 0, 1 * US)  # refclock samples: delay 0, each newer one wins
    out = f.output
    assert out is not None and out.offset_ns == 3 * US


def test_dispersion_is_the_weighted_sum_with_empty_stages_at_maxdisp() -> None:
    f = ClockFilter()
    f.add(T0, 0, 1 * MS, 4 * MS)
    out = f.output
    assert out is not None
    assert out.dispersion_ns == (4 * MS >> 1) + empty_stages_epsilon(1)
    # one sample leaves the distance far above MAXDIST; four bring it near a second, eight to almost nothing
    for i in range(1, NSTAGES):
        f.add(T0 + i, 0, 1 * MS, 4 * MS)
    out = f.output
    assert out is not None
    assert out.dispersion_ns < 4 * MS


def test_dispersion_grows_at_phi_with_age() -> None:
    f = ClockFilter()
    f.add(T0, 0, 1 * MS, 2 * MS)
    out = f.output
    assert out is not None
    # 15 ppm: 1000 s add 15 ms
    assert out.dispersion_at(T0 + 1000 * NS_PER_S) - out.dispersion_at(T0) == 15 * MS
    assert phi_growth(1000 * NS_PER_S) == 15 * MS
    assert phi_growth(-5) == 0


def test_stages_age_before_they_are_weighed() -> None:
    f = ClockFilter()
    f.add(T0, 0, 1 * MS, 0)
    f.add(T0 + 1000 * NS_PER_S, 0, 1 * MS, 0)
    out = f.output
    assert out is not None
    # the older stage has aged 15 ms and sorts second (equal delays: the lower dispersion first)
    assert out.sample_ns == T0 + 1000 * NS_PER_S
    assert out.dispersion_ns == (0 >> 1) + (15 * MS >> 2) + empty_stages_epsilon(2)


def test_jitter_is_the_rms_of_differences_to_the_best() -> None:
    f = ClockFilter()
    f.add(T0, 0, 1 * MS, 0)
    f.add(T0 + 1, 3 * US, 2 * MS, 0)
    f.add(T0 + 2, -3 * US, 3 * MS, 0)
    out = f.output
    assert out is not None
    assert out.offset_ns == 0
    # sqrt((3 us**2 + 3 us**2) / (3 - 1)) = 3 us
    assert out.jitter_ns == 3 * US


def test_jitter_never_goes_below_the_floor() -> None:
    f = ClockFilter(jitter_floor_ns=954)
    f.add(T0, 5, 0, 0)
    out = f.output
    assert out is not None and out.jitter_ns == 954


def test_dummy_stages_raise_dispersion_and_keep_the_offset() -> None:
    f = ClockFilter()
    for i in range(NSTAGES):
        f.add(T0 + i * NS_PER_S, 7 * US, 1 * MS, 1 * US)
    before = f.output
    assert before is not None
    f.add_dummy()
    after = f.output
    assert after is not None
    assert after.offset_ns == 7 * US
    assert after.dispersion_ns > before.dispersion_ns + (MAXDISP_NS >> NSTAGES) - 1 * US
    for _ in range(NSTAGES):
        f.add_dummy()
    out = f.output
    assert out is not None
    assert out.offset_ns == 7 * US  # nothing valid left: the last estimate stays, its dispersion is all MAXDISP
    assert out.dispersion_ns == sum(MAXDISP_NS >> (i + 1) for i in range(NSTAGES))


def test_clear_forgets_everything() -> None:
    f = ClockFilter()
    f.add(T0, 1, 1, 1)
    f.clear()
    assert f.output is None and f.stages == ()


def test_negative_delays_count_as_zero() -> None:
    f = ClockFilter()
    f.add(T0, 0, -5 * US, 0)
    out = f.output
    assert out is not None and out.delay_ns == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-MS, MS), st.integers(0, 100 * MS), st.integers(0, MS)), min_size=1, max_size=30))
def test_a_new_best_is_always_the_lowest_delay_in_the_register(samples: list[tuple[int, int, int]]) -> None:
    f = ClockFilter()
    for i, (offset, delay, dispersion) in enumerate(samples):
        t = T0 + i * 16 * NS_PER_S
        changed = f.add(t, offset, delay, dispersion)
        out = f.output
        assert out is not None and out.jitter_ns >= 1 and out.dispersion_ns > 0
        if changed:
            assert out.delay_ns == min(s.delay_ns for s in f.stages)
            assert out.sample_ns > t - NSTAGES * 16 * NS_PER_S


def test_without_empty_stages_epsilon_counts_only_the_samples_there_are() -> None:
    f = ClockFilter(count_empty=False)
    f.add(T0, 0, 1 * MS, 4 * MS)
    out = f.output
    assert out is not None and out.dispersion_ns == 4 * MS >> 1
    f.add_dummy()  # a timeout still weighs in at MAXDISP
    out = f.output
    assert out is not None and out.dispersion_ns >= MAXDISP_NS >> 2
    assert f.valid_samples == 1


def test_slewed_restates_each_stage_from_its_own_time() -> None:
    """What the clock was slewed since a stage's time comes off that stage's offset; timeouts stay timeouts."""
    f = ClockFilter()
    for i in range(NSTAGES):
        f.add(T0 + i * NS_PER_S, 2 * MS, 10 * MS + i, 0)
    f.add_dummy()
    f.add(T0 + NSTAGES * NS_PER_S, 2 * MS, 10 * MS + NSTAGES, 0)

    def moved(t: int) -> int:  # the clock was slewed 1 us for every second after T0 + 3 s up to now
        return max(0, T0 + (NSTAGES + 1) * NS_PER_S - max(t, T0 + 3 * NS_PER_S)) // 1000

    f.slewed(moved)
    stages = f.stages
    assert len(stages) == NSTAGES  # still a register of eight
    for s in stages:
        if s.dummy:
            assert s.offset_ns == 0
        else:
            assert s.offset_ns == 2 * MS - moved(s.time_ns)
    out = f.output
    assert out is not None and out.offset_ns == 2 * MS - moved(out.sample_ns)
    assert f.add(T0 + (NSTAGES + 1) * NS_PER_S, 2 * MS, 1 * MS, 0)  # still a working register afterwards
    assert len(f.stages) == NSTAGES
