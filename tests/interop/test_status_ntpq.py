"""The real NTPsec ntpq and Debian's ntpstat against a running appliance: what they print is its state.

A private network namespace holds two appliances: the one under test on 127.0.0.1:123 (ntpstat asks there
and nowhere else) with a simulated GPS HAT, an upstream server and the local clock configured, and a second
appliance on 127.0.0.2:123 as that upstream (its local clock at stratum 2). A client namespace joined by a
veth link asks from 192.168.0.77, an address under ``noquery``: it gets nothing. Nothing leaves the
namespaces.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.ntp.mode6 import HEADER
from appliance.status.snapshot import Snapshot

pytestmark = pytest.mark.netns

MAIN_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict ::1
server 127.0.0.2 iburst
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""
UPSTREAM_CONF = """
restrict 127.0.0.1
server 127.127.1.0
fudge 127.127.1.0 stratum 2
"""
CLIENT = "192.168.0.77"


def start(
    ns: nsutil.NetNs, text: str, listen: str, simulation: Simulation | None = None, status: str | None = None
) -> Appliance:
    config = parse_config(text, f"{listen}.conf")
    settings = ServeSettings(listen=(listen,), port=123, status_socket=status)
    app = ns.call(lambda: Appliance(config, settings, simulation=simulation))
    app.start_thread()
    return app


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[nsutil.NetNs, nsutil.NetNs, Appliance]]:
    if not nsutil.available():
        pytest.skip("network namespaces need root and iproute2")
    srv, cli = nsutil.NetNs("st-srv"), nsutil.NetNs("st-cli")
    apps: list[Appliance] = []
    try:
        nsutil.link(srv, cli, ["192.168.0.1/24"], [f"{CLIENT}/24"])
        apps.append(start(srv, UPSTREAM_CONF, "127.0.0.2"))
        sock = str(tmp_path_factory.mktemp("status") / "status.sock")
        main = start(srv, MAIN_CONF, "0.0.0.0", Simulation(), status=sock)
        apps.append(main)
        wait_for(main, lambda s: s.system.basis == "refclock" and all(x.reach for x in s.sources), 40)
        yield srv, cli, main
    finally:
        for app in reversed(apps):
            app.stop()
            app.close()
        srv.delete()
        cli.delete()


def wait_for(app: Appliance, ready: Callable[[Snapshot], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.snapshot is not None and ready(app.snapshot):
            return
        time.sleep(0.5)
    raise AssertionError(f"not ready in {timeout} s: {app.snapshot}")


def run(ns: nsutil.NetNs, tools: dict[str, str], tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ns.cmd(tools[tool], *args), capture_output=True, text=True, timeout=30)


def current(app: Appliance) -> Snapshot:
    snap = app.snapshot
    assert snap is not None
    return snap


def test_ntpq_peers_shows_every_source_as_the_appliance_sees_it(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    srv, _, app = lab
    before = current(app)
    out = run(srv, ntpsec_tools, "ntpq", "-n", "-c", "peers", "127.0.0.1")
    after = current(app)
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines()[2:]:
        m = re.match(r"^(.)(\S+)\s+(\S+)\s+(\d+) (\w)\s+(\S+)\s+(\d+)\s+([0-7]+)\s+(\S+)\s+(\S+)\s+(\S+)$", line)
        assert m is not None, line
        rows[m.group(2)] = m.groups()
    assert set(rows) == {"NMEA(0)", "127.0.0.2", "LOCAL(0)"}
    for s in before.sources:
        tally, _name, refid, stratum, kind, _when, _poll, reach, _delay, offset, _jitter = rows[s.name]
        a = after.source(s.assoc_id)
        assert a is not None
        assert tally in (s.tally, a.tally)
        assert int(stratum) == s.stratum
        assert kind == ("u" if s.kind == "server" else "l")
        assert refid in (f".{s.refid}.", s.refid)
        assert int(reach, 8) in (s.reach, a.reach, (s.reach << 1 | 1) & 0xFF, (s.reach << 1) & 0xFF)
        low, high = sorted((s.offset_ns / 1e6, a.offset_ns / 1e6))
        assert low - 0.001 <= float(offset) <= high + 0.001 or s.kind == "server"
    gps = rows["NMEA(0)"]
    assert gps[0] in "o*" and gps[2] == ".PPS." and gps[3] == "0"  # the PPS-disciplined GPS is the system peer


def test_ntpq_rv_as_and_cv(lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]) -> None:
    srv, _, app = lab
    snap = current(app)
    rv = run(srv, ntpsec_tools, "ntpq", "-c", "rv", "127.0.0.1")
    assert rv.returncode == 0, rv.stderr
    assert "leap_none, sync_uhf_radio" in rv.stdout
    assert "stratum=1," in rv.stdout and "refid=PPS," in rv.stdout
    assert f"peer={snap.system.peer}," in rv.stdout
    gps = next(s for s in snap.sources if s.name == "NMEA(0)")
    assert snap.system.peer == gps.assoc_id

    assoc = run(srv, ntpsec_tools, "ntpq", "-c", "as", "127.0.0.1")
    assert assoc.returncode == 0, assoc.stderr
    lines = [line.split() for line in assoc.stdout.splitlines() if re.match(r"^\s+\d+\s+\d+", line)]
    assert [int(fields[1]) for fields in lines] == [s.assoc_id for s in snap.sources]
    conditions = {int(f[1]): f[6] for f in lines}
    assert conditions[gps.assoc_id] in ("pps.peer", "sys.peer")

    cv = run(srv, ntpsec_tools, "ntpq", "-c", f"cv {gps.assoc_id}", "127.0.0.1")
    assert cv.returncode == 0, cv.stderr
    assert f"associd={gps.assoc_id}" in cv.stdout and 'name="NMEA"' in cv.stdout
    assert snap.gps is not None
    assert f"satellites={snap.gps.satellites_used}," in cv.stdout and "pps=1" in cv.stdout


def test_ntpq_sysinfo_sysstats_and_monstats(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    """``sysinfo`` died with a traceback (no ``peermode``); ``sysstats`` printed only ``?``."""
    srv, _, app = lab
    gps = next(s for s in current(app).sources if s.name == "NMEA(0)")
    info = run(srv, ntpsec_tools, "ntpq", "-n", "-c", "sysinfo", "127.0.0.1")
    assert info.returncode == 0 and "Traceback" not in info.stderr, info.stdout + info.stderr
    assert re.search(rf"system peer:\s+{re.escape(gps.address)}:123$", info.stdout, re.M), info.stdout
    assert re.search(r"system peer mode:\s+client$", info.stdout, re.M), info.stdout
    assert re.search(r"root distance\s+\d+\.\d+", info.stdout), info.stdout
    wait_for(app, lambda s: s.counters.control > 0, 5)  # the snapshot (once a second) has counted sysinfo's
    stats = run(srv, ntpsec_tools, "ntpq", "-c", "sysstats", "127.0.0.1")
    assert stats.returncode == 0, stats.stderr
    received = re.search(r"^packets received:\s+(\d+)\s+(\d+)", stats.stdout, re.M)
    assert received is not None and int(received[1]) > 0, stats.stdout
    assert re.search(r"^control requests:\s+[1-9]\d*$", stats.stdout, re.M), stats.stdout
    mon = run(srv, ntpsec_tools, "ntpq", "-c", "monstats", "127.0.0.1")
    assert mon.returncode == 0, mon.stderr
    assert re.search(r"^addresses in use:\s+[1-9]\d*$", mon.stdout, re.M), mon.stdout


def test_ntpq_clocklist_without_a_warning(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    """``cl`` asks READCLOCK for association 0: the answer keeps 0, as ntpd's (it said "Association ID 1
    doesn't match expected 0")."""
    srv, _, _ = lab
    out = run(srv, ntpsec_tools, "ntpq", "-c", "cl", "127.0.0.1")
    assert out.returncode == 0 and "doesn't match" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert 'name="NMEA"' in out.stdout


