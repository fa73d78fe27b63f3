"""The upstream client state machine: schedules, replies, Kiss-o'-Death, reachability (no sockets)."""

from __future__ import annotations

import random

import pytest

from appliance.ntp.packet import LEAP_UNSYNC, MODE_CLIENT, MODE_SERVER, NtpPacket, refid_from_text
from appliance.sources.client import (
    BURST_PACKETS,
    BURST_SPACING_NS,
    MAX_POLL,
    UNREACH_POLLS,
    Association,
    ClientSettings,
    interval_ns,
)
from appliance.timebase import NS_PER_S, ntp64_from_ns, short_from_ns

MS = 1_000_000
US = 1_000
T0 = 1_795_000_000 * NS_PER_S  # the disciplined clock
M0 = 1_000 * NS_PER_S  # the scheduling (monotonic) clock


def assoc(**kw: object) -> Association:
    return Association("192.0.2.1", M0, ClientSettings(**kw), rng=random.Random(7))  # type: ignore[arg-type]


def reply_to(
    request: bytes,
    t2: int,
    t3: int,
    *,
    stratum: int = 2,
    leap: int = 0,
    refid: bytes = b"\x0a\0\0\1",
    poll: int | None = None,
    origin: int | None = None,
    root_delay: int = 10 * MS,
    root_dispersion: int = 2 * MS,
) -> bytes:
    q = NtpPacket.decode(request)
    return NtpPacket(
        leap=leap,
        version=q.version,
        mode=MODE_SERVER,
        stratum=stratum,
        poll=q.poll if poll is None else poll,
        precision=-20,
        root_delay=short_from_ns(root_delay),
        root_dispersion=short_from_ns(root_dispersion),
        refid=refid,
        reference=ntp64_from_ns(t2 - 10 * NS_PER_S),
        origin=q.transmit if origin is None else origin,
        receive=ntp64_from_ns(t2),
        transmit=ntp64_from_ns(t3),
    ).encode()


def kiss(request: bytes, code: str, *, poll: int | None = None) -> bytes:
    q = NtpPacket.decode(request)
    return NtpPacket(
        leap=LEAP_UNSYNC,
        mode=MODE_SERVER,
        stratum=0,
        poll=q.poll if poll is None else poll,
        refid=refid_from_text(code),
        origin=q.transmit,
        receive=q.transmit,
        transmit=q.transmit,
    ).encode()


def exchange(a: Association, mono: int, t1: int, offset: int = 0, delay: int = 4 * MS, **kw: object) -> None:
    """One request at ``mono`` and its answer: server clock = ours + offset, symmetric path."""
    req = a.request(mono)
    a.sent(t1)
    t2 = t1 + delay // 2 + offset
    r = a.receive(reply_to(req, t2, t2 + 50 * US, **kw), t1 + delay + 50 * US)  # type: ignore[arg-type]
    assert r.outcome == "sample", r


def test_request_carries_a_random_transmit_timestamp_and_nothing_else() -> None:
    a = assoc()
    r1, r2 = NtpPacket.decode(a.request(M0)), NtpPacket.decode(a.request(M0 + NS_PER_S))
    assert r1.mode == MODE_CLIENT and r1.version == 4 and r1.poll == 6
    assert r1.transmit != r2.transmit and r1.transmit != 0
    assert (r1.leap, r1.stratum, r1.precision, r1.root_delay, r1.root_dispersion) == (0, 0, 0, 0, 0)
    assert (r1.refid, r1.reference, r1.origin, r1.receive) == (b"\0\0\0\0", 0, 0, 0)


def test_offset_and_delay_of_an_exchange() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    # server 1 ms ahead; 2 ms each way; 100 us in the server
    t2 = T0 + 2 * MS + 1 * MS
    r = a.receive(reply_to(req, t2, t2 + 100 * US), T0 + 4 * MS + 100 * US)
    assert r.outcome == "sample" and r.answered and r.sample is not None
    s = r.sample
    assert (s.offset_ns, s.delay_ns, s.stratum, s.time_ns) == (1 * MS, 4 * MS, 2, T0 + 4 * MS + 100 * US)
    assert s.root_delay_ns == pytest.approx(10 * MS, abs=20 * US)
    assert a.reach == 1 and a.counters.samples == 1 and not a.waiting


def test_iburst_sends_four_requests_two_seconds_apart_then_polls() -> None:
    a = assoc(iburst=True)
    assert a.due_ns == M0
    times = []
    for _ in range(BURST_PACKETS + 1):
        assert a.due_ns is not None
        times.append(a.due_ns)
        a.request(a.due_ns)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[: BURST_PACKETS - 1] == [BURST_SPACING_NS] * (BURST_PACKETS - 1)
    assert abs(gaps[-1] - interval_ns(6)) <= interval_ns(6) // 32


