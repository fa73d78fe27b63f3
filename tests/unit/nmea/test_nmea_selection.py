"""ntpd's NMEA sentence selection (``mode`` bits 0-3 and 9): only the chosen timed sentences start epochs.

1 RMC, 2 GGA, 4 GLL, 8 ZDA, 0x200 PUBX,04; none set, every timed sentence. An epoch's arrival time is its
first chosen sentence's, which is what a ``time2`` measured for ntpd is for; the other sentences of the same
second still join it (fix status, satellites, date), and those of a second without a chosen one are counted
``unselected``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support import log_build_date_ns, log_payload, nmea_logs

from appliance.nmea import NmeaStream, RolloverPolicy
from appliance.nmea.sentence import Gga, Gll, Gns, Pubx04, Rmc, render
from appliance.nmea.stream import TIMED, SentenceStream, selected_types
from appliance.timebase import NS_PER_S

MS = 1_000_000
POLICY = RolloverPolicy(build_date_ns=int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()) * NS_PER_S)


def second(hhmmss: str) -> list[str]:
    """One epoch as many receivers send it: GGA first, then GSA, RMC, ZDA."""
    return [
        f"GPGGA,{hhmmss}.00,4404.1306,N,12118.8515,W,1,10,0.98,1127.7,M,-19.6,M,,",
        "GPGSA,A,3,20,16,09,03,07,10,23,19,27,30,,,1.64,0.98,1.31",
        f"GPRMC,{hhmmss}.00,A,4404.1306,N,12118.8515,W,0.03,225.97,130425,,,A",
        f"GPZDA,{hhmmss}.00,13,04,2025,,",
    ]


def feed(stream: NmeaStream, seconds: list[str]) -> list[tuple[int, int | None]]:
    """Each second's sentences 10 ms apart, the first at the second + 100 ms; (arrival, utc) of each fix."""
    out = []
    for k, hhmmss in enumerate(seconds):
        for i, body in enumerate(second(hhmmss)):
            out += stream.feed(render(body), (1000 + k) * NS_PER_S + (100 + 10 * i) * MS)
    out += stream.flush()
    return [(f.arrival_ns, f.utc_ns) for f in out]


SECONDS = ["202640", "202641", "202642", "202643"]


def test_no_bits_use_every_timed_sentence() -> None:
    s = NmeaStream(POLICY)
    fixes = feed(s, SECONDS)
    assert [a % NS_PER_S for a, _ in fixes] == [100 * MS] * 4  # the GGA starts each epoch
    assert s.counters.unselected == 0 and s.counters.rollover_repaired == 0


@pytest.mark.parametrize(("bits", "first_ms"), [(1, 120), (8, 130), (9, 120), (3, 100), (2, 100)])
def test_the_chosen_sentences_start_the_epoch_and_give_its_arrival(bits: int, first_ms: int) -> None:
    s = NmeaStream(POLICY, sentences=bits)
    fixes = feed(s, SECONDS)
    whole = feed(NmeaStream(POLICY), SECONDS)
    assert [u for _, u in fixes] == [u for _, u in whole]  # the same seconds, the same dates
    assert [a % NS_PER_S for a, _ in fixes] == [first_ms * MS] * 4
    c = s.counters
    assert c.unselected == 0 and c.placed == c.decoded  # the others joined their second's epoch


def test_the_others_still_say_whether_there_is_a_fix() -> None:
    """ZDA carries no fix status: chosen alone (mode 8), the epoch's validity comes from the RMC and GGA of
    the same second, before or after it; an RMC saying V makes the second invalid."""
    s = NmeaStream(POLICY, sentences=8)
    assert all(f.valid and f.has_time for f in _fixes(s, SECONDS))
    bad = [b.replace(",A,4404", ",V,4404") for b in second("202650")]
    out = [*s.feed(b"".join(render(b) for b in bad), 2000 * NS_PER_S), *s.flush()]
    assert len(out) == 1 and not out[0].valid


def test_a_second_without_a_chosen_sentence_is_left_out_and_counted() -> None:
    s = NmeaStream(POLICY, sentences=0x200)  # PUBX,04 only, from a receiver that sends none
    fixes = feed(s, SECONDS)
    assert fixes == []
    c = s.counters
    assert c.unselected == 3 * 4 and c.epochs == 0
    assert c.decoded == c.placed + c.unplaced + c.unselected


def test_held_sentences_are_bounded() -> None:
    """A stream of one second's unchosen sentences, over and over, keeps at most MAX_HELD of them."""
    from appliance.nmea.stream import MAX_HELD

    s = NmeaStream(POLICY, sentences=8)
    body = "GPGGA,202640.00,4404.1306,N,12118.8515,W,1,10,0.98,1127.7,M,-19.6,M,,"
    s.feed(render(body) * 1000, 0)
    assert s.counters.unselected == 1000 - MAX_HELD
    s.flush()
    assert s.counters.unselected == 1000


