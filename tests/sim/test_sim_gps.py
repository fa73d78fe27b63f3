"""The simulated GPS HAT on virtual time: the shipped fake receiver and PPS, the daemon's pairing and timekeeper.

What ``tests/interop/test_simulated_gps.py`` checked in real time against the host's clock (two minutes
and more of wall time), on the simulated clock of :func:`appliance.sim.harness.run_system`: the truth is
the simulation's, so the clock's error is known exactly and no host clock is read.
"""

from __future__ import annotations

import pytest

from appliance.fakes.gps import MODELS
from appliance.ntp.packet import refid_from_text
from appliance.sim.harness import ReceiverSpec, SystemScenario, SystemTrace, run_system
from appliance.sim.metrics import max_abs
from appliance.timebase import NS_PER_S

S = NS_PER_S
MS = 1_000_000
PPS = refid_from_text("PPS")


def window(trace: SystemTrace, start_ns: int, end_ns: int) -> slice:
    return slice(trace.at(start_ns), trace.at(end_ns) + 1)


@pytest.mark.parametrize("model", ["mtk3339", "ublox-m8"])
def test_pulses_numbered_and_nmea_delay_calibrated(model: str) -> None:
    trace = run_system(
        SystemScenario(seed=1, duration_ns=120 * S, initial_offset_ns=250_000_000, receiver=ReceiverSpec(model))
    )
    assert trace.counters.refclock_updates >= 60
    m = MODELS[model]
    simulated_delay = (m.delay_min_ns + m.delay_max_ns) // 2
    delay = trace.receiver["nmea_delay_ns"]
    # the interquartile mean of 64 delays drawn uniformly over the model's range W has a spread of about
    # W / 20 (1 sigma): W / 6 is more than 3 sigma
    spread = (m.delay_max_ns - m.delay_min_ns) // 6
    assert delay is not None and abs(delay - simulated_delay) < spread, (delay, simulated_delay)
    assert trace.receiver["lock_breaks"] == 0
    # stratum 1 on numbered pulses within the first minute, the 0.25 s start error stepped away
    minute = window(trace, 60 * S, 120 * S)
    assert set(trace.stratum[minute]) == {1} and set(trace.refid[minute]) == {PPS}
    assert max_abs(trace.time_error_ns[minute]) < 1 * MS
    assert trace.counters.clock_steps == 1


def test_unplug_garbage_and_week_jump_keep_serving_and_recover() -> None:
    actions = (
        (120 * S, lambda gps, _pps: gps.go_silent()),  # unplugged: no NMEA (the PPS goes on)
        (135 * S, lambda gps, _pps: gps.resume()),
        (160 * S, lambda gps, _pps: gps.send_garbage(b"\x00\xb5\x62garbage$GPXXX,1,2*00\r\n\xff" * 20)),
        (190 * S, lambda gps, _pps: gps.jump_weeks(1)),
        (215 * S, lambda gps, _pps: gps.jump_weeks(-1)),
    )
    trace = run_system(
        SystemScenario(
            seed=2,
            duration_ns=300 * S,
            initial_offset_ns=250_000_000,
            receiver=ReceiverSpec("ublox-m8", actions=actions),
        )
    )
    served = window(trace, 60 * S, 300 * S)
    assert set(trace.stratum[served]) == {1}  # served at stratum 1 throughout: holdover covers the gaps
    assert max_abs(trace.time_error_ns[served]) < 1 * MS  # the clock holds through all of it
    # unplugged: the pulses are no longer numbered within 5 s (holdover); back within 15 s of the replug
    assert "holdover" in trace.basis[window(trace, 121 * S, 125 * S)]
    assert set(trace.basis[window(trace, 150 * S, 185 * S)]) == {"refclock"}  # garbage changes nothing
    assert trace.receiver["garbage_bytes"] is not None and trace.receiver["garbage_bytes"] > 0
    # a week jump breaks the lock within 5 s and is not followed; good dates again: back on the GPS
    assert "holdover" in trace.basis[window(trace, 191 * S, 195 * S)]
    assert trace.receiver["lock_breaks"] is not None and trace.receiver["lock_breaks"] >= 1
    assert set(trace.basis[window(trace, 240 * S, 300 * S)]) == {"refclock"}
    assert trace.counters.clock_steps == 1
