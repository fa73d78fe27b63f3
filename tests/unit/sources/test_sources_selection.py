"""Selection scenarios (RFC 5905 section 11.2): falsetickers, clusters, prefer, noselect, one source, none."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.ntp.packet import LEAP_INSERT, LEAP_NONE, LEAP_UNSYNC, refid_from_text
from appliance.sources.selection import COMBINE_LIMIT, intersection, select
from appliance.sources.source import SourceEstimate, SourceKind
from appliance.timebase import NS_PER_S

MS = 1_000_000
US = 1_000
NOW = 1_795_000_000 * NS_PER_S
WEEK = 7 * 86400 * NS_PER_S


def est(
    name: str,
    offset: int = 0,
    distance: int = 20 * MS,
    *,
    stratum: int = 2,
    kind: SourceKind = SourceKind.SERVER,
    jitter: int = 100 * US,
    **kw: object,
) -> SourceEstimate:
    base = SourceEstimate(
        name=name,
        kind=kind,
        offset_ns=offset,
        delay_ns=2 * MS,
        dispersion_ns=1 * MS,
        jitter_ns=jitter,
        root_delay_ns=10 * MS,
        root_dispersion_ns=5 * MS,
        distance_ns=distance,
        stratum=stratum,
        refid=b"\xc0\x00\x02\x01",
        leap=LEAP_NONE,
        reach=0o377,
        usable=True,
        updated_ns=NOW - NS_PER_S,
        address=name if kind is SourceKind.SERVER else None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def gps(offset: int = 0, refid: str = "GPS", **kw: object) -> SourceEstimate:
    return est(
        "GPS(0)",
        offset,
        600 * US,
        stratum=0,
        kind=SourceKind.REFCLOCK,
        jitter=2 * US,
        refid=refid_from_text(refid),
        **kw,
    )


def local() -> SourceEstimate:
    return est("LOCAL(0)", 0, 500 * US, stratum=10, kind=SourceKind.LOCAL, refid=refid_from_text("LOCL"))


UPSTREAMS = [est("192.0.2.1", 1 * MS), est("192.0.2.2", -1 * MS), est("192.0.2.3", 0)]


def test_gps_off_by_one_second_is_a_falseticker() -> None:
    s = select([gps(NS_PER_S), *UPSTREAMS], NOW)
    assert s.falsetickers == ("GPS(0)",)
    assert s.tally_code("GPS(0)") == "x"
    assert s.system_peer in {e.name for e in UPSTREAMS}
    assert abs(s.offset_ns) < 2 * MS


def test_gps_off_by_1024_weeks_is_a_falseticker() -> None:
    s = select([gps(-1024 * WEEK), *UPSTREAMS], NOW)
    assert "GPS(0)" in s.falsetickers and s.system_peer != "GPS(0)"
    assert sorted(s.truechimers) == sorted(e.name for e in UPSTREAMS)


def test_gps_that_agrees_leads_alone() -> None:
    s = select([gps(300 * US), *UPSTREAMS], NOW)
    assert s.system_peer == "GPS(0)" and s.tally_code("GPS(0)") == "*"
    assert s.offset_ns == 300 * US and s.jitter_ns == 2 * US  # a refclock peer is not averaged with the network
    assert s.combined[0] == "GPS(0)"


def test_a_pps_peer_is_tallied_o() -> None:
    s = select([gps(0, refid="PPS"), *UPSTREAMS], NOW)
    assert s.tally_code("GPS(0)") == "o"


def pps(offset: int = 0, name: str = "PPS(0)", distance: int = 300 * US, **kw: object) -> SourceEstimate:
    """A PPS line's estimate: a short distance, a few us of jitter, refid PPS."""
    return est(
        name, offset, distance, stratum=0, kind=SourceKind.REFCLOCK, jitter=1 * US, **kw, refid=refid_from_text("PPS")
    )


def shm(offset: int = 0, **kw: object) -> SourceEstimate:
    """gpsd's SHM segment: the seconds, tens of us of jitter (NMEA receive times)."""
    return est(
        "SHM(0)",
        offset,
        2 * MS,
        stratum=0,
        kind=SourceKind.REFCLOCK,
        jitter=50 * US,
        **kw,
        refid=refid_from_text("GPS"),
    )


