"""``serve --simulate``'s fakes as the running appliance wires them."""

from __future__ import annotations

import time

from appliance.clock.soft import SoftClock
from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation

S = 1_000_000_000


def test_the_simulated_pps_stamps_each_edge_on_the_served_clock_at_the_edge() -> None:
    """``--simulate``'s fake PPS stamps an edge as the kernel would: the host's time of the edge, on the soft clock.

    Not a reading of the served clock and then of the host's (which comes out early by the time between the two:
    the simulated appliance served 6-8 us ahead of the host clock that way).
    """
    config = parse_config("driftfile /var/lib/stratum1/drift\n", "t.conf")
    app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation(pps_jitter_ns=0))
    try:
        clock = app.clock
        assert isinstance(clock, SoftClock)
        edge = (time.time_ns() // S - 1) * S  # the last whole second but one: a stamp of the past
        pulse = app.fakes["pps"].drive_pulse(edge)
        assert pulse.local_ns == clock.at_base_ns(edge)
    finally:
        app.close()


def test_the_simulation_wakes_the_loop_when_its_fakes_are_due_not_on_a_fast_poll() -> None:
    """The fake receiver writes each sentence when due and the fake PPS ticks at its second.

    Polled every 5 and 10 ms, the fakes woke the appliance's loop about 200 times a second (649 wake-ups in
    3.2 s), and an NTP request that came while Python ran a fake's timer waited for it. The loop now wakes
    about as often as on real hardware: the sentences, the edge, the timekeeper's second. The fakes still
    deliver: the pulses and the sentences arrive.
    """
    config = parse_config("driftfile /var/lib/stratum1/drift\n", "t.conf")
    app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation(pps_jitter_ns=0))
    wakes = 0
    start = time.monotonic()

    def until() -> bool:
        nonlocal wakes
        wakes += 1
        return time.monotonic() - start >= 3.2

    try:
        app.loop.run(until=until)
        seconds = time.monotonic() - start
        assert len(app.fakes["pps"].pulses) >= 3
        assert app.fakes["pty"].written > 0 and app.fakes["pty"].dropped == 0
        assert app.fakes["gps"].bursts >= 2
        assert wakes / seconds < 40, f"{wakes} wake-ups in {seconds:.1f} s"
    finally:
        app.close()


def test_a_simulated_receiver_whose_pps_line_is_noselect_gets_no_pulses() -> None:
    """``--simulate`` stands in for the line's devices: with its pps line 'noselect' the NMEA line has no PPS,
    so the fake PPS must not feed it (the tester saw NMEA(0) use pulses the config had switched off)."""
    config = parse_config(
        "refclock nmea unit 0 path /dev/ttyS9 baud 9600 time2 0.4\n"
        "refclock pps unit 0 path /nonexistent/pps0 noselect\n",
        "t.conf",
    )
    app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation(pps_jitter_ns=0))
    try:
        assert app.refclocks is not None
        gps = app.refclocks.parts["NMEA(0)"].gps
        stop = app.loop.call_later(10.0, app.loop.stop)
        app.loop.run(until=lambda: gps.counters.fixes >= 3)
        stop.cancel()
        assert gps.counters.fixes >= 3 and gps.counters.pulses == 0
    finally:
        app.close()
