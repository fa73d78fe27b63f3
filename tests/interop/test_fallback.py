"""The fallback chain as a real chronyd sees it: GPS -> holdover -> upstream server -> local clock.

The appliance under test runs ``--simulate``'s GPS HAT (a fake receiver
writing NMEA into a pty, a fake PPS with 1 us jitter, on the host's time),
one upstream server and ``server 127.127.1.0`` + ``fudge ... stratum 10``.
The upstream is a second stratum1 appliance in this process, serving its
local clock at stratum 3 on another loopback port. At every step a
``chronyd -Q -x`` (it measures and never sets the clock) syncs from us and
its measurements log must show the stratum, reference ID and leap
indicator we claim:

1. GPS: stratum 1, refid ``PPS``;
2. receiver unplugged (no NMEA, no pulses): holdover, still stratum 1;
3. holdover over (a 5 us bound from :class:`ServeSettings` ends it in
   tens of seconds rather than hours): stratum 4, refid 127.0.0.1;
4. the upstream loses its own sync (it answers unsynchronised, which RFC
   5905 makes unfit at once): the local clock, stratum 10, refid ``LOCL``.

Everything stays on loopback; the file takes under a minute (two at most).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import chronyd_measure, free_port

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.ntp.packet import refid_from_text
from appliance.sources.timekeeper import Basis
from appliance.state import UNSYNCHRONISED, SystemState

UPSTREAM_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
server 127.127.1.0
fudge 127.127.1.0 stratum 3
"""
APPLIANCE_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
server 127.0.0.1 port {port} iburst minpoll 3 maxpoll 3
server 127.127.1.0
fudge 127.127.1.0 stratum 10
holdover 0.000005
"""
HOLDOVER_BOUND_NS = 5_000  # the config's holdover line


class Upstream(Appliance):
    """A stratum 3 server that can lose its sync (as if its own references were gone)."""

    synchronised = True

    def current_state(self, now_ns: int) -> SystemState:
        return super().current_state(now_ns) if self.synchronised else UNSYNCHRONISED


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def chronyd_sees(chronyd: Path, workdir: Path, port: int) -> list[tuple[str, int, bytes]]:
    """One ``chronyd -Q -x`` run against us: (leap code, stratum, refid) of each of its measurements."""
    return chronyd_measure(chronyd, workdir, port)[1]


@pytest.mark.interop
def test_chronyd_follows_us_through_every_fallback_step(chronyd: Path, tmp_path: Path) -> None:
    up = Upstream(parse_config(UPSTREAM_CONF, "upstream.conf"), ServeSettings(listen=("127.0.0.1",), port=free_port()))
    up.start_thread()
    config = parse_config(APPLIANCE_CONF.format(port=up.addresses[0][1]), "appliance.conf")
    settings = ServeSettings(listen=("127.0.0.1",), port=free_port())
    app = Appliance(config, settings, simulation=Simulation())
    app.start_thread()
    try:
        tk = app.timekeeper
        assert tk is not None
        port = app.addresses[0][1]
        state = lambda: app.server.state  # noqa: E731

        # 1. the GPS: stratum 1, PPS
        wait_for(lambda: tk.basis is Basis.REFCLOCK and state().refid == refid_from_text("PPS"), 60, "GPS")
        assert set(chronyd_sees(chronyd, tmp_path / "gps", port)) == {("N", 1, b"PPS\0")}
        assert tk.basis is Basis.REFCLOCK

        # 2. unplugged: holdover at stratum 1 while the estimated error stays under the bound
        app.fakes["pty"].unplug()
        app.fakes["pps"].stop()
        # pulses are stale after 1.5 s; 30 s of slack for a loaded CI machine
        wait_for(lambda: tk.basis is Basis.HOLDOVER, 30, "holdover")
        status = tk.status()
        assert status.error_ns < HOLDOVER_BOUND_NS and state().stratum == 1 and state().refid == b"PPS\0"
        assert status.selection.tally_code("GPS(0)") == " "  # not a candidate: no pulses, no fixes
        first = chronyd_sees(chronyd, tmp_path / "holdover", port)[0]  # later ones may see the bound reached
        assert first == ("N", 1, b"PPS\0")

        # 3. the bound is reached: the upstream server leads, stratum 3 + 1, refid its address
        wait_for(lambda: tk.basis is Basis.UPSTREAM and state().stratum == 4, 90, "upstream after holdover")
        assert set(chronyd_sees(chronyd, tmp_path / "upstream", port)) == {("N", 4, bytes([127, 0, 0, 1]))}
        assert tk.basis is Basis.UPSTREAM and tk.status().system_peer == f"127.0.0.1:{up.addresses[0][1]}"

        # 4. the upstream loses its sync: the local clock, stratum 10, LOCL
        up.synchronised = False
        wait_for(lambda: tk.basis is Basis.LOCAL and state().stratum == 10, 40, "local clock after the upstream's sync")
        assert set(chronyd_sees(chronyd, tmp_path / "local", port)) == {("N", 10, b"LOCL")}
        assert app.ntp_client.upstreams.associations[0].counters.dropped.get("unsynchronised", 0) >= 1
    finally:
        app.stop()
        app.close()
        up.stop()
        up.close()