def test_a_pps_numbered_by_shm_becomes_the_pps_peer_even_when_shm_is_the_previous_and_preferred_peer() -> None:
    before = select([shm(200 * US, prefer=True)], NOW)
    assert before.system_peer == "SHM(0)" and before.tally_code("SHM(0)") == "*"
    s = select([shm(200 * US, prefer=True), pps(3 * US)], NOW, previous="SHM(0)")
    assert s.system_peer == "PPS(0)" and s.tally_code("PPS(0)") == "o"
    assert "SHM(0)" in s.survivors and s.tally_code("SHM(0)") == "#"  # a survivor, beyond 3x the PPS distance
    assert s.offset_ns == 3 * US and s.jitter_ns == 1 * US  # the edge's offset alone, not averaged with SHM's


def test_a_pps_numbered_by_upstream_servers_leads_them_even_a_preferred_one() -> None:
    servers = [replace(UPSTREAMS[0], prefer=True), *UPSTREAMS[1:]]
    s = select([pps(0), *servers], NOW, previous="192.0.2.1")
    assert s.system_peer == "PPS(0)" and s.tally_code("PPS(0)") == "o"


def test_an_nmea_receiver_with_its_own_pps_leads_a_shm_segment() -> None:
    s = select([shm(0, prefer=True), gps(2 * US, refid="PPS")], NOW, previous="SHM(0)")
    assert s.system_peer == "GPS(0)" and s.tally_code("GPS(0)") == "o"


def test_a_pps_that_is_not_good_is_not_the_peer() -> None:
    # numbered a second wrong: outvoted by the seconds and the servers, the PPS rule does not apply
    s = select([shm(0), pps(NS_PER_S), *UPSTREAMS], NOW, previous="SHM(0)")
    assert s.system_peer == "SHM(0)" and s.tally_code("PPS(0)") == "x"
    # unusable (nothing numbered it this poll) or noselect: not a candidate
    for bad in (pps(0, usable=False, reach=0), pps(0, noselect=True)):
        s = select([shm(0), bad], NOW)
        assert s.system_peer == "SHM(0)" and s.tally_code("PPS(0)") == " "


def test_a_pps_whose_filter_has_only_begun_is_not_yet_the_peer() -> None:
    # its distance still longer than the SHM's that numbers it: taking over would unsynchronise its numbering
    s = select([shm(0), pps(0, distance=5 * MS)], NOW, previous="SHM(0)")
    assert s.system_peer == "SHM(0)" and s.tally_code("SHM(0)") == "*" and "PPS(0)" in s.survivors
    assert select([shm(0), pps(0, distance=2 * MS)], NOW, previous="SHM(0)").system_peer == "PPS(0)"


def test_among_pps_survivors_prefer_then_the_previous_peer() -> None:
    a, b = pps(0, "PPS(0)"), pps(1 * US, "PPS(1)")
    assert select([shm(0), a, b], NOW).system_peer == "PPS(0)"
    assert select([shm(0), a, b], NOW, previous="PPS(1)").system_peer == "PPS(1)"
    assert select([shm(0), a, replace(b, prefer=True)], NOW, previous="PPS(0)").system_peer == "PPS(1)"


def test_one_source_alone_is_chosen() -> None:
    s = select([est("192.0.2.9", 5 * MS)], NOW)
    assert s.system_peer == "192.0.2.9" and s.offset_ns == 5 * MS and s.tally_code("192.0.2.9") == "*"


def test_no_sources_no_peer() -> None:
    s = select([], NOW)
    assert s.system_peer is None and s.peer is None and s.leap == LEAP_UNSYNC and s.interval is None


def test_two_that_disagree_give_no_majority() -> None:
    s = select([est("a", 0), est("b", NS_PER_S)], NOW)
    assert s.system_peer is None
    assert sorted(s.falsetickers) == ["a", "b"]


