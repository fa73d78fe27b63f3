"""``stratum1 pool-check`` against simulated appliances in a private network namespace.

The appliance serves in one namespace (198.51.100.1, 2001:db8::1); pool-check
sends from another (``--netns``), as a monitor on the internet would. A
healthy appliance (the simulated GPS HAT, locked) is predicted 20 on both
addresses; three sick ones lose points, each for its own named reason:
a rate limit that trips the monitor's three requests 2 s apart, the local
clock served publicly, and a clock 50 ms off (the simulated receiver's PPS
wrongly told it is seen 50 ms late, ``fudge time1 0.050``, so it runs 50 ms ahead, on a clock that starts
there).
Offsets are against this host's clock, which the simulation takes as true.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import nsutil
import pytest

from appliance import cli
from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.lcd.runner import query_ntp

pytestmark = pytest.mark.netns

SERVER4, SERVER6 = "198.51.100.1", "2001:db8::1"
POOL_LINES = """
restrict default kod limited nomodify notrap nopeer noquery
restrict -6 default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict ::1
"""
GPS_50MS_LATE = "server 127.127.20.0 mode 1\nfudge 127.127.20.0 time1 0.050 flag1 1\n"


@contextmanager
def appliance(ns: nsutil.NetNs, text: str, simulation: Simulation | None) -> Iterator[Appliance]:
    config = parse_config(text, "pool.conf")
    settings = ServeSettings(listen=("0.0.0.0", "::"), port=123)
    app = ns.call(lambda: Appliance(config, settings, simulation=simulation))
    app.start_thread()
    try:
        if simulation is not None:  # wait for the simulated GPS to lock (asked on loopback: no rate tokens spent)
            deadline = time.monotonic() + 60
            while True:
                m = ns.call(lambda: query_ntp(("127.0.0.1", 123)))
                if (m is not None and m.stratum == 1) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert m is not None and m.stratum == 1, "the simulated GPS did not lock within 60 s"
            time.sleep(2)  # a couple of seconds of tracking
        yield app
    finally:
        app.stop()
        app.close()


@pytest.fixture
def lab(netns: Callable[[str], nsutil.NetNs]) -> tuple[nsutil.NetNs, nsutil.NetNs]:
    srv, mon = netns("srv"), netns("mon")
    nsutil.link(srv, mon, [f"{SERVER4}/24", f"{SERVER6}/64"], ["198.51.100.7/24", "2001:db8::7/64"])
    return srv, mon


def pool_check(mon: nsutil.NetNs, capsys: pytest.CaptureFixture[str], *addresses: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main(["pool-check", *addresses, "--netns", mon.name])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_healthy_appliance_is_predicted_20(lab: tuple[nsutil.NetNs, nsutil.NetNs], capsys: pytest.CaptureFixture[str]):
    srv, mon = lab
    with appliance(srv, POOL_LINES, Simulation(initial_offset_ns=0)):
        rc, out = pool_check(mon, capsys, SERVER4, SERVER6)
    print(out)
    assert out.count("predicted score: 20.0 of 20") == 2, out
    assert f"{SERVER4} (IPv4)" in out and f"{SERVER6} (IPv6)" in out
    assert out.count("stratum 1, refid PPS") == 6 and " lost " not in out
    assert "verdict: ready for the NTP Pool" in out and rc == 0


def test_rate_limit_too_tight(lab: tuple[nsutil.NetNs, nsutil.NetNs], capsys: pytest.CaptureFixture[str]) -> None:
    srv, mon = lab
    # one request per 8 s with no burst: the monitor's second request, 2 s after the first, is limited
    with appliance(srv, POOL_LINES + "discard average 3 minimum 2 burst 1\n", Simulation(initial_offset_ns=0)):
        rc, out = pool_check(mon, capsys, SERVER4)
    print(out)
    assert "request 1: stratum 1, refid PPS" in out and "request 2: Kiss-o'-Death RATE" in out
    assert "lost 4.50 points: a RATE Kiss-o'-Death answered request 2: the rate limit trips" in out
    assert "predicted score: -70.0 of 20" in out and rc == 1


def test_local_clock_served_publicly(lab: tuple[nsutil.NetNs, nsutil.NetNs], capsys: pytest.CaptureFixture[str]):
    srv, mon = lab
    local = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nlocalclock public serve\n"
    with appliance(srv, POOL_LINES + local, None):
        rc, out = pool_check(mon, capsys, SERVER4)
    print(out)
    assert out.count("stratum 10, refid LOCL, offset") == 3
    assert "lost 5.00 points: stratum 10, refid LOCL: the local clock served publicly" in out
    assert "predicted score: -80.0 of 20" in out and rc == 1


def test_clock_50ms_off(lab: tuple[nsutil.NetNs, nsutil.NetNs], capsys: pytest.CaptureFixture[str]) -> None:
    srv, mon = lab
    with appliance(srv, POOL_LINES + GPS_50MS_LATE, Simulation(initial_offset_ns=50_000_000)):
        rc, out = pool_check(mon, capsys, SERVER4)
    print(out)
    assert out.count("stratum 1, refid PPS, offset +") == 3
    assert "against the reference is over 25 ms" in out and "kept: request" in out
    score = float(out.split("predicted score: ")[1].split(" of")[0])
    assert 15.5 < score < 18.0, out  # 20 * (1 - 0.5 * (50 - 25) / 75) = 16.7, give or take the query's noise
    assert rc == 1
