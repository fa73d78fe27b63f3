"""Rate limiting and KoD pacing: real client patterns pass, floods do not, memory stays fixed."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.model import Discard
from appliance.io import fastpath
from appliance.ntp.ratelimit import LIMITED, LIMITED_KOD, PASS, SHORT_TERM_BURST, RateLimiter
from appliance.timebase import NS_PER_S

S = NS_PER_S
T0 = 1_700_000_000 * S  # November 2023, in POSIX ns
HOUR = 3600 * S
CLIENT = "203.0.113.5"


def seconds(x: float) -> int:
    return round(x * S)


def feed(limiter: RateLimiter, times: Iterable[int], key: str = CLIENT, kod: bool = False) -> list[int]:
    return [limiter.check(key, t, kod) for t in times]


def iburst_then_poll(rng: random.Random, burst: int, jitter: float, hours: float, worst: bool) -> list[int]:
    """``burst`` requests 2 s apart, then one per 64 s; each spacing off by up to ``jitter`` s.

    ``worst``: every spacing is ``jitter`` short (the error accumulates).
    """
    times, t = [], T0
    while t < T0 + hours * HOUR:
        times.append(t)
        nominal = 2.0 if len(times) < burst else 64.0
        t += seconds(nominal - jitter if worst else nominal + rng.uniform(-jitter, jitter))
    return times


def pool_monitor(rng: random.Random, hours: float, jitter: float) -> list[int]:
    """The NTP Pool monitor: 3 requests 2 s apart, again every 2 to 15 minutes."""
    times, t = [], T0
    while t < T0 + hours * HOUR:
        times += [t, t + seconds(2 + rng.uniform(-jitter, jitter)), t + seconds(4 + rng.uniform(-jitter, jitter))]
        t += seconds(rng.uniform(120, 900))
    return times


# The Python table is marked so that tests/sanitize/run (the compiled table under ASan and UBSan) can leave it out.
IMPLEMENTATIONS = [pytest.param(RateLimiter, id="python", marks=pytest.mark.python_table)]
if fastpath.available():
    IMPLEMENTATIONS.append(pytest.param(fastpath.FastRateLimiter, id="compiled"))


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def Limiter(request: pytest.FixtureRequest) -> Any:  # noqa: N802 - it stands for a class
    """Each test runs against the Python table and the compiled one (appliance.io.fastpath)."""
    return request.param


DISCARDS = [pytest.param(Discard(), id="average-8s"), pytest.param(Discard(average_log2=5), id="average-32s")]


# --- compliant clients are never limited -------------------------------------------------------


@pytest.mark.parametrize("discard", DISCARDS)
@pytest.mark.parametrize("seed", range(5))
def test_pool_monitor_is_never_limited(discard: Discard, seed: int, Limiter: Any) -> None:
    limiter = Limiter(discard)
    assert set(feed(limiter, pool_monitor(random.Random(seed), hours=24, jitter=0.3), kod=True)) == {PASS}
    assert limiter.limited == 0


@pytest.mark.parametrize("discard", DISCARDS)
@pytest.mark.parametrize(("client", "burst"), [("ntpd", 8), ("chrony", 4)])
@pytest.mark.parametrize(("jitter", "worst"), [(0.0, False), (0.3, False), (0.3, True)])
def test_iburst_start_is_never_limited(
    discard: Discard, client: str, burst: int, jitter: float, worst: bool, Limiter: Any
) -> None:
    limiter = Limiter(discard)
    times = iburst_then_poll(random.Random(burst), burst, jitter, hours=6, worst=worst)
    assert set(feed(limiter, times, kod=True)) == {PASS}


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.floats(120, 900), min_size=1, max_size=40),
    jitter=st.lists(st.floats(-0.3, 0.3), min_size=2, max_size=2),
)
def test_pool_monitor_any_schedule(gaps: list[float], jitter: list[float], Limiter: Any) -> None:
    limiter = Limiter(Discard())
    t = T0
    for gap in gaps:
        burst = [t, t + seconds(2 + jitter[0]), t + seconds(4 + jitter[0] + jitter[1])]
        assert feed(limiter, burst) == [PASS] * 3
        t += seconds(gap)


@settings(max_examples=50, deadline=None)
@given(spacing=st.lists(st.floats(-0.3, 0.3), min_size=7, max_size=7), restart=st.floats(64 * 8, 3600))
def test_iburst_any_jitter_and_restart(spacing: list[float], restart: float, Limiter: Any) -> None:
    """An ntpd iburst with any spacing error of up to 0.3 s, twice (the daemon restarted)."""
    limiter = Limiter(Discard())
    for start in (T0, T0 + seconds(restart)):
        t, times = start, [start]
        for err in spacing:
            t += seconds(2 + err)
            times.append(t)
        assert feed(limiter, times) == [PASS] * 8


# --- floods are limited -----------------------------------------------------------------------


@pytest.mark.parametrize("discard", DISCARDS)
@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_flood_is_limited_after_at_most_the_burst(discard: Discard, rate: int, Limiter: Any) -> None:
    limiter = Limiter(discard)
    duration = 60
    times = [T0 + n * S // rate for n in range(duration * rate)]
    verdicts = feed(limiter, times)
    assert verdicts.index(LIMITED) <= discard.burst
    average = 2**discard.average_log2
    by_average = discard.burst + duration // average
    by_minimum = SHORT_TERM_BURST + duration // discard.minimum_s
    assert verdicts.count(PASS) <= min(by_average, by_minimum) + 1
    assert limiter.passed + limiter.limited == len(times)
    # it stops: one average interval later it is served again, and its whole burst comes back
    last = times[-1]
    assert limiter.check(CLIENT, last + average * S) == PASS
    again = last + average * S * (discard.burst + 1)
    assert feed(limiter, [again + n * 2 * S for n in range(8)]) == [PASS] * 8


def test_steady_stream_faster_than_minimum_is_limited(Limiter: Any) -> None:
    limiter = Limiter(Discard(average_log2=0, burst=100))  # only the minimum can bite
    verdicts = feed(limiter, [T0 + n * seconds(1.5) for n in range(40)])
    assert LIMITED in verdicts
    assert verdicts[:SHORT_TERM_BURST] == [PASS] * SHORT_TERM_BURST


def test_minimum_zero_leaves_only_the_average(Limiter: Any) -> None:
    limiter = Limiter(Discard(minimum_s=0, burst=5))
    assert feed(limiter, [T0 + n for n in range(6)]) == [PASS] * 5 + [LIMITED]


def test_clients_are_independent(Limiter: Any) -> None:
    limiter = Limiter(Discard())
    feed(limiter, [T0 + n * S // 100 for n in range(1000)])  # a flood from CLIENT
    assert feed(limiter, [T0 + n * 2 * S for n in range(8)], key="198.51.100.7") == [PASS] * 8


# --- Kiss-o'-Death ----------------------------------------------------------------------------


@pytest.mark.parametrize("discard", DISCARDS)
def test_kod_at_most_once_per_average_interval(discard: Discard, Limiter: Any) -> None:
    limiter = Limiter(discard)
    times = [T0 + n * S // 100 for n in range(100 * 300)]  # 100/s for 5 minutes
    verdicts = feed(limiter, times, kod=True)
    kods = [t for t, v in zip(times, verdicts, strict=True) if v == LIMITED_KOD]
    average = 2**discard.average_log2 * S
    assert kods, "a limited kod client gets a KoD"
    assert all(b - a >= average for a, b in zip(kods, kods[1:], strict=False))
    assert limiter.kod_sent == len(kods)
    assert limiter.kod_sent + limiter.kod_suppressed == limiter.limited


def test_no_kod_without_kod_flag(Limiter: Any) -> None:
    limiter = Limiter(Discard())
    verdicts = feed(limiter, [T0 + n * S // 100 for n in range(10_000)], kod=False)
    assert LIMITED_KOD not in verdicts and LIMITED in verdicts
    assert limiter.kod_sent == limiter.kod_suppressed == 0


@pytest.mark.parametrize("order", ["by time", "by address"])
@pytest.mark.parametrize(("per_second", "burst"), [(100.0, 10), (5.0, 1), (1000.0, 50)])
def test_global_kod_budget_caps_forged_floods(per_second: float, burst: int, order: str, Limiter: Any) -> None:
    """Requests forged from 20,000 addresses over 2 s, each a burst of 5 in 8 ms: KoDs stay under the cap.

    "by address" hands each address's burst over at once, so that the times
    passed in go back by a few ms now and then (several sockets, one loop).
    """
    limiter = Limiter(Discard(), kod_per_second=per_second, kod_burst=burst)
    duration_s, addresses = 2, 20_000
    events = [
        (T0 + a * duration_s * S // addresses + n * S // 500, f"10.{a >> 16}.{a >> 8 & 255}.{a & 255}")
        for a in range(addresses)
        for n in range(5)
    ]
    if order == "by time":
        events.sort()
    kod_times = [t for t, key in events if limiter.check(key, t, True) == LIMITED_KOD]
    assert limiter.limited == addresses * (5 - SHORT_TERM_BURST)
    assert len(kod_times) <= per_second * duration_s + burst + 1
    if order == "by time":  # and in any one second no more than rate + burst
        for i, t in enumerate(kod_times):
            assert sum(1 for u in kod_times[i:] if u < t + S) <= per_second + burst
    assert limiter.kod_sent + limiter.kod_suppressed == limiter.limited


# --- the table --------------------------------------------------------------------------------


def test_least_recently_seen_is_evicted(Limiter: Any) -> None:
    limiter = Limiter(Discard(), slots=8, ways=8)  # one set of eight
    keys = [f"192.0.2.{n}" for n in range(8)]
    for n, key in enumerate(keys):
        limiter.check(key, T0 + n * S)
    limiter.check(keys[0], T0 + 8 * S)  # keys[1] is now the least recently seen
    limiter.check("198.51.100.1", T0 + 9 * S)
    assert keys[1] not in limiter and keys[0] in limiter and "198.51.100.1" in limiter
    assert limiter.evictions == 1 and limiter.clients() == 8


def test_flooder_keeps_its_entry_under_churn(Limiter: Any) -> None:
    limiter = Limiter(Discard(), slots=64, ways=4)
    t = T0
    for n in range(20_000):
        t += S // 1000
        limiter.check(f"10.0.{n >> 8 & 255}.{n & 255}", t)  # one-off clients passing by
        if n % 10 == 0:
            assert limiter.check(CLIENT, t) in (PASS, LIMITED)
    assert CLIENT in limiter
    assert limiter.check(CLIENT, t + 1) == LIMITED


def test_memory_is_fixed(Limiter: Any) -> None:
    limiter = Limiter(Discard(), slots=256)
    t = T0

    def churn(count: int, offset: int) -> None:
        nonlocal t
        for n in range(offset, offset + count):
            t += S // 10_000
            limiter.check(f"2001:db8::{n >> 16:04x}:{n & 0xFFFF:04x}", t)  # keys of one length

    tracemalloc.start()
    churn(2_000, 0)  # fill the table
    before = tracemalloc.take_snapshot()
    churn(8_000, 2_000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 16 * 1024, growth  # 8,000 new keys would take over 500 kB if kept
    assert limiter.clients() == 256 and limiter.evictions == 10_000 - 256


def test_time_stepping_back_does_not_lock_clients_out(Limiter: Any) -> None:
    limiter = Limiter(Discard())
    feed(limiter, [T0 + n * S // 1000 for n in range(5000)], kod=True)  # limited, got a KoD
    stepped = T0 - HOUR
    assert limiter.check(CLIENT, stepped, True) == PASS
    assert feed(limiter, [stepped + n * 2 * S for n in range(1, 8)]) == [PASS] * 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slots": 1000},
        {"slots": 4, "ways": 8},
        {"ways": 3},
        {"ways": 0},
        {"kod_per_second": 0.0},
        {"kod_per_second": float("nan")},
        {"kod_per_second": 1e-12},  # one KoD per 31,700 years: a bucket past what int64 ns can hold
        {"kod_burst": 0},
        {"kod_burst": 2**40},
    ],
)
def test_bad_parameters_raise_value_error(kwargs: dict[str, int | float], Limiter: Any) -> None:
    with pytest.raises(ValueError):
        Limiter(Discard(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "discard", [Discard(burst=0), Discard(minimum_s=-1), Discard(average_log2=40), Discard(average_log2=28)]
)
def test_bad_discard_raises_value_error(discard: Discard, Limiter: Any) -> None:
    with pytest.raises(ValueError):
        Limiter(discard)


# --- properties -------------------------------------------------------------------------------

DISCARD_ST = st.builds(
    Discard,
    average_log2=st.integers(-2, 10),
    minimum_s=st.integers(0, 8),
    burst=st.integers(1, 16),
)


@settings(max_examples=200, deadline=None)
@given(
    discard=DISCARD_ST,
    events=st.lists(st.tuples(st.integers(0, 40), st.integers(-10 * S, 100 * S), st.booleans()), max_size=300),
)
def test_never_raises_and_never_grows(discard: Discard, events: list[tuple[int, int, bool]], Limiter: Any) -> None:
    limiter = Limiter(discard, slots=16, ways=4, kod_per_second=3.0, kod_burst=2)
    state_len = len(getattr(limiter, "_state", ()))  # the Python table's array (the compiled one has none to see)
    t = T0
    for client, step, kod in events:  # time mostly forward, sometimes back
        t += step
        assert limiter.check(f"192.0.2.{client}", t, kod) in (PASS, LIMITED, LIMITED_KOD)
        assert limiter.clients() <= 16
    assert len(getattr(limiter, "_state", ())) == state_len and limiter.slots == 16
    assert limiter.passed + limiter.limited == len(events)
    assert limiter.kod_sent + limiter.kod_suppressed <= limiter.limited


@settings(max_examples=200, deadline=None)
@given(discard=DISCARD_ST, steps=st.lists(st.integers(0, 20 * S), min_size=1, max_size=200))
def test_passes_never_exceed_the_buckets(discard: Discard, steps: list[int], Limiter: Any) -> None:
    """Between any two passed requests i < j: j - i + 1 <= capacity + elapsed / refill, for both buckets."""
    limiter = Limiter(discard)
    t, passed = T0, []
    for step in steps:
        t += step
        if limiter.check(CLIENT, t) == PASS:
            passed.append(t)
    average = 2**discard.average_log2 * S
    minimum = discard.minimum_s * S
    for i in range(len(passed)):
        for j in range(i, len(passed)):
            count, elapsed = j - i + 1, passed[j] - passed[i]
            assert (count - discard.burst) * average <= elapsed
            assert (count - SHORT_TERM_BURST) * minimum <= elapsed
