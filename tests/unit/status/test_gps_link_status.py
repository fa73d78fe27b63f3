"""A receiver that is not heard is not said to have "no fix": status tells gone, silent and unknown rate apart.

The pairing sees the same thing in each case (no recent epoch); the serial port's link says why. Every reader
of the snapshot (``stratum1 status``, the alarms, the display over the socket and over mode 6, the web page)
must say what is true, and "no fix" (give the antenna a clear view of the sky) only when the receiver is
talking NMEA and says it has none.
"""

from __future__ import annotations

import random

import pytest

from appliance.clock.simulated import SimulatedClock
from appliance.lcd.view import view_from_mode6, view_from_snapshot
from appliance.nmea.epoch import Fix, FixMode
from appliance.nmea.link import SerialLink
from appliance.ntp.server import ServerCounters
from appliance.refclock.gps import GpsClock
from appliance.refclock.sample import Pulse
from appliance.sources.timekeeper import Timekeeper
from appliance.status.collect import AssocIds, snapshot_from
from appliance.status.snapshot import Snapshot, SourceStatus
from appliance.status.text import status_text
from appliance.status.variables import clock_variables
from appliance.timebase import NS_PER_S
from appliance.web.page import gps_fields

T0 = 1_795_000_000 * NS_PER_S
PATH = "/dev/gps0"


def receiver_went_quiet() -> tuple[GpsClock, int]:
    """20 s of fixes and pulses, then 10 s of nothing from the receiver (its pulses go on)."""
    clock = GpsClock()
    for k in range(30):
        true = T0 + k * NS_PER_S
        clock.on_pulse(Pulse(true))
        if k < 20:
            clock.on_fix(Fix(true + 350_000_000, true % (86400 * NS_PER_S), true, True, FixMode.THREE_D))
    return clock, T0 + 29 * NS_PER_S + 500_000_000


def snap(link: SerialLink | None) -> Snapshot:
    clock, now = receiver_went_quiet()
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    return snapshot_from(
        tk, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, gps=clock, serial=link
    )


HEARD_AT = T0 + 19 * NS_PER_S
OPENED = {"is_open": True, "baud": 9600, "opened_ns": T0}
CASES = {
    "gone": (
        SerialLink(PATH, is_open=False, baud=9600, opened_ns=T0, closed_why="lost: end of file"),
        "gps-gone",
        "GPS: device gone",
        f"receiver gone ({PATH}: lost: end of file)",
        "plug the receiver back in",
    ),
    "silent": (
        SerialLink(PATH, **OPENED, bytes_ns=HEARD_AT, nmea_ns=HEARD_AT),  # type: ignore[arg-type]
        "gps-silent",
        "GPS: silent",
        f"receiver silent (no bytes on {PATH} at 9600 baud)",
        "TX wire",
    ),
    "wrong-rate": (
        SerialLink(PATH, **OPENED, bytes_ns=T0 + 29 * NS_PER_S, nmea_ns=HEARD_AT),  # type: ignore[arg-type]
        "gps-unknown-rate",
        "GPS: wrong baud",
        f"receiver talks at an unknown rate (no NMEA on {PATH} at 9600 baud)",
        "'baud N'",
    ),
    "wrong-rate-auto": (  # the rate baud auto found went quiet: it searches again by itself
        SerialLink(PATH, **OPENED, autobaud=True, bytes_ns=T0 + 29 * NS_PER_S, nmea_ns=HEARD_AT),  # type: ignore[arg-type]
        "gps-unknown-rate",
        "GPS: wrong baud",
        f"receiver talks at an unknown rate (no NMEA on {PATH} at 9600 baud)",
        "baud auto searches the rate again",
    ),
    "searching": (
        SerialLink(
            PATH,
            **OPENED,
            autobaud=True,
            searching=True,
            bytes_ns=T0 + 29 * NS_PER_S,
            nmea_ns=HEARD_AT,  # type: ignore[arg-type]
        ),
        "gps-unknown-rate",
        "GPS: wrong baud",
        f"receiver talks at an unknown rate (no NMEA on {PATH} at 9600 baud, searching the rate)",
        "receiver talks at N baud",
    ),
}