def _fixes(stream: NmeaStream, seconds: list[str]) -> list:  # type: ignore[type-arg]
    out = []
    for k, hhmmss in enumerate(seconds):
        for i, body in enumerate(second(hhmmss)):
            out += stream.feed(render(body), (1000 + k) * NS_PER_S + (100 + 10 * i) * MS)
    return out


def test_gga_alone_keeps_the_receivers_date() -> None:
    """GGA carries no date: RMC and ZDA still give it, so the fixes are dated (ntpd would read the system's)."""
    assert selected_types(2) == (Gga,) and selected_types(4) == (Gll,)  # RMC/ZDA give the date, never the time
    s = NmeaStream(POLICY, sentences=2)
    fixes = feed(s, SECONDS)
    assert all(u is not None for _, u in fixes) and len(fixes) == 4
    assert [a % NS_PER_S for a, _ in fixes] == [100 * MS] * 4


def test_gga_chosen_times_the_second_even_when_rmc_comes_first() -> None:
    """RMC at +50 ms, GGA at +450 ms, mode 2: the second's arrival is GGA's (the time2 an ntpd user measured
    for GGA), and RMC only dates it. Timed by RMC, the served time was 0.4 s off."""
    s = NmeaStream(POLICY, sentences=2)
    out = []
    for k, hhmmss in enumerate(SECONDS):
        rmc, gga = second(hhmmss)[2], second(hhmmss)[0]
        out += s.feed(render(rmc), (1000 + k) * NS_PER_S + 50 * MS)
        out += s.feed(render(gga), (1000 + k) * NS_PER_S + 450 * MS)
    out += s.flush()
    assert len(out) == 4 and all(f.has_time for f in out)
    assert [f.arrival_ns % NS_PER_S for f in out] == [450 * MS] * 4
    assert s.counters.unselected == 0  # RMC joined its second's epoch: the date


def test_types_ntpd_cannot_choose_are_left_out_once_any_is_chosen() -> None:
    assert set(selected_types(0)) == set(TIMED)
    for bits in range(1, 16):
        chosen = selected_types(bits)
        assert Gns not in chosen and Pubx04 not in chosen
        assert (Rmc in chosen) == bool(bits & 1) and (Gga in chosen) == bool(bits & 2)
    assert selected_types(0x200) == (Pubx04,)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_every_receiver_log_accounts_for_every_sentence(shared_data: Path, bits: int) -> None:
    """On gpsd's receiver logs: a sentence left out is counted, and every fix's epoch begins with a chosen one."""
    kinds = selected_types(bits)
    for log in nmea_logs(shared_data):
        payload = log_payload(log)
        s = NmeaStream(RolloverPolicy(log_build_date_ns(log)), sentences=bits)
        s.feed(payload, 0)
        s.flush()
        c = s.counters
        assert c.decoded == c.placed + c.unplaced + c.unselected, log.name
        every = SentenceStream().feed(payload, 0)
        others = sum(1 for t in every if isinstance(t, TIMED) and not isinstance(t, kinds))
        assert c.unselected <= others, log.name  # only timed sentences of other types are ever left out
        chosen = sum(1 for t in every if isinstance(t, kinds))
        if chosen == 0:
            assert c.unselected == others and c.epochs == 0, log.name


def test_zda_chosen_alone_is_trusted_as_ntpd_trusts_it_and_only_then() -> None:
    """A receiver that sends only ZDA: with mode 8 (or 512) its seconds give time, as ntpd's "no quality:
    assume best"; without the choice nothing says it has a fix, so nothing is served; and whenever an RMC or
    GGA of the same second says there is no fix, there is none."""
    zda_only = [f"GPZDA,{t}.00,13,04,2025,," for t in SECONDS]

    def fixes(bits: int, bodies: list[str]) -> list:  # type: ignore[type-arg]
        s = NmeaStream(POLICY, sentences=bits)
        out = []
        for k, body in enumerate(bodies):
            out += s.feed(render(body), (1000 + k) * NS_PER_S + 130 * MS)
        return out + s.flush()

    assert all(f.has_time for f in fixes(8, zda_only)) and len(fixes(8, zda_only)) == 4
    assert not any(f.has_time for f in fixes(0, zda_only))
    assert not any(f.has_time for f in fixes(1 | 8, zda_only))  # RMC chosen too: RMC's word is wanted
    no_fix = [b.replace(",A,4404", ",V,4404") for t in SECONDS for b in second(t)]
    s = NmeaStream(POLICY, sentences=8)
    out = [*s.feed(b"".join(render(b) for b in no_fix), 0), *s.flush()]
    assert out and not any(f.valid for f in out)