def test_without_iburst_the_first_poll_interval_is_minpoll() -> None:
    a = assoc()
    a.request(M0)
    assert a.due_ns is not None and abs(a.due_ns - M0 - 64 * NS_PER_S) <= 2 * NS_PER_S


def test_poll_interval_grows_when_the_server_is_steady() -> None:
    a = assoc(minpoll=6, maxpoll=10)
    seen = set()
    mono, t = M0, T0
    for _ in range(120):
        exchange(a, mono, t, offset=200 * US)
        seen.add(a.poll)
        mono += interval_ns(a.poll)
        t += interval_ns(a.poll)
    assert seen == {6, 7, 8, 9, 10}
    assert a.poll == 10


def test_poll_interval_shrinks_when_the_server_jumps_about() -> None:
    a = assoc(minpoll=6, maxpoll=10)
    mono, t = M0, T0
    for _ in range(40):
        exchange(a, mono, t)
        mono += interval_ns(a.poll)
        t += interval_ns(a.poll)
    high = a.poll
    assert high >= 8
    # each sample lands far outside four jitters of the last: a server that keeps stepping
    for step in range(1, 9):
        exchange(a, mono, t, offset=10**step * (-1) ** step)
        mono += interval_ns(a.poll)
        t += interval_ns(a.poll)
    assert a.poll < high


def test_kod_rate_backs_off_and_ends_the_burst() -> None:
    a = assoc(iburst=True)
    req = a.request(M0)
    a.sent(T0)
    r = a.receive(kiss(req, "RATE"), T0 + MS)
    assert r.outcome == "kod" and r.reason == "RATE" and r.answered
    assert a.poll == 7 and a.minpoll == 7
    assert a.due_ns == M0 + interval_ns(7)  # no more 2 s burst packets
    assert a.reach == 0 and a.counters.kod == {"RATE": 1}
    req = a.request(M0 + interval_ns(7))
    a.sent(T0 + interval_ns(7))
    a.receive(kiss(req, "RATE"), T0 + interval_ns(7) + MS)
    assert a.poll == 8 and a.minpoll == 8


def test_kod_rate_obeys_the_poll_the_server_asks_for() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    a.receive(kiss(req, "RATE", poll=12), T0 + MS)
    assert a.poll == 13 and a.minpoll == 13 and a.maxpoll == 13
    for _ in range(10):
        req = a.request(M0)
        a.sent(T0)
        a.receive(kiss(req, "RATE", poll=20), T0 + MS)
    assert a.poll == MAX_POLL


@pytest.mark.parametrize("code", ["DENY", "RSTR"])
def test_kod_deny_stops_the_association(code: str) -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    r = a.receive(kiss(req, code), T0 + MS)
    assert r.outcome == "kod" and r.reason == code
    assert a.due_ns is None and a.stopped is not None and code in a.stopped
    e = a.estimate(T0)
    assert not e.usable and e.why_unusable == a.stopped
    with pytest.raises(RuntimeError):
        a.request(M0 + NS_PER_S)


def test_other_kiss_codes_are_counted_and_ignored() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    due = a.due_ns
    assert a.receive(kiss(req, "INIT"), T0 + MS).outcome == "kod"
    assert a.stopped is None and a.poll == 6 and a.due_ns == due and a.counters.kod == {"INIT": 1}


def test_a_kod_with_the_wrong_origin_is_not_obeyed() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    forged = bytearray(kiss(req, "DENY"))
    forged[24:32] = (12345).to_bytes(8, "big")
    r = a.receive(bytes(forged), T0 + MS)
    assert r.outcome == "dropped" and r.reason == "origin" and not r.answered
    assert a.stopped is None and a.waiting


def test_origin_mismatch_duplicate_and_stale_replies_are_dropped_and_counted() -> None:
    a = assoc()
    first = a.request(M0)
    a.sent(T0)
    second = a.request(M0 + 64 * NS_PER_S)  # the first went unanswered
    a.sent(T0 + 64 * NS_PER_S)
    t2 = T0 + 64 * NS_PER_S + 2 * MS
    stale = reply_to(first, T0 + 2 * MS, T0 + 2 * MS)
    assert a.receive(stale, t2 + 2 * MS).reason == "stale"
    bogus = reply_to(second, t2, t2, origin=ntp64_from_ns(T0))
    assert a.receive(bogus, t2 + 2 * MS).reason == "origin"
    good = reply_to(second, t2, t2)
    assert a.receive(good, t2 + 2 * MS).outcome == "sample"
    assert a.receive(good, t2 + 3 * MS).reason == "duplicate"
    assert a.counters.dropped == {"stale": 1, "origin": 1, "duplicate": 1}
    assert a.counters.samples == 1 and a.counters.timeouts == 1


