"""Real chronyd checks our server (chronyd -Q measures, never sets the clock) and serves `stratum1 query`."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from harness import LOCAL_CLOCK_CONF, chronyd_query, free_port, serving

from appliance.cli import main

pytestmark = pytest.mark.interop


def chronyd_measure(chronyd: Path, tmp_path: Path, port: int, host: str = "127.0.0.1") -> float:
    """Run ``chronyd -Q`` against host:port; return the offset it reports (seconds, + = our clock ahead)."""
    conf = tmp_path / "chrony.conf"
    conf.write_text(f"server {host} port {port} iburst\ncmdport 0\nbindcmdaddress /\npidfile {tmp_path}/chronyd.pid\n")
    out = subprocess.run(
        [str(chronyd), "-Q", "-x", "-f", str(conf), "-u", "root", "-d", "-t", "20"],
        capture_output=True,
        text=True,
        timeout=40,
    )
    log = out.stdout + out.stderr
    m = re.search(r"System clock wrong by (-?[0-9.]+) seconds", log)
    assert m, f"chronyd did not accept our replies:\n{log}"
    return float(m.group(1))


def test_chronyd_accepts_our_replies(chronyd: Path, tmp_path: Path) -> None:
    with serving(LOCAL_CLOCK_CONF) as app:
        port = app.addresses[0][1]
        offset = chronyd_measure(chronyd, tmp_path, port)
    served = app.server.counters.served  # once stopped: the compiled plane's counts all handed over
    # client and server read the same clock: the offset chronyd sees is our error
    assert abs(offset) < 0.005
    assert served >= 1


def test_chronyd_accepts_our_replies_over_ipv6(chronyd: Path, tmp_path: Path) -> None:
    with serving(LOCAL_CLOCK_CONF, listen=("::1",)) as app:
        offset = chronyd_measure(chronyd, tmp_path, app.addresses[0][1], host="::1")
    assert abs(offset) < 0.005


def test_stratum1_query_reads_chronyd(chronyd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    conf = tmp_path / "chrony-server.conf"
    conf.write_text(
        f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\ncmdport 0\nbindcmdaddress /\n"
        f"pidfile {tmp_path}/chronyd.pid\n"
    )
    proc = subprocess.Popen(
        [str(chronyd), "-x", "-f", str(conf), "-u", "root", "-d"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        rc = 1
        while time.monotonic() < deadline:
            rc = main(["query", f"127.0.0.1:{port}", "-n", "1", "-t", "1"])
            if rc == 0:
                break
            time.sleep(0.5)
        out = capsys.readouterr().out
    finally:
        proc.terminate()
        proc.wait(10)
    assert rc == 0, out
    assert re.search(r"^server 127\.0\.0\.1, stratum 8, offset -?0\.00\d+, delay 0\.00\d+$", out, re.M), out
    assert "refid 127.127.1.1" in out or "refid LOCL" in out or "refid 127." in out, out


def test_chronyd_with_xleave_gets_interleaved_replies(chronyd: Path, tmp_path: Path) -> None:
    """chronyd's ``xleave`` (RFC 9769): after its first exchanges every reply is interleaved ("4I" in its
    measurements log: chronyd took it as an interleaved reply, with the transmit time the kernel stamped on
    our previous reply, which it checks against its own receive and transmit timestamps)."""
    with serving(LOCAL_CLOCK_CONF) as app:
        port = app.addresses[0][1]
        printed, rows = chronyd_query(chronyd, tmp_path, port, "iburst xleave minpoll -2 maxpoll -2", seconds=10)
        transmits = app.server.transmits.counters
    assert len(rows) >= 3, printed
    modes = [r[-3] for r in rows]  # MTxRx: the mode with B(asic) or I(nterleaved), then chronyd's own stamps
    assert modes[0] == "4B", modes  # the first exchange cannot be interleaved
    assert all(m == "4I" for m in modes[2:]), modes
    assert transmits.interleaved >= len(rows) - 2
