"""PulseCheck: which PPS edges look like second boundaries, and the counts of those that do not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.refclock.pps import (
    DEFAULT_TOLERANCE_NS,
    PulseCheck,
    PulseCheckConfig,
    PulseCounters,
    Verdict,
)
from appliance.refclock.sample import Pulse

S = 1_000_000_000
T0 = 1_700_000_000 * S


def run(check: PulseCheck, pulses: list[tuple[int, int | None]]) -> list[str]:
    return [check.check(Pulse(T0 + t, seq)).value for t, seq in pulses]


def test_first_pulse_is_held_then_whole_seconds_are_accepted() -> None:
    c = PulseCheck()
    assert run(c, [(0, 1), (S + 3_000, 2), (2 * S - 5_000, 3)]) == ["held", "accepted", "accepted"]
    assert c.counters == PulseCounters(received=3, accepted=2, held=1)
    assert c.last_accepted == Pulse(T0 + 2 * S - 5_000, 3)


def test_a_missed_pulse_is_no_error_for_the_next_one() -> None:
    c = PulseCheck()
    assert run(c, [(0, 1), (S, 2), (3 * S + 1_000, 4), (7 * S, 8)]) == ["held", "accepted", "accepted", "accepted"]
    assert c.counters.missed_seconds == 1 + 3
    assert c.counters.bad_interval == 0


@pytest.mark.parametrize(
    ("interval_ns", "ok"),
    [
        (S - DEFAULT_TOLERANCE_NS, True),
        (S + DEFAULT_TOLERANCE_NS, True),
        (S - DEFAULT_TOLERANCE_NS - 1, False),
        (S + DEFAULT_TOLERANCE_NS + 1, False),
        (S // 2, False),
        (2 * S + S // 2, False),
        (5 * S - 150_000_000, True),
    ],
)
def test_interval_tolerance(interval_ns: int, ok: bool) -> None:
    c = PulseCheck()
    run(c, [(0, 1)])
    assert c.check(Pulse(T0 + interval_ns, 2)) is (Verdict.ACCEPTED if ok else Verdict.BAD_INTERVAL)


def test_a_glitch_between_good_pulses_costs_only_the_glitch() -> None:
    c = PulseCheck()
    verdicts = run(c, [(0, 1), (S, 2), (S + 370_000_000, 3), (2 * S, 4), (3 * S, 5)])
    assert verdicts == ["held", "accepted", "bad_interval", "accepted", "accepted"]


def test_a_glitch_first_is_outvoted_by_the_next_good_pulses() -> None:
    c = PulseCheck()
    verdicts = run(c, [(300_000_000, 1), (S, 2), (2 * S, 3), (3 * S, 4)])
    assert verdicts == ["held", "bad_interval", "accepted", "accepted"]


def test_duplicate_sequence_numbers_are_refused_and_change_nothing() -> None:
    c = PulseCheck()
    verdicts = run(c, [(0, 1), (S, 2), (S, 2), (S + 5, 2), (2 * S, 3)])
    assert verdicts == ["held", "accepted", "duplicate", "duplicate", "accepted"]
    assert c.counters.duplicate == 2


def test_without_sequence_numbers_the_same_timestamp_is_a_duplicate() -> None:
    c = PulseCheck()
    assert run(c, [(0, None), (S, None), (S, None), (2 * S, None)]) == ["held", "accepted", "duplicate", "accepted"]


def test_out_of_order_by_sequence_and_by_time() -> None:
    c = PulseCheck()
    # sequence goes back (an old event), then time goes back (clock stepped back 0.5 s)
    verdicts = run(c, [(0, 10), (S, 11), (2 * S, 9), (3 * S, 12), (2 * S + S // 2, 13), (3 * S + S // 2, 14)])
    assert verdicts == ["held", "accepted", "out_of_order", "accepted", "out_of_order", "accepted"]
    assert c.counters.out_of_order == 2


def test_a_reopened_device_restarting_its_sequence_costs_one_pulse() -> None:
    c = PulseCheck()
    verdicts = run(c, [(0, 500), (S, 501), (2 * S, 1), (3 * S, 2), (4 * S, 3)])
    assert verdicts == ["held", "accepted", "out_of_order", "accepted", "accepted"]


def test_sequence_numbers_wrap_modulo_2_32() -> None:
    c = PulseCheck()
    assert run(c, [(0, 0xFFFF_FFFE), (S, 0xFFFF_FFFF), (2 * S, 0), (3 * S, 1)]) == ["held"] + ["accepted"] * 3


def test_a_gap_beyond_max_gap_holds_the_pulse() -> None:
    c = PulseCheck(PulseCheckConfig(max_gap_ns=10 * S))
    assert run(c, [(0, 1), (S, 2), (12 * S + 400_000_000, 3), (13 * S + 400_000_000, 4)]) == [
        "held",
        "accepted",
        "held",
        "accepted",
    ]
    assert c.counters.missed_seconds == 0


def test_reset_holds_the_next_pulse() -> None:
    c = PulseCheck()
    run(c, [(0, 1), (S, 2)])
    c.reset()
    assert c.last_accepted is None
    assert run(c, [(S + 400_000_000, 3), (2 * S + 400_000_000, 4)]) == ["held", "accepted"]


@pytest.mark.parametrize("kwargs", [{"tolerance_ns": 0}, {"tolerance_ns": S // 2}, {"max_gap_ns": S - 1}])
def test_config_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PulseCheckConfig(**kwargs)


@given(
    st.lists(
        st.tuples(st.integers(min_value=-3 * S, max_value=80 * S), st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        max_size=40,
    )
)
def test_counts_add_up(pulses: list[tuple[int, int | None]]) -> None:
    c = PulseCheck()
    verdicts = run(c, pulses)
    n = c.counters
    assert n.received == len(pulses)
    assert n.received == n.accepted + n.held + n.duplicate + n.out_of_order + n.bad_interval
    assert n.accepted == verdicts.count("accepted")
    assert n.missed_seconds >= 0


@pytest.mark.parametrize("step_ns", [300_000_000, -2 * S - 250_000_000])
def test_a_clock_step_moves_the_references_with_the_clock(step_ns: int) -> None:
    """The edges after a step are on the new scale: checked against references restated, none is lost."""
    c = PulseCheck()
    run(c, [(0, 1), (S, 2)])
    c.clock_stepped(step_ns)
    last = c.last_accepted
    assert last is not None and last.local_ns == T0 + S + step_ns
    assert run(c, [(2 * S + step_ns, 3), (3 * S + step_ns, 4)]) == ["accepted", "accepted"]
    assert c.counters.bad_interval == c.counters.out_of_order == 0
