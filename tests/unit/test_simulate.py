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