def test_prefer_wins_ties() -> None:
    a, b = est("192.0.2.1"), est("192.0.2.2")
    assert select([a, b], NOW).system_peer == "192.0.2.1"  # equal: by name
    assert select([a, replace(b, prefer=True)], NOW).system_peer == "192.0.2.2"


def test_prefer_wins_over_a_shorter_distance_and_is_used_alone() -> None:
    a, b = est("192.0.2.1", 0, 10 * MS), est("192.0.2.2", 2 * MS, 30 * MS, prefer=True)
    s = select([a, b], NOW)
    assert s.system_peer == "192.0.2.2" and s.offset_ns == 2 * MS


def test_noselect_is_never_chosen() -> None:
    s = select([est("192.0.2.1", noselect=True)], NOW)
    assert s.system_peer is None and s.tally_code("192.0.2.1") == " "
    s = select([est("192.0.2.1", noselect=True, prefer=True), est("192.0.2.2", 0, 50 * MS)], NOW)
    assert s.system_peer == "192.0.2.2"


def test_noselect_does_not_vote() -> None:
    # two noselect sources at +1 s would make a majority against the GPS if they voted
    odd = [est("n1", NS_PER_S, noselect=True), est("n2", NS_PER_S, noselect=True)]
    s = select([gps(0), *odd], NOW)
    assert s.system_peer == "GPS(0)" and s.falsetickers == ()


def test_sources_with_reach_0_are_ignored() -> None:
    dead = est("192.0.2.1", NS_PER_S, reach=0, usable=False, why_unusable="unreachable (reach 0)")
    s = select([dead, est("192.0.2.2")], NOW)
    assert s.system_peer == "192.0.2.2" and s.tally_code("192.0.2.1") == " " and s.falsetickers == ()


def test_lower_stratum_ranks_first() -> None:
    s = select([est("far", 0, 5 * MS, stratum=3), est("near", 0, 15 * MS, stratum=1)], NOW)
    assert s.survivors == ("near", "far") and s.system_peer == "near"


def test_cluster_prunes_outliers_down_to_minclock() -> None:
    tight = [est(f"t{i}", o, 50 * MS, jitter=10 * US) for i, o in enumerate((0, 100 * US, -100 * US, 50 * US))]
    loose = est("loose", 40 * MS, 50 * MS, jitter=10 * US)  # inside the intersection, far from the others
    s = select([*tight, loose], NOW)
    assert "loose" in s.truechimers and s.outliers[0] == "loose"
    assert s.tally_code("loose") == "-"
    assert len(s.survivors) >= 3


def test_cluster_keeps_minclock_survivors() -> None:
    three = [
        est("a", 0, 50 * MS, jitter=US),
        est("b", 10 * US, 50 * MS, jitter=US),
        est("c", 40 * MS, 50 * MS, jitter=US),
    ]
    s = select(three, NOW)
    assert s.outliers == () and len(s.survivors) == 3


def test_cluster_stops_at_a_prefer_source() -> None:
    tight = [est(f"t{i}", o, 50 * MS, jitter=10 * US) for i, o in enumerate((0, 100 * US, -100 * US, 50 * US))]
    loose = est("loose", 40 * MS, 50 * MS, jitter=10 * US, prefer=True)
    s = select([*tight, loose], NOW)
    assert "loose" not in s.outliers and s.system_peer == "loose"


def test_no_clock_hopping_between_equals() -> None:
    a, b = est("192.0.2.1", 0, 20 * MS), est("192.0.2.2", 0, 21 * MS)
    assert select([a, b], NOW).system_peer == "192.0.2.1"
    assert select([a, b], NOW, previous="192.0.2.2").system_peer == "192.0.2.2"
    # but not across strata
    c = est("192.0.2.3", 0, 20 * MS, stratum=1)
    assert select([b, c], NOW, previous="192.0.2.2").system_peer == "192.0.2.3"


def test_combine_weights_by_inverse_distance() -> None:
    s = select([est("a", 0, 10 * MS, jitter=0), est("b", 3 * MS, 20 * MS, jitter=0)], NOW)
    assert s.system_peer == "a"
    # (0 / 10 + 3 / 20) / (1 / 10 + 1 / 20) = 1 ms
    assert s.offset_ns == 1 * MS
    # selection jitter: sqrt((0 * 1/10 + 9 ms**2 * 1/20) / (3/20)) = sqrt(3) ms
    assert abs(s.jitter_ns - 1_732_051) <= 1
    assert s.combined == ("a", "b") and s.tally_code("b") == "+"