def test_ntpstat_says_synchronised_at_stratum_1(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    srv, _, app = lab
    out = run(srv, ntpsec_tools, "ntpstat")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "synchronised to UHF radio at stratum 1" in out.stdout
    snap = current(app)
    assert f"polling server every {1 << snap.system.poll} s" in out.stdout


def test_noquery_address_gets_nothing(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    _, cli, app = lab
    refused = app.server.counters.dropped.get("noquery", 0)
    out = run(cli, ntpsec_tools, "ntpq", "-n", "-c", "peers", "192.168.0.1")
    assert "NMEA(0)" not in out.stdout and "LOCAL" not in out.stdout
    # and a bare 12-octet READSTAT from there: no answer at all
    sock = cli.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        sock.settimeout(0.5)
        sock.sendto(HEADER.pack((2 << 3) | 6, 1, 1, 0, 0, 0, 0), ("192.168.0.1", 123))
        with pytest.raises(TimeoutError):
            sock.recv(2048)
    assert app.server.counters.dropped.get("noquery", 0) > refused


def test_minimal_request_from_localhost_is_answered_with_no_more_than_it_needs(
    lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance],
) -> None:
    srv, _, app = lab
    sock = srv.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        sock.settimeout(1.0)
        sock.sendto(HEADER.pack((2 << 3) | 6, 1, 1, 0, 0, 0, 0), ("127.0.0.1", 123))
        reply = sock.recv(2048)
    assert len(reply) == 12 + 4 * len(current(app).sources)


def test_stratum1_status_and_peers_read_the_same_state(lab: tuple[nsutil.NetNs, nsutil.NetNs, Appliance]) -> None:
    _, _, app = lab
    assert app.settings.status_socket is not None
    sock = app.settings.status_socket
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "appliance", *args, "--socket", sock]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)

    out = cli("status", "--json")
    assert out.returncode == 0, out.stderr
    snap = Snapshot.from_json(out.stdout)
    assert snap.system.stratum == 1 and snap.system.basis == "refclock"
    assert [s.name for s in snap.sources] == [s.name for s in current(app).sources]
    text = cli("status")
    assert text.returncode == 0 and text.stdout.startswith(
        "synchronised to reference clock (NMEA(0), refid PPS) at stratum 1"
    )
    peers = cli("peers")
    assert peers.returncode == 0
    assert [line[1:].split()[0] for line in peers.stdout.splitlines()[2:5]] == ["NMEA(0)", "127.0.0.2", "LOCAL(0)"]