def test_garbage_and_requests_are_dropped() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    assert a.receive(b"\x23", T0).reason == "short"
    assert a.receive(req, T0).reason == "mode"  # our own request reflected back


def test_unsynchronised_server_gives_no_sample() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    r = a.receive(reply_to(req, T0 + MS, T0 + MS, leap=LEAP_UNSYNC), T0 + 2 * MS)
    assert r.outcome == "dropped" and r.reason == "unsynchronised" and r.answered
    assert a.reach == 0 and not a.unreachable


def test_a_server_that_answers_unsynchronised_says_so_not_no_samples() -> None:
    """What ``stratum1 peers`` shows for an upstream that answers, but with leap 3 / stratum 16 (e.g. a
    stratum1 serving only its local clock, which it gives the public as unsynchronised)."""
    a = assoc()
    assert a.estimate(T0).why_unusable == "no samples yet"
    req = a.request(M0)
    a.sent(T0)
    a.receive(reply_to(req, T0 + MS, T0 + MS, leap=LEAP_UNSYNC, stratum=16), T0 + 2 * MS)
    why = a.estimate(T0 + 3 * MS).why_unusable
    assert why == "its replies say it is unsynchronised itself (leap 3, stratum 16)"
    exchange(a, M0 + 64 * NS_PER_S, T0 + 64 * NS_PER_S)  # it has time again: the next sample clears it
    assert "unsynchronised" not in a.estimate(T0 + 65 * NS_PER_S).why_unusable


def test_server_too_far_from_its_reference_gives_no_sample() -> None:
    a = assoc()
    req = a.request(M0)
    a.sent(T0)
    r = a.receive(reply_to(req, T0 + MS, T0 + MS, root_dispersion=17 * NS_PER_S), T0 + 2 * MS)
    assert r.reason == "distance"


def test_reply_before_the_send_time_is_known_is_dropped() -> None:
    a = assoc()
    req = a.request(M0)
    assert a.receive(reply_to(req, T0, T0), T0).reason == "unsent"


def test_unreachable_after_eight_polls_without_reply_then_backs_off() -> None:
    a = assoc(minpoll=6, maxpoll=9)
    mono = M0
    for i in range(UNREACH_POLLS):
        assert not a.unreachable, i
        a.request(mono)
        a.timed_out()
        assert a.due_ns is not None
        mono = a.due_ns
    assert a.unreachable and a.reach == 0
    polls = []
    for _ in range(5):
        a.request(mono)
        a.timed_out()
        assert a.due_ns is not None
        mono = a.due_ns
        polls.append(a.poll)
    assert polls == [7, 8, 9, 9, 9]


def test_an_unreachable_server_that_answers_again_goes_back_to_minpoll_with_an_iburst() -> None:
    a = assoc(iburst=True, minpoll=6, maxpoll=10)
    mono = M0
    for _ in range(UNREACH_POLLS + 3):
        a.request(mono)
        a.timed_out()
        assert a.due_ns is not None
        mono = a.due_ns
    assert a.unreachable and a.poll > 6
    exchange(a, mono, T0)
    assert not a.unreachable and a.poll == 6 and a.due_ns == mono + BURST_SPACING_NS
    assert a.reach == 1


def test_reach_follows_answers() -> None:
    a = assoc()
    mono, t = M0, T0
    for answered in (True, False, True, True):
        if answered:
            exchange(a, mono, t)
        else:
            a.request(mono)
            a.timed_out()
        mono += 64 * NS_PER_S
        t += 64 * NS_PER_S
    assert a.reach == 0b1011


def test_burst_sends_four_packets_at_every_poll_of_a_reachable_server() -> None:
    a = assoc(burst=True)
    mono, t = M0, T0
    exchange(a, mono, t)  # unreachable so far: a single request
    assert a.due_ns is not None and a.due_ns - mono > 60 * NS_PER_S
    mono = a.due_ns
    for i in range(BURST_PACKETS):
        exchange(a, mono, t)
        assert a.due_ns is not None
        gap = a.due_ns - mono
        assert (gap == BURST_SPACING_NS) == (i < BURST_PACKETS - 1), (i, gap)
        mono = a.due_ns


def test_four_samples_make_a_usable_source() -> None:
    a = assoc(iburst=True)
    t = T0
    for _ in range(BURST_PACKETS):
        assert a.due_ns is not None
        exchange(a, a.due_ns, t, offset=3 * MS)
        t += 2 * NS_PER_S
    e = a.estimate(t)
    assert e.usable and abs(e.offset_ns - 3 * MS) < 10 * US and e.stratum == 2 and e.address == "192.0.2.1"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        ClientSettings(minpoll=8, maxpoll=6)
    with pytest.raises(ValueError):
        ClientSettings(version=5)