def test_survivors_beyond_the_combine_limit_are_backups() -> None:
    far = est("far", 0, (COMBINE_LIMIT * 10 + 1) * MS)
    s = select([est("a", 0, 10 * MS), est("b", 0, 12 * MS), far], NOW)
    assert "far" in s.survivors and "far" not in s.combined and s.tally_code("far") == "#"


def test_leap_by_majority_of_combined_servers() -> None:
    two = select([est("a", leap=LEAP_INSERT), est("b", leap=LEAP_INSERT), est("c")], NOW)
    assert two.leap == LEAP_INSERT
    one = select([est("a", leap=LEAP_INSERT), est("b"), est("c")], NOW)
    assert one.leap == LEAP_NONE
    assert select([gps(leap=LEAP_INSERT), *UPSTREAMS], NOW).leap == LEAP_INSERT


def test_local_clock_only_when_nothing_else_survives() -> None:
    s = select([local(), *UPSTREAMS], NOW)
    assert s.system_peer != "LOCAL(0)" and s.tally_code("LOCAL(0)") == "#"
    s = select([local(), est("a", 0), est("b", NS_PER_S)], NOW)
    assert s.system_peer == "LOCAL(0)" and s.offset_ns == 0 and s.tally_code("LOCAL(0)") == "*"
    # the local clock does not vote either: one GPS against it is still chosen
    assert select([local(), gps(NS_PER_S)], NOW).system_peer == "GPS(0)"


def test_intersection_interval() -> None:
    iv = intersection([est("a", 0, 10 * MS), est("b", 5 * MS, 10 * MS), est("c", 100 * MS, 10 * MS)])
    assert iv == (-5 * MS, 10 * MS)  # a and b overlap on [-5, 10] ms; c is out
    assert intersection([est("a", 0, 10 * MS), est("b", 21 * MS, 10 * MS)]) is None  # 1 ms apart: no majority
    assert intersection([est("a", 0, 10 * MS), est("b", 20 * MS, 10 * MS)]) == (10 * MS, 10 * MS)  # touching


truechimer = st.builds(
    lambda o, d, j: (o, d, j),
    st.integers(-1 * MS, 1 * MS),
    st.integers(5 * MS, 50 * MS),
    st.integers(1, 1 * MS),
)
falseticker = st.builds(
    lambda sign, o, d, j: (sign * o, d, j),
    st.sampled_from((-1, 1)),
    st.integers(NS_PER_S, 1024 * WEEK),
    st.integers(MS // 2, 100 * MS),
    st.integers(1, 1 * MS),
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(truechimer, min_size=1, max_size=7),
    st.lists(falseticker, max_size=6),
    st.lists(st.booleans(), min_size=13, max_size=13),
    st.lists(st.integers(0, 3), min_size=13, max_size=13),
)
def test_a_majority_that_agrees_is_never_outvoted(
    good: list[tuple[int, int, int]], bad: list[tuple[int, int, int]], prefer: list[bool], strata: list[int]
) -> None:
    bad = bad[: len(good) - 1]  # the good ones are a strict majority
    sources = [
        est(f"good{i}", o, d, jitter=j, stratum=strata[i], prefer=prefer[i]) for i, (o, d, j) in enumerate(good)
    ] + [
        est(f"bad{i}", o, d, jitter=j, stratum=strata[7 + i % 6], prefer=prefer[7 + i % 6])
        for i, (o, d, j) in enumerate(bad)
    ]
    s = select(sources, NOW)
    assert s.system_peer is not None and s.system_peer.startswith("good")
    assert sorted(s.falsetickers) == sorted(f"bad{i}" for i in range(len(bad)))
    assert abs(s.offset_ns) <= 1 * MS
    assert all(s.tally_code(f"bad{i}") == "x" for i in range(len(bad)))