def mode6_view(s: Snapshot) -> list[str]:
    """The display's alarms from the clock variables ntpq's cv reads (the shipped display's way)."""
    source = SourceStatus(1, "NMEA(0)", "refclock", "127.127.20.0", " ", 0, "PPS", 0, 0, 0, 0, 0, 0, 0, 0, 0, False)
    clock = {k: v.strip('"') for k, v in clock_variables(source, gps=s.gps)}
    system = {"leap": "0", "stratum": "1", "peer": "0", "offset": "0", "clk_jitter": "0"}
    return list(view_from_mode6(system, 0x0400, clock, now_ns=s.time_ns).alarms)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_receiver_not_heard_is_not_said_to_have_no_fix(case: str) -> None:
    link, code, words, line, advice = CASES[case]
    s = snap(link)
    assert s.gps is not None and not s.gps.fix
    codes = [a.code for a in s.alarms]
    assert code in codes and "gps-no-fix" not in codes
    alarm = next(a for a in s.alarms if a.code == code)
    assert PATH in alarm.message and advice in alarm.action and "sky" not in alarm.action
    text = status_text(s)
    assert f"gps:       {line}, PPS ok" in text and "fix none" not in text
    lcd = view_from_snapshot(s)
    assert words in lcd.alarms and "GPS: no fix" not in lcd.alarms and lcd.fix is None
    assert words in mode6_view(s) and "GPS: no fix" not in mode6_view(s)
    assert ("gps-fix", "Fix", line) in gps_fields(s)
    assert Snapshot.from_json(s.to_json()) == s


def test_no_fix_only_when_the_receiver_talks_and_says_so() -> None:
    talking = SerialLink(PATH, **OPENED, bytes_ns=T0 + 29 * NS_PER_S, nmea_ns=T0 + 29 * NS_PER_S)  # type: ignore[arg-type]
    for s in (snap(talking), snap(None)):  # None: a driver that does not say (the simulation's)
        assert s.gps is not None and s.gps.link == "talking"
        assert [a.code for a in s.alarms if a.code.startswith("gps-")] == ["gps-no-fix"]
        assert "gps:       fix none, satellites ? used / ? in view" in status_text(s)
        assert "GPS: no fix" in view_from_snapshot(s).alarms and "GPS: no fix" in mode6_view(s)


def test_a_receiver_that_sends_none_of_the_chosen_sentences_is_told_apart_from_no_fix() -> None:
    """mode 8 (ZDA only) on a receiver that sends RMC and GGA: it talks NMEA, every sentence is left out, so
    the alarm names the mode bits, not the antenna."""
    from appliance.nmea.counters import NmeaCounters

    now = T0 + 30 * NS_PER_S
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    recent = now - NS_PER_S // 2
    counts = NmeaCounters(lines=60, decoded=60, unselected=60, epochs=0)
    link = SerialLink(PATH, is_open=True, baud=9600, opened_ns=T0, bytes_ns=recent, nmea_ns=recent, nmea=counts)

    def alarms(link: SerialLink) -> list[str]:
        s = snapshot_from(
            tk,
            ServerCounters(),
            now,
            ids=AssocIds(),
            started_ns=T0,
            version="t",
            precision=-20,
            gps=GpsClock(),
            serial=link,
        )
        return [a.code for a in s.alarms]

    got = alarms(link)
    assert "gps-unselected" in got and "gps-no-fix" not in got
    plain = SerialLink(PATH, is_open=True, baud=9600, opened_ns=T0, bytes_ns=recent, nmea_ns=recent)
    got = alarms(plain)
    assert "gps-no-fix" in got and "gps-unselected" not in got


def test_the_root_dispersion_shown_is_the_one_the_clients_are_told_now() -> None:
    """Aged at PHI (15 us/s) since the reference time, as the server sends it; not frozen at the last update."""
    from appliance.state import SystemState, refid_from_text

    state = SystemState(leap=0, stratum=10, root_dispersion_ns=10_000, refid=refid_from_text("LOCL"), reference_ns=T0)
    now = T0 + 100 * NS_PER_S
    s = snapshot_from(
        None, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, served=state
    )
    assert s.system.root_dispersion_ns == state.root_dispersion_at(now) == 10_000 + 1_500_000


def test_last_fix_is_the_last_epoch_with_a_fix_not_the_last_heard() -> None:
    """The receiver still talks after it lost its fix (RMC 'V'): 'last fix' stays at the last good epoch."""
    clock = GpsClock()
    for k in range(25):
        true = T0 + k * NS_PER_S
        clock.on_pulse(Pulse(true))
        good = k < 20
        mode = FixMode.THREE_D if good else FixMode.NONE
        clock.on_fix(Fix(true + 350_000_000, true % (86400 * NS_PER_S), true, good, mode))
    tk = Timekeeper(SimulatedClock(random.Random(1), start_ns=T0), precision=-20)
    now = T0 + 25 * NS_PER_S
    s = snapshot_from(tk, ServerCounters(), now, ids=AssocIds(), started_ns=T0, version="t", precision=-20, gps=clock)
    assert s.gps is not None and not s.gps.fix
    assert s.gps.last_fix_ns == T0 + 19 * NS_PER_S + 350_000_000
