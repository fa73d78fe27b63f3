"""Epochs: grouping by time of day, dates (carried across midnight), validity, mode, early reports."""

from __future__ import annotations

import datetime as dt

import pytest

from appliance.nmea import DateSource, Fix, FixMode, NmeaStream, RolloverPolicy
from appliance.nmea.rollover import WEEK_ROLLOVER_NS
from appliance.nmea.sentence import render
from appliance.timebase import NS_PER_S

HOUR_NS = 3600 * NS_PER_S


def ns(year: int, month: int, day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """POSIX ns of a UTC calendar time."""
    return int(dt.datetime(year, month, day, hh, mm, ss, tzinfo=dt.UTC).timestamp()) * NS_PER_S


#: A policy that never moves a date in the two-digit-year window 1946-2045.
NO_ROLLOVER = RolloverPolicy(build_date_ns=ns(2026, 1, 1), margin_ns=100 * 365 * 86_400 * NS_PER_S)


class Receiver:
    """A stream fed one rendered sentence at a time; ``now_ns`` is whatever the test sets."""

    def __init__(self, policy: RolloverPolicy = NO_ROLLOVER, **kw: bool) -> None:
        self.stream = NmeaStream(policy, **kw)
        self.now_ns = 0
        self.fixes: list[Fix] = []

    def send(self, *bodies: str) -> list[Fix]:
        out: list[Fix] = []
        for body in bodies:
            out += self.stream.feed(render(body), self.now_ns)
        self.fixes += out
        return out

    def close(self) -> list[Fix]:
        out = self.stream.flush()
        self.fixes += out
        return out


def rmc(hhmmss: str, ddmmyy: str, status: str = "A", talker: str = "GP") -> str:
    return f"{talker}RMC,{hhmmss},{status},4404.1306,N,12118.8515,W,0.03,225.97,{ddmmyy},,,A"


def gga(hhmmss: str, quality: int = 1, alt: str = "1127.7", talker: str = "GP") -> str:
    return f"{talker}GGA,{hhmmss},4404.1306,N,12118.8515,W,{quality},10,0.98,{alt},M,-19.6,M,,"


def zda(hhmmss: str, day: int, month: int, year: int) -> str:
    return f"GPZDA,{hhmmss},{day:02d},{month:02d},{year},,"


# --- grouping ----------------------------------------------------------------------------------


def test_epoch_is_reported_when_the_next_begins() -> None:
    rx = Receiver()
    assert rx.send(gga("202640.000"), "GPGSA,A,3,20,16,09,,,,,,,,,,1.64,0.98,1.31", rmc("202640.000", "130415")) == []
    (fix,) = rx.send(gga("202641.000"))
    assert fix.utc_ns == ns(2015, 4, 13, 20, 26, 40)
    assert fix.sentences == ("GPGGA", "GPGSA", "GPRMC")
    assert fix.date_source is DateSource.RMC
    assert (fix.valid, fix.mode, fix.sats_used) == (True, FixMode.THREE_D, 10)
    assert fix.has_time


def test_arrival_is_the_first_sentence_of_the_epoch() -> None:
    rx = Receiver()
    rx.now_ns = 111
    rx.send(gga("120000"))
    rx.now_ns = 222
    rx.send(rmc("120000", "010124"))
    rx.now_ns = 333
    (fix,) = rx.send(gga("120001"))
    assert fix.arrival_ns == 111
    assert rx.close()[0].arrival_ns == 333


def test_untimed_sentences_before_any_time_are_unplaced() -> None:
    rx = Receiver()
    rx.send("GPGSV,1,1,01,01,40,083,46", "GPGSA,A,1,,,,,,,,,,,,,,,", "GPRMC,,V,,,,,,,,,,N")
    assert rx.close() == []
    counts = rx.stream.counters
    assert (counts.decoded, counts.placed, counts.unplaced) == (3, 0, 3)


def test_fractional_seconds_are_separate_epochs() -> None:
    rx = Receiver()
    rx.send(rmc("132827.20", "180320"), rmc("132827.60", "180320"), rmc("132827.80", "180320"))
    rx.close()
    assert [f.utc_ns for f in rx.fixes] == [
        ns(2020, 3, 18, 13, 28, 27) + frac for frac in (200_000_000, 600_000_000, 800_000_000)
    ]


# --- dates -------------------------------------------------------------------------------------


def test_gga_arriving_before_rmc_takes_the_epochs_date() -> None:
    rx = Receiver()
    rx.send(gga("000343.03"), rmc("000343.03", "070419"))
    (fix,) = rx.close()
    assert fix.utc_ns == ns(2019, 4, 7, 0, 3, 43) + 30_000_000


def test_gga_only_epochs_cross_midnight_and_new_year() -> None:
    rx = Receiver()
    rx.send(rmc("235958", "311224"), gga("235958"))
    rx.send(gga("235959"), gga("000000"), gga("000001"))
    rx.close()
    assert [f.utc_ns for f in rx.fixes] == [ns(2024, 12, 31, 23, 59, 58) + i * NS_PER_S for i in range(4)]
    assert [f.date_source for f in rx.fixes] == [DateSource.RMC] + [DateSource.CARRIED] * 3


def test_carried_date_follows_the_local_clock_across_long_gaps() -> None:
    rx = Receiver()
    rx.now_ns = 0
    rx.send(rmc("100000", "150624"))
    rx.now_ns = 13 * HOUR_NS + HOUR_NS // 2  # 13.5 h later: 23:30 the same day
    rx.send(gga("233000"))
    rx.now_ns += 2 * HOUR_NS  # 2 h later: 01:30 the next day
    rx.send(gga("013000"))
    rx.close()
    assert [f.utc_ns for f in rx.fixes] == [ns(2024, 6, 15, 10), ns(2024, 6, 15, 23, 30), ns(2024, 6, 16, 1, 30)]


def test_without_a_local_clock_the_nearest_day_wins() -> None:
    rx = Receiver()
    rx.send(rmc("100000", "150624"), gga("233000"))  # 13.5 h ahead of the anchor: read as the day before
    rx.close()
    assert rx.fixes[1].utc_ns == ns(2024, 6, 14, 23, 30)


def test_gga_without_any_date_has_no_time() -> None:
    rx = Receiver()
    rx.send(gga("120000"), gga("120001"))
    rx.close()
    assert [(f.valid, f.utc_ns, f.has_time) for f in rx.fixes] == [(True, None, False)] * 2
    assert rx.stream.counters.undated_epochs == 2


def test_void_epochs_do_not_lend_their_date() -> None:
    rx = Receiver()
    rx.send(rmc("235948.00", "161206", status="V"), gga("235949.00"))
    rx.close()
    assert rx.fixes[1].valid and rx.fixes[1].utc_ns is None


def test_zda_date_wins_over_rmc() -> None:
    rx = Receiver()
    rx.send(rmc("120000", "010101"), zda("120000", 2, 1, 2021))
    (fix,) = rx.close()
    assert fix.utc_ns == ns(2021, 1, 2, 12) and fix.date_source is DateSource.ZDA


def test_two_digit_year_pivot_is_the_build_year_then_the_last_zda() -> None:
    rx = Receiver(RolloverPolicy(build_date_ns=ns(2026, 1, 1), margin_ns=200 * 365 * 86_400 * NS_PER_S))
    rx.send(rmc("120000", "010145"), rmc("120001", "010146"))  # window 1946..2045
    rx.send(zda("120002", 1, 1, 2090), rmc("120003", "010105"))  # now 2010..2109
    rx.close()
    assert [f.utc_ns for f in rx.fixes] == [
        ns(2045, 1, 1, 12),
        ns(1946, 1, 1, 12, 0, 1),
        ns(2090, 1, 1, 12, 0, 2),
        ns(2105, 1, 1, 12, 0, 3),
    ]


def test_impossible_date_is_no_date() -> None:
    rx = Receiver()
    rx.send(rmc("120000", "300223"))  # 30 February
    (fix,) = rx.close()
    assert fix.utc_ns is None and fix.valid


def test_leap_second_keeps_its_label() -> None:
    rx = Receiver()
    rx.send(rmc("235959", "311216"), rmc("235960", "311216"), rmc("000000", "010117"))
    rx.close()
    assert [f.time_of_day_ns // NS_PER_S for f in rx.fixes] == [86_399, 86_400, 0]
    # POSIX time cannot tell 23:59:60 from the next 00:00:00
    assert rx.fixes[1].utc_ns == rx.fixes[2].utc_ns == ns(2017, 1, 1)


def test_week_rollover_is_repaired_in_fixes() -> None:
    rx = Receiver(RolloverPolicy(build_date_ns=ns(2019, 3, 14)))
    rx.send(rmc("000231.42", "220899"), gga("000232.42"))
    rx.close()
    assert [(f.utc_ns, f.rollover_steps) for f in rx.fixes] == [
        (ns(2019, 4, 7, 0, 2, 31) + 420_000_000, 1),
        (ns(2019, 4, 7, 0, 2, 32) + 420_000_000, 0),  # carried from the repaired date
    ]
    assert rx.stream.counters.rollover_repaired == 1
    assert rx.fixes[0].utc_ns == ns(1999, 8, 22, 0, 2, 31) + 420_000_000 + WEEK_ROLLOVER_NS


def test_week_rollover_refused() -> None:
    rx = Receiver(RolloverPolicy(build_date_ns=ns(2019, 3, 14), refuse=True))
    rx.send(rmc("000231.42", "220899"), gga("000232.42"))
    rx.close()
    assert [(f.valid, f.utc_ns) for f in rx.fixes] == [(True, None), (True, None)]
    assert rx.stream.counters.rollover_refused == 1


# --- validity and mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bodies", "valid", "mode"),
    [
        ([rmc("120000", "010124")], True, FixMode.TWO_D),
        ([rmc("120000", "010124", status="V")], False, FixMode.NONE),
        ([gga("120000", quality=6), zda("120000", 1, 1, 2024)], True, FixMode.THREE_D),
        ([gga("120000", quality=1, alt=""), zda("120000", 1, 1, 2024)], True, FixMode.TWO_D),
        ([gga("120000", quality=0), rmc("120000", "010124")], False, FixMode.NONE),  # disagreement
        ([gga("120000", quality=8), rmc("120000", "010124")], False, FixMode.NONE),  # simulator
        ([zda("120000", 1, 1, 2024)], False, FixMode.UNKNOWN),
        (["GNGNS,120000,4111.6,N,11156.5,W,NNNN,00,,,,,", zda("120000", 1, 1, 2024)], False, FixMode.NONE),
        (["GNGNS,120000,4111.6,N,11156.5,W,ANNA,05,1.3,156.9,8.3,,", zda("120000", 1, 1, 2024)], True, 3),
        (["GNGLL,4111.6,N,11156.5,W,120000,A,A", zda("120000", 1, 1, 2024)], True, FixMode.TWO_D),
        (["GNGLL,4111.6,N,11156.5,W,120000,A,N", zda("120000", 1, 1, 2024)], False, FixMode.NONE),
        (["GPRMC,120000,A,4404.1,N,12118.8,W,,,010124,,,N"], False, FixMode.NONE),
        ([rmc("120000", "010124"), "GPGSA,A,2,20,16,09,,,,,,,,,,1.6,1.0,1.3"], True, FixMode.TWO_D),
        ([gga("120000"), "GPGSA,A,3,20,16,09,,,,,,,,,,1.6,1.0,1.3", zda("120000", 1, 1, 2024)], True, 3),
    ],
)
def test_validity_and_mode(bodies: list[str], valid: bool, mode: FixMode) -> None:
    rx = Receiver()
    rx.send(*bodies)
    (fix,) = rx.close()
    assert (fix.valid, fix.mode) == (valid, mode)
    assert fix.has_time == (valid and mode >= 2)


def test_satellites() -> None:
    rx = Receiver()
    rx.send(
        rmc("120000", "010124", talker="GN"),
        "GNGSA,A,3,01,02,03,,,,,,,,,,1.5,0.9,1.2,1",
        "GNGSA,A,3,73,84,,,,,,,,,,,1.5,0.9,1.2,2",
        "GPGSV,2,1,05,01,17,083,20,02,20,056,28,03,18,124,22,08,,,16",
        "GPGSV,2,2,05,11,10,100,20",
        "GLGSV,1,1,02,73,10,100,20,84,20,200,30",
        "GAGSV,1,1,01,04,10,100,20,7",
    )
    (fix,) = rx.close()
    assert (fix.sats_used, fix.sats_in_view) == (5, 8)
    assert fix.lat_deg == pytest.approx(44.0688433)


def test_pubx04_leap_seconds_reach_the_fix() -> None:
    rx = Receiver()
    rx.send(rmc("073731.00", "091202"), "PUBX,04,073731.00,091202,113851.00,1196,13D,1930035,-2660.664,43,")
    (fix,) = rx.close()
    assert (fix.leap_seconds, fix.utc_valid) == (13, False)
    assert fix.sentences == ("GPRMC", "PUBX04")
    rx.send(rmc("073732.00", "091202"))
    assert (rx.close()[0].leap_seconds, rx.fixes[-1].utc_valid) == (None, None)


# --- early reports -----------------------------------------------------------------------------


def mt3339_epoch(s: int) -> list[str]:
    t = f"2026{s:02d}.000"
    return [gga(t), "GPGSA,A,3,20,16,09,,,,,,,,,,1.64,0.98,1.31", rmc(t, "130415"), zda(t, 13, 4, 2015)]


def test_learned_ender_reports_without_waiting() -> None:
    rx = Receiver()
    for s in range(3):  # two epochs end with GPZDA: learned after the second closes
        rx.send(*mt3339_epoch(s))
    *head, last = mt3339_epoch(3)
    assert rx.send(*head) == []
    (fix,) = rx.send(last)
    assert fix.time_of_day_ns == (20 * 3600 + 26 * 60 + 3) * NS_PER_S
    assert rx.close() == []
    assert len(rx.fixes) == 4 and rx.stream.counters.unplaced == 0


def test_a_late_sentence_spoils_the_ender_for_good() -> None:
    rx = Receiver()
    for s in range(4):
        rx.send(*mt3339_epoch(s))
    assert len(rx.fixes) == 4  # the fourth came with its ZDA
    rx.send("GPGSV,1,1,01,09,88,089,31")  # arrives after the report: late
    assert rx.stream.counters.unplaced == 1
    assert rx.send(*mt3339_epoch(4)) == []  # closes epoch 3 (reported already): ZDA is spoiled
    for s in range(5, 8):
        assert rx.send(*mt3339_epoch(s))[-1].time_of_day_ns % (60 * NS_PER_S) == (s - 1) * NS_PER_S
    assert rx.close()[0].time_of_day_ns % (60 * NS_PER_S) == 7 * NS_PER_S
    assert rx.stream.counters.unplaced == 1


def test_fixes_are_frozen() -> None:
    rx = Receiver()
    rx.send(rmc("120000", "010124"))
    (fix,) = rx.close()
    with pytest.raises(AttributeError):
        fix.valid = False  # type: ignore[misc]


# --- clock steps -------------------------------------------------------------------------------


def test_a_clock_step_restates_the_epoch_and_the_line_in_flight() -> None:
    """A fix reported when the next epoch starts (no ender learned yet): the step that its sample causes
    restates the epoch already open, and a line half read, so they are not reported on the old scale."""
    rx = Receiver()
    rx.now_ns = 1_000
    rx.send(rmc("120000.00", "230324"), gga("120000.00"))
    rx.now_ns = 2_000
    assert [f.arrival_ns for f in rx.send(rmc("120001.00", "230324"))] == [1_000]  # epoch 12:00:01 opened at 2000
    rx.stream.clock_stepped(-500)
    assert rx.stream.stepped_ns == -500
    rx.now_ns = 3_000
    half = render(rmc("120002.00", "230324"))
    assert rx.stream.feed(half[:10], rx.now_ns) == []
    rx.stream.clock_stepped(+200)
    rx.now_ns = 4_000
    out = rx.stream.feed(half[10:], rx.now_ns) + rx.close()
    assert [f.arrival_ns for f in out] == [2_000 - 500 + 200, 3_000 + 200]


def test_fixes_handed_after_a_step_are_on_the_new_scale() -> None:
    """One chunk completes three epochs (the last at once: RMC is learned as the ender); handing on the first
    steps the clock: the others, built already, follow the step."""
    stream = NmeaStream(NO_ROLLOVER)
    chunk = b"".join(
        render(b) for b in (rmc("120000.00", "230324"), rmc("120001.00", "230324"), rmc("120002.00", "230324"))
    )
    handed = []
    for fix in stream.handed(chunk, 7_000):
        handed.append(fix.arrival_ns)
        if len(handed) == 1:
            stream.clock_stepped(-3_000)
    assert handed == [7_000, 4_000, 4_000]
    assert stream.flush() == []
